import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { FlaneurError } from '../../../native/api/errors.js';
import { Rng } from '../../../native/base/rng.js';
import { importViT } from '../../../native/models/import-vit.js';
import { parseSafetensors } from '../../../native/models/safetensors.js';
import { fixturePath } from '../../helpers/fixtures.js';
import { peakRss } from '../../helpers/memory.js';

/**
 * Fuzz of the safetensors header parser and the importer behind it (issue 15): seeded mutations of a valid model's
 * header (field values of every JSON type, huge / negative / fractional numbers, renamed blocks, overlapping offsets,
 * a wrong length prefix, flipped bytes, truncation). Bounded in count (CASES) and time (each within 1 s). The bound
 * stated and checked: this process's peak resident memory grows by less than 200 MB over the campaign (Linux). Every
 * input either imports or is refused with INVALID_MODEL / UNSUPPORTED_MODEL: nothing else is thrown.
 */
const SEED = 0x5afe7e;
const CASES = 1500;
const MEMORY_BOUND = 200 * 1000 * 1000;

type Entry = { dtype: unknown; shape: unknown; data_offsets: unknown };

const valid = fs.readFileSync(fixturePath('vit', 'dino_tiny.official.safetensors'));
const headerLen = Number(valid.readBigUInt64LE(0));
const data = valid.subarray(8 + headerLen);

function randomValue(rng: Rng, depth = 0): unknown {
  switch (rng.int(depth > 2 ? 9 : 12)) {
    case 0:
      return -1 - rng.int(1000);
    case 1:
      return 2 ** (40 + rng.int(40));
    case 2:
      return rng.next() * 1000;
    case 3:
      return String(rng.int(100));
    case 4:
      return null;
    case 5:
      return rng.next() < 0.5;
    case 6:
      return rng.int(data.length + 10);
    case 7:
      return Number.MAX_SAFE_INTEGER;
    case 8:
      return pick(rng, ['F32', 'F16', 'BF16', 'I64', 'BOOL', 'Q4', '']);
    case 9:
      return Array.from({ length: rng.int(12) }, () => randomValue(rng, depth + 1));
    case 10:
      return { dtype: randomValue(rng, depth + 1), shape: randomValue(rng, depth + 1) };
    default:
      return [rng.int(data.length), rng.int(data.length)];
  }
}

function pick<T>(rng: Rng, items: readonly T[]): T {
  return items[rng.int(items.length)] as T;
}

function mutate(rng: Rng): Buffer {
  const header = JSON.parse(valid.subarray(8, 8 + headerLen).toString()) as Record<string, Entry>;
  const names = Object.keys(header).filter((n) => n !== '__metadata__');
  const edits = 1 + rng.int(3);
  for (let e = 0; e < edits; e++) {
    const name = pick(rng, names);
    const t = header[name] as Entry;
    if (t === null || typeof t !== 'object' || Array.isArray(t)) continue; // replaced by an earlier edit
    switch (rng.int(9)) {
      case 0:
        t.dtype = randomValue(rng);
        break;
      case 1:
        t.shape = randomValue(rng);
        break;
      case 2:
        t.data_offsets = randomValue(rng);
        break;
      case 3:
        header[`blocks.${pick(rng, [2, 3, 255, 256, 1_000_000, 1e12, 1e21])}.${pick(rng, ['x', 'norm1.weight'])}`] = {
          dtype: 'F32',
          shape: [0],
          data_offsets: [data.length, data.length],
        };
        break;
      case 4: {
        const other = header[pick(rng, names)] as Entry | undefined;
        if (other === null || typeof other !== 'object') break;
        t.data_offsets = other.data_offsets;
        t.shape = other.shape;
        break;
      }
      case 5:
        delete header[name];
        break;
      case 6:
        (header as Record<string, unknown>)[name] = randomValue(rng);
        break;
      case 7:
        (header as Record<string, unknown>).__metadata__ = randomValue(rng);
        break;
      default:
        t.shape = Array.from({ length: rng.int(12) }, () => rng.int(4096));
    }
  }
  let json = Buffer.from(rng.next() < 0.05 ? JSON.stringify(randomValue(rng)) : JSON.stringify(header));
  if (rng.next() < 0.15) {
    json = Buffer.from(json);
    for (let i = 0; i < 1 + rng.int(4); i++) json[rng.int(json.length)] = rng.int(256);
  }
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(
    rng.next() < 0.1
      ? BigInt(rng.int(2 ** 31)) * BigInt(rng.int(2 ** 31))
      : BigInt(json.length + rng.int(2) * rng.int(5)),
  );
  let out = Buffer.concat([len, json, data]);
  if (rng.next() < 0.1) out = out.subarray(0, rng.int(out.length));
  return out;
}

describe('safetensors header fuzz', () => {
  it(`refuses or imports ${CASES} mutated files (seed ${SEED}) with a typed error, each within 1 s, under 200 MB`, () => {
    const rng = new Rng(SEED);
    const before = peakRss();
    const outcomes = new Map<string, number>();
    let slowest = 0;
    for (let i = 0; i < CASES; i++) {
      const buf = mutate(rng);
      const t0 = performance.now();
      let outcome = 'OK';
      try {
        importViT(parseSafetensors(buf, 'fuzz.safetensors'), 'fuzz.safetensors', { heads: 3 });
      } catch (err) {
        if (!(err instanceof FlaneurError)) throw new Error(`case ${i}: ${(err as Error)?.stack ?? err}`);
        outcome = err.code;
        expect(err.message.length, `case ${i}`).toBeGreaterThan(10);
      }
      const ms = performance.now() - t0;
      slowest = Math.max(slowest, ms);
      expect(ms, `case ${i}`).toBeLessThan(1000);
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
    }
    expect([...outcomes.keys()].every((c) => ['OK', 'INVALID_MODEL', 'UNSUPPORTED_MODEL'].includes(c))).toBe(true);
    expect(outcomes.get('INVALID_MODEL') ?? 0).toBeGreaterThan(CASES / 2);
    const after = peakRss();
    if (before !== null && after !== null) expect(after - before).toBeLessThan(MEMORY_BOUND);
    if (process.env.FLANEUR_PRINT_PROBE)
      console.log(JSON.stringify({ outcomes: [...outcomes], slowest, before, after }));
  }, 60_000);
});
