import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '../../helpers/engine-process.js';
import { bytes, OP, stateDictPickle, writePth, writeZip } from '../../helpers/pth.js';
import { tmpDir } from '../../helpers/tmp.js';

/**
 * Issue 25 items 1, 3 and 7 (pickle and zip): hostile .pth files built here, each parsed (and every tensor read) in a
 * child process as the importer reads them. Each ends in a typed error that says what is wrong (or, for the legal
 * but odd ones, a correct result), within a bounded time, with the child's peak memory growing by less than 200 MB
 * over all of them. Before: a 2 MB LONG4 took minutes, a deflate bomb reached 3 GiB, a 192-byte tensor in a 600 MB
 * storage cost 1.9 GB, overlapping entries gave wrong weights, 2^24 MEMOIZE / a deep list key ended in INTERNAL.
 */
const MEMORY_BOUND = 200 * 1000 * 1000;
/** Generous for a loaded 2-core machine; the quadratic and unbounded cases took minutes. */
const TIME_BOUND_MS = 3000;

const tensor = (over: Partial<Parameters<typeof stateDictPickle>[0][number]> = {}) =>
  stateDictPickle([{ name: 'w', key: '0', numel: 48, shape: [48], ...over }]);
const f32 = (n: number) => Buffer.from(new Float32Array(Array.from({ length: n }, (_, i) => i)).buffer);

interface ProbeResult {
  file: string;
  code: string;
  message: string;
  ms: number;
}

