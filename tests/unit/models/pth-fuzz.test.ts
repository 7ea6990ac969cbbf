import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { FlaneurError } from '../../../native/api/errors.js';
import { Rng } from '../../../native/base/rng.js';
import { importViT } from '../../../native/models/import-vit.js';
import { type PickleValue, unpickle } from '../../../native/models/pickle.js';
import { parsePytorchCheckpoint } from '../../../native/models/pytorch.js';
import { readZip } from '../../../native/models/zip.js';
import { fixturePath } from '../../helpers/fixtures.js';
import { peakRss } from '../../helpers/memory.js';
import { OP } from '../../helpers/pth.js';

/**
 * Fuzz of the restricted unpickler and the zip reader behind PyTorch imports (issue 25), in the style of the
 * safetensors fuzzer: seeded, bounded in count and time. Pickles: the fixture's data.pkl with bytes flipped, spans
 * repeated or cut, opcodes inserted, and random opcode streams with lengths of every size. Zip archives: the
 * fixture's .pth with directory fields, local headers, sizes and offsets mutated, truncated or spliced. Every input
 * is read (and every tensor materialised) or refused with a typed FlaneurError; nothing else is thrown; each input
 * within 1 s; this process's peak memory grows by less than 200 MB over the campaign.
 */
const SEED = 0x9e7c0de;
const PICKLE_CASES = 1500;
const ZIP_CASES = 800;
const MEMORY_BOUND = 200 * 1000 * 1000;
const TIME_BOUND_MS = 1000;

const pth = fs.readFileSync(fixturePath('pth', 'dino_tiny.zip.pth'));
const pkl = (() => {
  const zip = readZip(pth, 'fixture');
  const name = [...zip.entries.keys()].find((n) => n.endsWith('data.pkl')) as string;
  return Buffer.from(zip.read(name));
})();

const OPCODES = Object.values(OP);

function pick<T>(rng: Rng, items: readonly T[]): T {
  return items[rng.int(items.length)] as T;
}

/** A length field of every kind: small, at the buffer's end, huge. */
function lengthBytes(rng: Rng, n: number): Buffer {
  const b = Buffer.alloc(n);
  const v = pick(rng, [0, 1, rng.int(300), 2 ** 16, 2 ** 31 - 1, 2 ** 32 - 1]);
  if (n === 1) b[0] = v & 0xff;
  else if (n === 4) b.writeUInt32LE(v >>> 0);
  else b.writeBigUInt64LE(BigInt(v) * BigInt(1 + rng.int(3)));
  return b;
}

function randomPickle(rng: Rng): Buffer {
  const parts: Buffer[] = [Buffer.from([OP.PROTO, 2 + rng.int(4)])];
  const n = 1 + rng.int(400);
  for (let i = 0; i < n; i++) {
    const op = rng.next() < 0.1 ? rng.int(256) : pick(rng, OPCODES);
    parts.push(Buffer.from([op]));
    if (op === OP.LONG4 || op === OP.BININT || op === OP.BINUNICODE) parts.push(lengthBytes(rng, 4));
    if (op === OP.LONG1 || op === OP.BINGET) parts.push(lengthBytes(rng, 1));
    if (op === OP.GLOBAL)
      parts.push(Buffer.from(pick(rng, ['torch\nFloatStorage\n', 'os\nsystem\n', 'collections\nOrderedDict\n'])));
    if (rng.next() < 0.05) parts.push(Buffer.alloc(rng.int(5000), pick(rng, OPCODES)));
  }
  if (rng.next() < 0.8) parts.push(Buffer.from([OP.STOP]));
  return Buffer.concat(parts);
}

function mutatePickle(rng: Rng): Buffer {
  if (rng.next() < 0.3) return randomPickle(rng);
  let b = Buffer.from(pkl);
  for (let e = 0; e < 1 + rng.int(4); e++) {
    const at = rng.int(b.length);
    switch (rng.int(5)) {
      case 0:
        b[at] = rng.int(256);
        break;
      case 1:
        b[at] = pick(rng, OPCODES);
        break;
      case 2: {
        const len = 1 + rng.int(200);
        const span = b.subarray(at, at + len);
        b = Buffer.concat([b.subarray(0, at), ...Array.from({ length: 1 + rng.int(50) }, () => span), b.subarray(at)]);
        break;
      }
      case 3:
        b = b.subarray(0, at);
        break;
      default:
        b = Buffer.concat([b.subarray(0, at), Buffer.from([pick(rng, OPCODES)]), lengthBytes(rng, 4), b.subarray(at)]);
    }
  }
  return b;
}

