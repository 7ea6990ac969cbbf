/**
 * Quantised GGUF weights kept quantised: every block type dequantised as ggml defines it (tools/
 * ggml_reference.py, from ggml-common.h / ggml-quants.c), mapped exactly onto MatMulNBits codes, and tiny
 * Llama models of Q8_0, Q4_0, the other 32-blocks and a Q4_K_M-style Q4_K + Q6_K mix giving the features of the same
 * weights dequantised to float32; the memory an 8B Q4_K_M needs, from its header alone.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { GGML_TYPES, readGguf } from '../../../native/text/gguf.js';
import { quantMatrix, quantMatrixValues } from '../../../native/text/gguf-quant.js';
import { checkLlamaFits, LlamaEncoder, openGgufLlama } from '../../../native/text/llama.js';
import { fixturePath, loadTensors, relErr } from '../../helpers/fixtures.js';
import {
  llama3_8bQ4KMHeader,
  randomLlamaWeights,
  tinyLlamaConfig,
  writeTinyLlama,
} from '../../helpers/llama-models.js';
import { tmpDir } from '../../helpers/tmp.js';

const runtime = { provider: 'cpu' as const, threads: 1 };
const BLOCK_TYPES = ['Q8_0', 'Q4_0', 'Q4_1', 'Q5_0', 'Q5_1', 'Q4_K', 'Q5_K', 'Q6_K'] as const;

/** Values that differ (−0 and +0 equal: ggml's (q − 8)·d gives −0 where d < 0, q·d + m gives +0). */
function mismatches(a: Float32Array, b: Float32Array): number {
  let n = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) n++;
  return n + Math.abs(a.length - b.length);
}

describe("ggml's quantised blocks", () => {
  const gguf = readGguf(fixturePath('text', 'ggml_blocks.gguf'));
  const ref = loadTensors(fixturePath('text', 'ggml_blocks.safetensors'));

  it('dequantise to exactly the float32 values of the Python reference written from ggml', () => {
    for (const type of BLOCK_TYPES) {
      const want = ref.get(type);
      expect(want?.shape, type).toEqual([2, 512]);
      const got = gguf.float32(type);
      expect(`${type}: ${mismatches(got, want?.data as Float32Array)} values differ`).toBe(`${type}: 0 values differ`);
      expect(Math.max(...Array.from(got, Math.abs)), type).toBeGreaterThan(0);
    }
  });

  it('become MatMulNBits codes, scales, zero points and mins that stand for exactly those values', () => {
    const bits: Record<string, number> = {};
    for (const type of BLOCK_TYPES) {
      const m = quantMatrix(gguf.raw(type), GGML_TYPES[type], 2, 512);
      bits[type] = m.bits;
      expect(m.codes.length).toBe((2 * 512 * m.bits) / 8);
      const values = quantMatrixValues(m);
      expect(`${type}: ${mismatches(values, gguf.float32(type))} values differ`).toBe(`${type}: 0 values differ`);
    }
    expect(bits).toEqual({ Q8_0: 8, Q4_0: 4, Q4_1: 4, Q5_0: 8, Q5_1: 8, Q4_K: 4, Q5_K: 8, Q6_K: 8 });
  });
});