describe('hostile PyTorch checkpoints', () => {
  const dir = tmpDir();
  const cases = new Map<string, { file: string; code: string; expect: RegExp }>();
  let results = new Map<string, ProbeResult>();
  let peakGrowth: number | null = null;
  const add = (name: string, file: string, code: string, expect: RegExp) => cases.set(name, { file, code, expect });
  const pth = (name: string) => path.join(dir, `${name.replace(/\W+/g, '-')}.pth`);

  beforeAll(() => {
    // Item 1: one LONG4 integer of 2,000,000 bytes (was built a byte at a time: minutes).
    const long = Buffer.alloc(4);
    long.writeUInt32LE(2_000_000);
    add(
      'LONG4 of 2 MB',
      writePth(pth('long4'), bytes(OP.PROTO, 2, OP.LONG4, long, Buffer.alloc(2_000_000, 0x7f), OP.STOP)),
      'INVALID_MODEL',
      /holds an integer of 2000000 bytes, far more than a saved PyTorch state dict holds/,
    );
    // Item 7: 2^24 MEMOIZE of one list (16 MB).
    add(
      '2^24 MEMOIZE',
      writePth(pth('memoize'), bytes(OP.PROTO, 4, OP.EMPTY_LIST, Buffer.alloc(2 ** 24, OP.MEMOIZE), OP.STOP)),
      'INVALID_MODEL',
      /stores more than 524288 memo entries/,
    );
    // Item 7: APPENDS of 5 million items onto one list (a spread of them overflowed the stack).
    add(
      'APPENDS of 5 million',
      writePth(
        pth('appends'),
        bytes(OP.PROTO, 2, OP.EMPTY_LIST, OP.MARK, Buffer.alloc(5_000_000, OP.NONE), OP.APPENDS, OP.STOP),
      ),
      'INVALID_MODEL',
      /far more than a saved PyTorch state dict holds/,
    );
    // Item 7: legal APPENDS of 1 million items: a list, not a state dict (typed, not INTERNAL).
    add(
      'APPENDS of 1 million',
      writePth(
        pth('appends-1m'),
        bytes(OP.PROTO, 2, OP.EMPTY_LIST, OP.MARK, Buffer.alloc(1_000_000, OP.NONE), OP.APPENDS, OP.STOP),
      ),
      'UNSUPPORTED_MODEL',
      /holds no state dict of tensors/,
    );
    // Item 7: a list nested 100,000 deep used as a dict key.
    const n = 100_000;
    add(
      'deep list as a dict key',
      writePth(
        pth('deep-key'),
        bytes(
          OP.PROTO,
          2,
          OP.EMPTY_DICT,
          Buffer.alloc(n, OP.MARK),
          OP.NONE,
          Buffer.alloc(n, OP.LIST),
          OP.NONE,
          OP.SETITEM,
          OP.STOP,
        ),
      ),
      'INVALID_MODEL',
      /nests containers more than 256 deep/,
    );
    add(
      'tuples nested 100,000 deep',
      writePth(pth('deep-tuple'), bytes(OP.PROTO, 2, OP.NONE, Buffer.alloc(n, OP.TUPLE1), OP.STOP)),
      'INVALID_MODEL',
      /nests containers more than 256 deep/,
    );
    // Item 7: data.pkl deflated with garbage.
    add(
      'garbage deflate',
      writeZip(pth('garbage'), [
        { name: 'archive/data.pkl', data: crypto.randomBytes(4096), rawDeflated: true, declaredSize: 5000 },
      ]),
      'INVALID_MODEL',
      /entry "archive\/data\.pkl" is not valid deflate data/,
    );
    // Item 3: a deflate bomb: 100 MB of zeros in about 100 KB, declared as 192 bytes.
    const zeros = zlib.deflateRawSync(Buffer.alloc(100 << 20));
    const bomb = writePth(pth('deflate-bomb'), tensor(), [
      { name: '0', data: zeros, rawDeflated: true, declaredSize: 192 },
    ]);
    add('deflate bomb', bomb, 'INVALID_MODEL', /inflates to more than its declared 192 bytes/);
    add(
      'deflated storage declaring 3 GiB',
      writePth(pth('declares-3g'), tensor(), [{ name: '0', data: f32(48), deflate: true, declaredSize: 3 * 2 ** 30 }]),
      'INVALID_MODEL',
      /declares 3221225472 bytes, more than a checkpoint may inflate to/,
    );
    // Item 3: a 192-byte tensor in a 600 MB (sparse) storage: only its 192 bytes are read.
    add(
      '192-byte tensor in a 600 MB storage',
      writePth(pth('big-storage'), tensor({ numel: 150_000_000 }), [{ name: '0', data: { hole: 600_000_000 } }]),
      'OK',
      /^$/,
    );
    // Item 3: a 3.5 GB sparse file whose one tensor is 192 bytes: never read whole.
    add(
      '3.5 GB sparse checkpoint',
      writePth(pth('sparse'), tensor({ numel: 875_000_000 }), [{ name: '0', data: { hole: 3_500_000_000 } }]),
      'OK',
      /^$/,
    );
    add(
      'stride 0 with a huge shape',
      writePth(pth('stride0'), tensor({ shape: [1_000_000_000], stride: [0] }), [{ name: '0', data: f32(48) }]),
      'INVALID_MODEL',
      /repeats 1 stored elements as 1000000000/,
    );
    add(
      'shape past its storage',
      writePth(pth('past'), tensor({ shape: [100] }), [{ name: '0', data: f32(48) }]),
      'INVALID_MODEL',
      /points past the end of its storage "0"/,
    );
    add(
      'storage shorter than it claims',
      writePth(pth('short-storage'), tensor({ numel: 1000 }), [{ name: '0', data: f32(48) }]),
      'INVALID_MODEL',
      /should hold 4000 bytes but has 192/,
    );
    add(
      'overlapping entries',
      writePth(
        pth('overlap'),
        stateDictPickle([
          { name: 'a', key: '0', numel: 48, shape: [48] },
          { name: 'b', key: '1', numel: 48, shape: [48] },
        ]),
        [
          { name: '0', data: f32(48) },
          { name: '1', data: f32(48), sameBytesAs: 'archive/data/0' },
        ],
      ),
      'INVALID_MODEL',
      /zip entries "archive\/data\/0" and "archive\/data\/1" overlap/,
    );
    if (fs.existsSync('/dev/zero'))
      add('/dev/zero', '/dev/zero', 'INVALID_MODEL', /zero is a device, not a model file/);
    const fifo = path.join(dir, 'pipe.pth');
    if (spawnSync('mkfifo', [fifo]).status === 0)
      add('a named pipe', fifo, 'INVALID_MODEL', /is a named pipe, not a model file/);

    const child = spawnSync(
      process.execPath,
      [
        '--import',
        'tsx',
        path.join(ROOT, 'tests', 'helpers', 'pth-probe.ts'),
        ...[...cases.values()].map((c) => c.file),
      ],
      { cwd: ROOT, encoding: 'utf8', timeout: 120_000 },
    );
    if (child.status !== 0) throw new Error(`the probe failed (${child.status} ${child.signal}): ${child.stderr}`);
    const out = JSON.parse(child.stdout.trim().split('\n').at(-1) ?? '{}') as {
      before: number | null;
      after: number | null;
      results: ProbeResult[];
    };
    results = new Map(out.results.map((r) => [r.file, r]));
    if (process.env.FLANEUR_PRINT_PROBE) console.log(JSON.stringify(out, null, 1));
    peakGrowth = out.before !== null && out.after !== null ? out.after - out.before : null;
  }, 180_000);

  it('refuses each with a typed error that says what is wrong (or reads the odd but legal ones), each in bounded time', () => {
    for (const [name, c] of cases) {
      const r = results.get(c.file);
      expect(r, name).toBeDefined();
      expect(r?.code, `${name}: ${r?.message}`).toBe(c.code);
      expect(r?.message, name).toMatch(c.expect);
      expect(r?.ms, name).toBeLessThan(TIME_BOUND_MS);
    }
  });

  it('stays within 200 MB of extra peak memory over all of them (Linux)', () => {
    if (peakGrowth === null) return;
    expect(peakGrowth).toBeLessThan(MEMORY_BOUND);
  });
});
