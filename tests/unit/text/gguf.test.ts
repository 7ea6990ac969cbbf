/** GGUF reading: metadata and tensor layout, dequantisation of F16, Q8_0 and Q4_0 blocks, refusals of bad files. */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Rng } from '../../../native/base/rng.js';
import { readGguf } from '../../../native/text/gguf.js';
import { encodeGguf, type KQuantBlocks, packKQuant } from '../../helpers/llama-models.js';
import { tmpDir } from '../../helpers/tmp.js';

const dir = tmpDir('flaneur-gguf-');

function sample(n: number, seed: number): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, () => {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    return (s / 2 ** 31 - 0.5) * 3;
  });
}

function write(name: string, buf: Buffer): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, buf);
  return file;
}

describe('GGUF files', () => {
  const x = sample(4 * 64, 7);
  const file = write(
    'm.gguf',
    encodeGguf(
      {
        'general.architecture': { type: 'string', value: 'llama' },
        'llama.block_count': { type: 'u32', value: 3 },
        'tokenizer.ggml.tokens': { type: 'strings', value: ['a', 'b'] },
        'tokenizer.ggml.scores': { type: 'f32s', value: [0.5, -1] },
      },
      {
        f32: { shape: [4, 64], data: x },
        f16: { shape: [4, 64], data: x, type: 'F16' },
        q8: { shape: [4, 64], data: x, type: 'Q8_0' },
        q4: { shape: [4, 64], data: x, type: 'Q4_0' },
        q41: { shape: [4, 64], data: x, type: 'Q4_1' },
        q50: { shape: [4, 64], data: x, type: 'Q5_0' },
        q51: { shape: [4, 64], data: x, type: 'Q5_1' },
        bf16: { shape: [4, 64], data: x, type: 'BF16' },
      },
    ),
  );

  it('reads metadata and tensors with ggml dims (fastest first)', () => {
    const g = readGguf(file);
    expect(g.version).toBe(3);
    expect(g.metadata.get('general.architecture')).toBe('llama');
    expect(g.metadata.get('llama.block_count')).toBe(3);
    expect(g.metadata.get('tokenizer.ggml.tokens')).toEqual(['a', 'b']);
    expect(g.metadata.get('tokenizer.ggml.scores')).toEqual([0.5, -1]);
    expect(g.tensors.get('q8')).toMatchObject({ dims: [64, 4], typeName: 'Q8_0', bytes: 8 * 34 });
    expect(g.float32('f32')).toEqual(x);
    expect(g.float32('f16').length).toBe(x.length);
  });

  it('dequantises Q4_1, Q5_0, Q5_1 within a step of their grids, and BF16 to its truncated bits', () => {
    const g = readGguf(file);
    for (const [name, levels] of [
      ['q41', 15],
      ['q50', 31],
      ['q51', 31],
    ] as const) {
      const q = g.float32(name);
      for (let b = 0; b < x.length / 32; b++) {
        const block = x.subarray(b * 32, b * 32 + 32);
        const range = Math.max(...block) - Math.min(...block);
        for (let j = 0; j < 32; j++) {
          const err = Math.abs((q[b * 32 + j] as number) - (block[j] as number));
          expect(err, `${name} block ${b} element ${j}`).toBeLessThanOrEqual(range / levels + 2e-3 * range);
        }
      }
    }
    const bf = g.float32('bf16');
    for (let i = 0; i < x.length; i++) {
      expect(Math.abs((bf[i] as number) - (x[i] as number))).toBeLessThanOrEqual(Math.abs(x[i] as number) / 128);
    }
  });

  it('dequantises F16 exactly and Q8_0 / Q4_0 within half a step (a full step at the clamped end)', () => {
    const g = readGguf(file);
    const f16 = g.float32('f16');
    for (let i = 0; i < x.length; i++) expect(Math.abs((f16[i] as number) - (x[i] as number))).toBeLessThan(2e-3);
    for (const [name, levels, slack] of [
      ['q8', 127, 0.51],
      ['q4', 8, 1.0],
    ] as const) {
      const q = g.float32(name);
      let errSum = 0;
      for (let b = 0; b < x.length / 32; b++) {
        const block = x.subarray(b * 32, b * 32 + 32);
        const amax = Math.max(...Array.from(block, Math.abs));
        const step = amax / levels;
        for (let j = 0; j < 32; j++) {
          const err = Math.abs((q[b * 32 + j] as number) - (block[j] as number));
          expect(err).toBeLessThanOrEqual(step * slack + 1e-3 * amax);
          errSum += err;
        }
      }
      expect(errSum).toBeGreaterThan(0);
    }
    // Nibble order: the low nibbles are the first 16 values of a block, the high ones the last 16.
    const q4 = g.float32('q4');
    const corr = (a: number, b: number) =>
      Math.sign(q4[a] as number) === Math.sign(x[b] as number) || Math.abs(x[b] as number) < 0.4;
    expect([0, 5, 15, 16, 20, 31].every((i) => corr(i, i))).toBe(true);
  });

  it("dequantises the k-quants Q4_K, Q5_K and Q6_K of ggml's layout to d·scale·q − dmin·min", () => {
    const rng = new Rng(12);
    const blocks = 3;
    for (const type of ['Q4_K', 'Q5_K', 'Q6_K'] as const) {
      const levels = type === 'Q4_K' ? 16 : type === 'Q5_K' ? 32 : 64;
      const k: KQuantBlocks = {
        type,
        // powers of two: exact in float16 and in every product below
        d: Array.from({ length: blocks }, () => 2 ** -(3 + rng.int(4))),
        dmin: Array.from({ length: blocks }, () => 2 ** -(4 + rng.int(4))),
        scales: Array.from({ length: blocks }, () =>
          Array.from({ length: type === 'Q6_K' ? 16 : 8 }, () => (type === 'Q6_K' ? rng.int(256) - 128 : rng.int(64))),
        ),
        mins: Array.from({ length: blocks }, () => Array.from({ length: 8 }, () => rng.int(64))),
        q: Array.from({ length: blocks }, () => Array.from({ length: 256 }, () => rng.int(levels))),
      };
      const f = write(
        `${type}.gguf`,
        encodeGguf({}, { t: { shape: [blocks, 256], data: new Float32Array(0), type, raw: packKQuant(k) } }),
      );
      const got = readGguf(f).float32('t');
      expect(got.length).toBe(blocks * 256);
      for (let b = 0; b < blocks; b++) {
        for (let i = 0; i < 256; i++) {
          const q = (k.q[b] as number[])[i] as number;
          const want =
            type === 'Q6_K'
              ? (k.d[b] as number) * ((k.scales[b] as number[])[i >> 4] as number) * (q - 32)
              : (k.d[b] as number) * ((k.scales[b] as number[])[i >> 5] as number) * q -
                (k.dmin[b] as number) * ((k.mins[b] as number[])[i >> 5] as number);
          if (got[b * 256 + i] !== want)
            expect(`${type} block ${b} value ${i}: ${got[b * 256 + i]}`).toBe(`${type} block ${b} value ${i}: ${want}`);
        }
      }
    }
  });

  it('refuses a file that is not GGUF, a truncated one and an unknown quantisation, with sentences', () => {
    expect(() => readGguf(write('not.gguf', Buffer.from('PK\x03\x04 hello world, not a model at all')))).toThrow(
      /does not start with "GGUF"/,
    );
    const whole = fs.readFileSync(file);
    expect(() => readGguf(write('cut.gguf', whole.subarray(0, whole.length - 100)))).toThrow(
      /beyond the end of the file; it may be truncated/,
    );
    expect(() => readGguf(write('cut-header.gguf', whole.subarray(0, 60)))).toThrow(/ends inside its header/);
    const odd = Buffer.from(whole);
    // the first tensor's type field: find "f32" name then skip n_dims(4) + 2 dims(16)
    const at = odd.indexOf(Buffer.from('f32')) + 3 + 4 + 16;
    odd.writeUInt32LE(16, at); // IQ2_XXS
    expect(() => readGguf(write('k.gguf', odd))).toThrow(/ggml type 16, which Flaneur cannot read yet/);
    const huge = Buffer.from(whole);
    huge.writeBigUInt64LE(10n ** 12n, 8);
    expect(() => readGguf(write('huge.gguf', huge))).toThrow(/declares 1000000000000 tensors/);
  });
});
