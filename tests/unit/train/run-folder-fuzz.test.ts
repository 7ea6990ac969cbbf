import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '../../../native/base/rng.js';
import { dispatchEngine } from '../../helpers/dispatch.js';
import { peakRss } from '../../helpers/memory.js';
import { writeRunFolder } from '../../helpers/run-folder.js';
import { tmpDir } from '../../helpers/tmp.js';

/**
 * Fuzz of `train import` run folders (issue 25): seeded mutations of a valid export's run.json, step file and
 * metrics log (values of every JSON type, huge / negative / fractional / non-finite numbers, removed fields, flipped
 * and cut bytes, lines of another shape), each imported as a job. Every import either succeeds or fails with a typed
 * error that is not INTERNAL; a failed one writes nothing (no encoder folder, no log rows); each within 5 s on a
 * loaded machine; this process's peak memory grows by less than 200 MB.
 */
const SEED = 0x7a11;
const CASES = 80;
const MEMORY_BOUND = 200 * 1000 * 1000;
const TIME_BOUND_MS = 5000;

function pick<T>(rng: Rng, items: readonly T[]): T {
  return items[rng.int(items.length)] as T;
}

/** Scalars of every JSON type: negative, huge, fractional, texts, null, booleans, small counts, known words. */
const SCALARS: ReadonlyArray<(rng: Rng) => unknown> = [
  (r) => -1 - r.int(1000),
  (r) => 10 ** (3 + r.int(25)),
  (r) => r.next() * 10,
  (r) => String(r.int(100)),
  () => null,
  (r) => r.next() < 0.5,
  (r) => r.int(5),
  (r) => pick(r, ['dino', 'neco', 'dora', 'offset', 'gelu', '']),
  () => 0.5,
];

function randomValue(rng: Rng, depth = 0): unknown {
  const k = rng.int(SCALARS.length + (depth > 1 ? 0 : 2));
  const scalar = SCALARS[k];
  if (scalar) return scalar(rng);
  return k === SCALARS.length
    ? Array.from({ length: rng.int(5) }, () => randomValue(rng, depth + 1))
    : { x: randomValue(rng, depth + 1) };
}

/** Sets or deletes a field at a random path of a JSON object. */
function mutateObject(rng: Rng, root: Record<string, unknown>): void {
  let o = root;
  for (let d = 0; d < 3; d++) {
    const keys = Object.keys(o);
    if (keys.length === 0) break;
    const k = pick(rng, keys);
    const v = o[k];
    if (v !== null && typeof v === 'object' && !Array.isArray(v) && rng.next() < 0.6) {
      o = v as Record<string, unknown>;
      continue;
    }
    if (rng.next() < 0.2) delete o[k];
    else o[k] = randomValue(rng);
    return;
  }
}

function mutateText(rng: Rng, text: string): string {
  let b = Buffer.from(text);
  if (rng.next() < 0.5) for (let i = 0; i < 1 + rng.int(3); i++) b[rng.int(b.length)] = rng.int(256);
  else b = b.subarray(0, rng.int(b.length));
  return b.toString('latin1');
}

function mutateFolder(rng: Rng, dir: string): void {
  const run = writeRunFolder(dir, 1 + rng.int(1000));
  const file = pick(rng, [run.runJson, run.runJson, run.stepJson, run.metrics]);
  const text = fs.readFileSync(file, 'utf8');
  for (let e = 0; e < 1 + rng.int(3); e++) {
    if (file === run.metrics) {
      const lines = fs.readFileSync(file, 'utf8').split('\n');
      const i = rng.int(lines.length);
      const row = (() => {
        try {
          return JSON.parse(lines[i] ?? '') as unknown;
        } catch {
          return null;
        }
      })();
      if (rng.next() < 0.5 && row !== null && typeof row === 'object' && !Array.isArray(row)) {
        mutateObject(rng, row as Record<string, unknown>);
        lines[i] = JSON.stringify(row);
      } else lines[i] = pick(rng, ['NaN', '[]', '{"step": 1e400}', '{"step": -1}', mutateText(rng, lines[i] ?? '')]);
      fs.writeFileSync(file, lines.join('\n'));
    } else if (rng.next() < 0.8 && e === 0) {
      const o = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
      mutateObject(rng, o);
      fs.writeFileSync(file, JSON.stringify(o));
    } else fs.writeFileSync(file, mutateText(rng, text));
  }
}

let env: ReturnType<typeof dispatchEngine>;
beforeAll(async () => {
  env = dispatchEngine();
  await env.call('project.create', { path: path.join(tmpDir(), 'p') });
});
afterAll(() => env.engine.close());

describe('train import run-folder fuzz', () => {
  it(`imports or refuses ${CASES} mutated run folders (seed ${SEED}) with typed errors, writing nothing when refused`, async () => {
    const rng = new Rng(SEED);
    const before = peakRss();
    const outcomes = new Map<string, number>();
    const root = tmpDir();
    for (let i = 0; i < CASES; i++) {
      const dir = path.join(root, String(i));
      mutateFolder(rng, dir);
      const t0 = performance.now();
      const job = await env.call('train.import', { path: dir });
      await env.engine.requireProject().runner.idle();
      const done = await env.call('jobs.get', { id: job.id });
      expect(performance.now() - t0, `case ${i}`).toBeLessThan(TIME_BOUND_MS);
      const outcome = done.state === 'done' ? 'OK' : (done.error?.code ?? 'NONE');
      expect(outcome, `case ${i}: ${done.error?.message}`).not.toMatch(/INTERNAL|NONE/);
      if (done.state !== 'done') {
        expect(done.error?.message, `case ${i}`).not.toMatch(/TypeError|SyntaxError|NOT NULL|Unexpected token/);
        const project = env.engine.requireProject().project;
        expect(fs.existsSync(path.join(project.checkpointsDir, `train-${job.id}`)), `case ${i}`).toBe(false);
        expect(await env.call('train.log', { jobId: job.id }), `case ${i}`).toEqual([]);
      }
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
    }
    const after = peakRss();
    if (before !== null && after !== null) expect(after - before).toBeLessThan(MEMORY_BOUND);
    if (process.env.FLANEUR_PRINT_PROBE) console.log(JSON.stringify({ outcomes: [...outcomes], before, after }));
    expect(outcomes.get('INVALID_ARGUMENT') ?? 0).toBeGreaterThan(CASES / 4);
  }, 300_000);
});
