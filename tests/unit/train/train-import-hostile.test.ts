/**
 * Issue 25 items 2 and 5: `train import` of run folders built here to be hostile. Each import fails with a typed
 * error (never INTERNAL, never a raw TypeError / SyntaxError / SQLite error) whose message names the file and field
 * but never quotes the file's contents, quickly and within bounded memory, and writes nothing: no encoder, no log
 * rows, no model. Special files (a FIFO run.json, files linked to /dev/zero or /etc/passwd) are refused before any
 * read. A valid run imports, and importing it again says it is already there.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeSafetensors, readSafetensors, type TensorToWrite } from '../../../native/models/safetensors.js';
import { dispatchEngine } from '../../helpers/dispatch.js';
import { waitFor } from '../../helpers/engine-process.js';
import { peakRss } from '../../helpers/memory.js';
import { metricsRow, type RunFolder, writeRunFolder } from '../../helpers/run-folder.js';
import { tmpDir } from '../../helpers/tmp.js';

const MEMORY_BOUND = 200 * 1000 * 1000;
/** Generous for a loaded machine: the cases refused here took 90 s (depth 1e7) or never ended (a FIFO). */
const TIME_BOUND_MS = 5000;

let env: ReturnType<typeof dispatchEngine>;
beforeAll(async () => {
  env = dispatchEngine();
  await env.call('project.create', { path: path.join(tmpDir(), 'p') });
});
afterAll(() => env.engine.close());

const editJson = (file: string, edit: (v: Record<string, unknown>) => void) => {
  const v = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  edit(v);
  fs.writeFileSync(file, JSON.stringify(v));
};
const link = (file: string, target: string) => {
  fs.rmSync(file);
  fs.symlinkSync(target, file);
};
const rewriteWeights = (run: RunFolder, edit: (t: Map<string, TensorToWrite>) => void) => {
  const st = readSafetensors(run.weights);
  const tensors = new Map<string, TensorToWrite>();
  for (const [name, t] of st.tensors) tensors.set(name, { shape: t.shape, data: st.float32(name) });
  edit(tensors);
  fs.writeFileSync(run.weights, encodeSafetensors(tensors));
};

async function importRun(dir: string) {
  const t0 = performance.now();
  const job = await env.call('train.import', { path: dir });
  await env.engine.requireProject().runner.idle();
  const done = await env.call('jobs.get', { id: job.id });
  return { done, ms: performance.now() - t0 };
}

/** What an import wrote: its export folder, its log rows, models. */
async function written(jobId: number) {
  const project = env.engine.requireProject().project;
  return {
    exportDir: fs.existsSync(path.join(project.checkpointsDir, `train-${jobId}`)),
    logRows: (await env.call('train.log', { jobId })).length,
    models: (await env.call('models.list', {})).length,
  };
}