function mutateZip(rng: Rng): Buffer {
  let b = Buffer.from(pth);
  const eocd = b.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  const cd = b.readUInt32LE(eocd + 16);
  const fields = [
    () => eocd + 8 + 2 * rng.int(2), // entry counts
    () => eocd + 12 + 4 * rng.int(2), // directory size / offset
    () => cd + 10 + 2 * rng.int(4), // a directory record's method, time, date
    () => cd + 20 + 4 * rng.int(3), // its sizes
    () => cd + 28 + 2 * rng.int(3), // name / extra / comment lengths
    () => cd + 42, // its local header offset
    () => rng.int(b.length - 4),
  ];
  for (let e = 0; e < 1 + rng.int(3); e++) {
    const at = pick(rng, fields)();
    if (at < 0 || at + 4 > b.length) continue;
    switch (rng.int(4)) {
      case 0:
        b.writeUInt32LE(pick(rng, [0, 1, 0xffffffff, rng.int(b.length), b.length + rng.int(1000)]) >>> 0, at);
        break;
      case 1:
        b.writeUInt16LE(pick(rng, [0, 8, 12, 0xffff, rng.int(100)]), at);
        break;
      case 2:
        b = b.subarray(0, rng.int(b.length));
        break;
      default:
        b[at] = rng.int(256);
    }
  }
  return b;
}

function typed(run: () => void, label: string): string {
  try {
    run();
    return 'OK';
  } catch (err) {
    if (!(err instanceof FlaneurError)) throw new Error(`${label}: ${(err as Error)?.stack ?? err}`);
    expect(err.message.length, label).toBeGreaterThan(10);
    return err.code;
  }
}

function campaign(cases: number, make: (rng: Rng) => Buffer, read: (b: Buffer) => void, seed: number) {
  const rng = new Rng(seed);
  const before = peakRss();
  const outcomes = new Map<string, number>();
  let slowest = 0;
  for (let i = 0; i < cases; i++) {
    const buf = make(rng);
    const t0 = performance.now();
    const outcome = typed(() => read(buf), `case ${i}`);
    const ms = performance.now() - t0;
    slowest = Math.max(slowest, ms);
    expect(ms, `case ${i}`).toBeLessThan(TIME_BOUND_MS);
    outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
  }
  const after = peakRss();
  if (before !== null && after !== null) expect(after - before).toBeLessThan(MEMORY_BOUND);
  if (process.env.FLANEUR_PRINT_PROBE) console.log(JSON.stringify({ outcomes: [...outcomes], slowest, before, after }));
  return outcomes;
}

const storage = (pid: PickleValue) => {
  if (typeof pid !== 'object' || pid === null) throw new FlaneurError('INVALID_MODEL', 'not a storage id (fuzz)');
  return { kind: 'storage' as const, dtype: 'F32' as const, key: '0', numel: 1, view: null };
};

describe('PyTorch checkpoint fuzz', () => {
  it(`the unpickler reads or refuses ${PICKLE_CASES} mutated pickles (seed ${SEED}) with typed errors, each within 1 s, under 200 MB`, () => {
    const outcomes = campaign(
      PICKLE_CASES,
      mutatePickle,
      (b) => {
        unpickle(b, 0, { source: 'fuzz.pth', persistentLoad: storage });
      },
      SEED,
    );
    expect([...outcomes.keys()].every((c) => ['OK', 'INVALID_MODEL'].includes(c))).toBe(true);
    expect(outcomes.get('INVALID_MODEL') ?? 0).toBeGreaterThan(PICKLE_CASES / 2);
  }, 120_000);

  it(`the zip reader and importer read or refuse ${ZIP_CASES} mutated .pth files (seed ${SEED + 1}) the same way`, () => {
    const outcomes = campaign(
      ZIP_CASES,
      mutateZip,
      (b) => {
        const ckpt = parsePytorchCheckpoint(b, 'fuzz.pth');
        for (const name of ckpt.tensors.keys()) ckpt.float32(name);
        importViT(ckpt, 'fuzz.pth', { heads: 3 });
      },
      SEED + 1,
    );
    expect([...outcomes.keys()].every((c) => ['OK', 'INVALID_MODEL', 'UNSUPPORTED_MODEL'].includes(c))).toBe(true);
    expect(outcomes.get('INVALID_MODEL') ?? 0).toBeGreaterThan(ZIP_CASES / 4);
  }, 120_000);
});
