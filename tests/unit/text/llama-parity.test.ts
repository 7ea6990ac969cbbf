/**
 * The language encoder against PyTorch (tools/llama_reference.py, written from the Llama architecture as
 * transformers' LlamaModel runs it): ShareLock's feature, the final-norm hidden state of the last token, for
 * prompts of 2 to 17 tokens one by one and as one left-padded batch, from the same tiny random model written as
 * .safetensors (Hugging Face names) and as GGUF (llama.cpp's layout, q/k rows permuted), f32 and quantised.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  checkLlamaFits,
  LlamaEncoder as Encoder,
  type LlamaEncoder,
  openGgufLlama,
  openSafetensorsLlama,
} from '../../../native/text/llama.js';
import { fixturePath, loadTensors, relErr } from '../../helpers/fixtures.js';
import { type HfWeights, type TinyLlamaConfig, writeTinyLlama } from '../../helpers/llama-models.js';
import { tmpDir } from '../../helpers/tmp.js';

const dir = fixturePath('text', 'llama_tiny');
const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as TinyLlamaConfig;
const golden = JSON.parse(fs.readFileSync(path.join(dir, 'golden.json'), 'utf8')) as {
  sequences: number[][];
  single: number[][];
  padded_batch: number[][];
};
const weights: HfWeights = loadTensors(path.join(dir, 'model.safetensors'));
const runtime = { provider: 'cpu' as const, threads: 1 };
const TOL = 1e-4;

function worst(ours: Float32Array[], ref: number[][]): number {
  return Math.max(...ours.map((f, i) => relErr(f, Float32Array.from(ref[i] as number[]))));
}

describe('Llama last-token features match PyTorch', () => {
  const tmp = tmpDir('flaneur-llama-');
  const encoders: LlamaEncoder[] = [];
  let fromSafetensors: LlamaEncoder;
  let fromGguf: LlamaEncoder;

  beforeAll(async () => {
    fromSafetensors = await Encoder.load(openSafetensorsLlama(path.join(dir, 'model.safetensors')), { runtime });
    const gguf = writeTinyLlama(path.join(tmp, 'f32'), 'gguf', weights, config);
    fromGguf = await Encoder.load(openGgufLlama(gguf), { runtime });
    encoders.push(fromSafetensors, fromGguf);
  });
  afterAll(async () => {
    for (const e of encoders) await e.close();
  });

  it('gives each prompt length its reference feature, from safetensors and from GGUF', async () => {
    expect(golden.sequences.map((s) => s.length)).toEqual([2, 3, 6, 10, 17]);
    for (const enc of [fromSafetensors, fromGguf]) {
      const one = [];
      for (const s of golden.sequences) one.push(...(await enc.forwardBatch([s])));
      expect(one[0]?.length).toBe(config.hidden_size);
      expect(worst(one, golden.single)).toBeLessThan(TOL);
    }
  });

  it('gives a left-padded batch the reference batch features, equal to the unpadded ones', async () => {
    for (const enc of [fromSafetensors, fromGguf]) {
      const batch = await enc.forwardBatch(golden.sequences);
      expect(worst(batch, golden.padded_batch)).toBeLessThan(TOL);
      expect(worst(batch, golden.single)).toBeLessThan(TOL);
      // Grouped by length in batches of 2: still each text's own feature.
      const grouped = await enc.encodeIds(golden.sequences);
      expect(worst(grouped, golden.single)).toBeLessThan(TOL);
    }
  });

  it("puts llama.cpp's permuted q/k rows back in Hugging Face order (and only for llama files)", async () => {
    const last = [golden.sequences[4] as number[]];
    const ref = [golden.single[4] as number[]];
    // qwen2 files are not permuted by llama.cpp: written plainly, read plainly, the same model.
    const plain = await Encoder.load(
      openGgufLlama(writeTinyLlama(path.join(tmp, 'qwen'), 'gguf', weights, config, { arch: 'qwen2' })),
      { runtime },
    );
    // Permuted rows in a qwen2 file are taken as they are: a different model, a different feature.
    const scrambled = await Encoder.load(
      openGgufLlama(
        writeTinyLlama(path.join(tmp, 'qwen-permuted'), 'gguf', weights, config, { arch: 'qwen2', permute: true }),
      ),
      { runtime },
    );
    encoders.push(plain, scrambled);
    expect(worst(await plain.forwardBatch(last), ref)).toBeLessThan(TOL);
    expect(worst(await scrambled.forwardBatch(last), ref)).toBeGreaterThan(1e-2);
  });

  it('runs Q8_0 and Q4_0 files close to the float32 model (quantisation error only)', async () => {
    const errs: number[] = [];
    for (const type of ['Q8_0', 'Q4_0'] as const) {
      const enc = await Encoder.load(
        openGgufLlama(writeTinyLlama(path.join(tmp, type), 'gguf', weights, config, { type })),
        { runtime },
      );
      encoders.push(enc);
      errs.push(worst(await enc.forwardBatch(golden.sequences), golden.padded_batch));
    }
    const [q8, q4] = errs as [number, number];
    expect(q8).toBeGreaterThan(0);
    expect(q8).toBeLessThan(0.06);
    expect(q4).toBeGreaterThan(q8);
    // 16 levels per block of 32 random weights: ~10% noise per weight; dequantisation itself is checked in gguf.test.ts
    expect(q4).toBeLessThan(0.6);
  });

  it('says its size and memory need, and refuses a model that cannot fit before loading anything', () => {
    const src = openSafetensorsLlama(path.join(dir, 'model.safetensors'));
    expect(src.info.params).toBe(300 * 64 + 2 * (2 * 64 + 64 * 64 + 2 * 64 * 32 + 64 * 64 + 3 * 64 * 96) + 64);
    expect(src.info.summary).toMatch(
      /llama decoder of 0\.\d+M parameters \(2 layers, width 64, 4 heads sharing 2 key\/value heads\).*needs about [\d.]+ GB of memory/,
    );
    let loaded = false;
    const refusing = {
      ...src,
      loadWeights: () => {
        loaded = true;
        return src.loadWeights();
      },
    };
    expect(() => checkLlamaFits(src.info, 2 ** 20)).toThrow(/cannot be loaded/);
    return expect(Encoder.load(refusing, { runtime, totalMemory: 2 ** 20 }))
      .rejects.toMatchObject({
        code: 'UNSUPPORTED_MODEL',
        message: expect.stringMatching(/This machine has 0\.0 GB, so it cannot be loaded/),
      })
      .then(() => expect(loaded).toBe(false));
  });
});