const CASES: Array<[string, (run: RunFolder) => void, RegExp]> = [
  [
    'vit.depth 1e7 in run.json',
    (r) => editJson(r.runJson, (v) => Object.assign(v.vit as object, { depth: 1e7 })),
    /run\.json is not a Flaneur training export.*field vit\.depth is missing or out of range/,
  ],
  [
    'a ViT wider than the checkpoint',
    (r) =>
      editJson(r.runJson, (v) =>
        Object.assign(v.vit as object, { mlpHidden: 2 * (v.vit as { mlpHidden: number }).mlpHidden }),
      ),
    /the teacher tensor blocks\.0\.mlp\.fc1\.weight has shape \[\d+, \d+\], but run\.json's ViT needs/,
  ],
  [
    'run.json without args.init',
    (r) => editJson(r.runJson, (v) => delete (v.args as Record<string, unknown>).init),
    /field args\.init is missing/,
  ],
  ['run.json not JSON', (r) => fs.writeFileSync(r.runJson, '{"format": flaneur'), /run\.json is not valid JSON/],
  ['run.json a list', (r) => fs.writeFileSync(r.runJson, '[1,2]'), /run\.json is not a Flaneur training export/],
  ['step file without its step', (r) => editJson(r.stepJson, (v) => delete v.step), /field step is missing/],
  [
    'a metrics row without lr',
    (r) => fs.appendFileSync(r.metrics, `${JSON.stringify({ ...metricsRow(1), lr: undefined })}\n{"step": 2}\n`),
    /metrics\.jsonl, line 3: its lr is missing or not a number/,
  ],
  [
    'a NaN loss row (as Python writes it)',
    (r) => fs.writeFileSync(r.metrics, `${JSON.stringify(metricsRow(1)).replace(/"loss":\d+/, '"loss": NaN')}\n`),
    /metrics\.jsonl, line 1: its loss is not finite/,
  ],
  [
    'NaN teacher weights',
    (r) =>
      rewriteWeights(r, (t) => {
        const w = t.get('t.norm.weight');
        if (w) w.data[3] = Number.NaN;
      }),
    /the teacher tensor norm\.weight holds NaN values/,
  ],
  [
    'Inf teacher weights',
    (r) =>
      rewriteWeights(r, (t) => {
        const w = t.get('t.blocks.0.attn.qkv.weight');
        if (w) w.data[0] = Number.POSITIVE_INFINITY;
      }),
    /holds infinite values/,
  ],
  ['run.json linked to /dev/zero', (r) => link(r.runJson, '/dev/zero'), /run\.json is a device, not a regular file/],
  ['the step file linked to /dev/zero', (r) => link(r.stepJson, '/dev/zero'), /step-0000002\.json is a device/],
  ['metrics.jsonl linked to /dev/zero', (r) => link(r.metrics, '/dev/zero'), /metrics\.jsonl is a device/],
  [
    'the step file linked to /etc/passwd',
    (r) => link(r.stepJson, '/etc/passwd'),
    /step-0000002\.json is not valid JSON/,
  ],
  [
    'run.json a named pipe',
    (r) => {
      fs.rmSync(r.runJson);
      if (spawnSync('mkfifo', [r.runJson]).status !== 0) fs.writeFileSync(r.runJson, '');
    },
    /run\.json (is a named pipe, not a regular file|is not valid JSON)/,
  ],
];

describe('train import of hostile run folders', () => {
  const before = peakRss();

  it.each(CASES)('%s: a typed error quoting nothing, nothing written', async (_name, make, message) => {
    const run = writeRunFolder(tmpDir());
    make(run);
    const { done, ms } = await importRun(run.dir);
    expect(done.state).toBe('failed');
    expect(done.error?.code).toMatch(/^(INVALID_ARGUMENT|NOT_FOUND)$/);
    expect(done.error?.message).toMatch(message);
    expect(done.error?.message).not.toMatch(/root:|TypeError|SyntaxError|NOT NULL|Unexpected token/);
    expect(ms).toBeLessThan(TIME_BOUND_MS);
    expect(await written(done.id)).toEqual({ exportDir: false, logRows: 0, models: 0 });
  });

  it('stays within 200 MB of extra peak memory over all of them (Linux)', () => {
    const after = peakRss();
    if (before === null || after === null) return;
    expect(after - before).toBeLessThan(MEMORY_BOUND);
  });

  it('imports a valid run once; a second import says it is already there and adds nothing', async () => {
    const run = writeRunFolder(tmpDir(), 7);
    const first = await importRun(run.dir);
    expect(first.done.error?.message ?? first.done.state).toBe('done');
    const models = await waitFor(async () => {
      const list = await env.call('models.list', {});
      return list.length === 1 ? list : null;
    }, 30_000);
    const again = await importRun(run.dir);
    expect(again.done.state).toBe('failed');
    expect(again.done.error?.code).toBe('INVALID_ARGUMENT');
    expect(again.done.error?.message).toMatch(
      new RegExp(`already brought back at step 2: it is model #${models[0]?.id} .*Nothing was imported again`),
    );
    expect(await written(again.done.id)).toEqual({ exportDir: false, logRows: 0, models: 1 });
  });
});