describe('a quantised Llama runs its weights quantised', () => {
  const tmp = tmpDir('flaneur-llama-quant-');
  const encoders: LlamaEncoder[] = [];
  afterAll(async () => {
    for (const e of encoders) await e.close();
  });
  const seqs = [
    [1, 5, 9],
    [1, 200, 7, 7, 30, 4],
    [1, 2],
    [1, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49],
  ];

  /** Features kept quantised vs the same file's weights dequantised to float32, one by one and in a padded batch. */
  async function compare(file: string): Promise<{ err: number; quant: LlamaEncoder; f32: LlamaEncoder }> {
    const src = openGgufLlama(file);
    const quant = await LlamaEncoder.load(src, { runtime });
    const f32 = await LlamaEncoder.load(src, { runtime, dequantize: true });
    encoders.push(quant, f32);
    const a = await quant.forwardBatch(seqs);
    const b = await f32.forwardBatch(seqs);
    let err = Math.max(...a.map((f, i) => relErr(f, b[i] as Float32Array)));
    for (const [i, s] of seqs.entries()) {
      const [one] = await quant.forwardBatch([s]);
      err = Math.max(err, relErr(one as Float32Array, b[i] as Float32Array));
    }
    return { err, quant, f32 };
  }

  it('gives the float32 features of its dequantised weights (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1) within 1e-4', async () => {
    const c = tinyLlamaConfig({ hidden_size: 64, intermediate_size: 96 });
    const w = randomLlamaWeights(c, 11);
    for (const type of ['Q8_0', 'Q4_0', 'Q4_1', 'Q5_0', 'Q5_1'] as const) {
      const { err, quant, f32 } = await compare(writeTinyLlama(path.join(tmp, type), 'gguf', w, c, { type }));
      expect(err, type).toBeLessThan(1e-4);
      expect(quant.info.weightBytes, type).toBeLessThan(f32.info.weightBytes / 2.5);
      expect(quant.info.summary).toContain(`keeps its ${type} weights quantised`);
    }
  });

  it('runs a Q4_K_M-style mix (Q4_K, with Q6_K attn_v / ffn_down in some layers) as its float32 within 1e-4', async () => {
    const c = tinyLlamaConfig({ hidden_size: 256, intermediate_size: 512, num_hidden_layers: 3 });
    const w = randomLlamaWeights(c, 12);
    const file = writeTinyLlama(path.join(tmp, 'q4km'), 'gguf', w, c, {
      type: 'Q4_K',
      typeOf: (name) => (/^blk\.[02]\.(attn_v|ffn_down)/.test(name) ? 'Q6_K' : undefined),
    });
    const g = readGguf(file);
    expect(g.tensors.get('blk.0.ffn_down.weight')?.typeName).toBe('Q6_K');
    expect(g.tensors.get('blk.1.ffn_down.weight')?.typeName).toBe('Q4_K');
    const { err, quant } = await compare(file);
    expect(err).toBeLessThan(1e-4);
    expect(quant.info.summary).toContain('keeps its Q4_K, Q6_K weights quantised');
    // the quantised features are not the float32 model's: the comparison can fail
    const plain = await LlamaEncoder.load(openGgufLlama(writeTinyLlama(path.join(tmp, 'q4km-f32'), 'gguf', w, c)), {
      runtime,
    });
    encoders.push(plain);
    const [a] = await quant.forwardBatch([seqs[1] as number[]]);
    const [b] = await plain.forwardBatch([seqs[1] as number[]]);
    expect(relErr(a as Float32Array, b as Float32Array)).toBeGreaterThan(1e-3);
  });

  it('keeps the same features with its codes fed to one graph as inside per-layer graphs (its default)', async () => {
    const c = tinyLlamaConfig({ hidden_size: 256, intermediate_size: 512, num_hidden_layers: 2 });
    const file = writeTinyLlama(path.join(tmp, 'q4k-init'), 'gguf', randomLlamaWeights(c, 13), c, { type: 'Q4_K' });
    const fed = await LlamaEncoder.load(openGgufLlama(file), { runtime, weights: 'inputs' });
    const inside = await LlamaEncoder.load(openGgufLlama(file), { runtime, weights: 'initializers' });
    encoders.push(fed, inside);
    const a = await fed.forwardBatch(seqs);
    const b = await inside.forwardBatch(seqs);
    expect(Math.max(...a.map((f, i) => relErr(f, b[i] as Float32Array)))).toBeLessThan(1e-4);
  });
});

describe('the memory an 8B Q4_K_M needs, from its header', () => {
  const tmp = tmpDir('flaneur-llama-8b-');
  const GB = 2 ** 30;

  it('is what the Q4_K / Q6_K weights take kept quantised, not their float32 size; it fits 16 GB, not 8 GB', () => {
    const { header, fileBytes } = llama3_8bQ4KMHeader();
    // the header, then a sparse file as long as the real one (nothing of its 4.9 GB written)
    const file = path.join(tmp, 'Meta-Llama-3-8B.Q4_K_M.gguf');
    fs.writeFileSync(file, header);
    fs.truncateSync(file, fileBytes);
    expect(fileBytes / 1e9).toBeCloseTo(4.92, 1);
    const info = openGgufLlama(file).info;
    expect(info.params).toBe(7_504_924_672); // 8.03B less the output head
    const f32 = info.params * 4;
    expect(f32 / GB).toBeGreaterThan(27);
    expect(info.weightBytes / GB).toBeGreaterThan(5);
    expect(info.weightBytes / GB).toBeLessThan(6);
    // + working memory of a batch of 32 texts of 256 tokens (3.3 GB) and one projection widened (0.2 GB)
    expect(info.memoryBytes / GB).toBeLessThan(9.5);
    expect(info.summary).toMatch(
      /Meta-Llama-3-8B\.Q4_K_M\.gguf: a llama decoder of 7\.5B parameters .* 4\.\d GB on disk; Flaneur keeps its Q4_K, Q6_K weights quantised \(5\.\d GB\) and needs about \d\.\d GB of memory\./,
    );
    expect(() => checkLlamaFits(info, 16 * GB)).not.toThrow();
    expect(() => checkLlamaFits(info, 8 * GB)).toThrow(/This machine has 8\.0 GB, so it cannot be loaded/);
    // and the float32 path it replaces would refuse a 32 GB machine
    expect(f32).toBeGreaterThan(0.8 * 32 * GB);
  });
});
