/**
 * The language encoder against PyTorch (tools/llama_reference.py, written from the Llama architecture as
 * transformers' LlamaModel runs it): ShareLock's feature, the final-norm hidden state of the last token, for
 * prompts of 2 to 17 tokens one by one and as one left-padded batch, from the same tiny random model written as
 * .safetensors (Hugging Face names) and as GGUF (llama.cpp's layout, q/k rows permuted), f32 and quantised.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeSafetensors } from '../../../native/models/safetensors.js';
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
  llama3: { rope_scaling: Record<string, unknown>; rope_freqs: number[]; sequences: number[][]; single: number[][] };
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
  let weightsInside: LlamaEncoder;

  beforeAll(async () => {
    fromSafetensors = await Encoder.load(openSafetensorsLlama(path.join(dir, 'model.safetensors')), { runtime });
    const gguf = writeTinyLlama(path.join(tmp, 'f32'), 'gguf', weights, config);
    fromGguf = await Encoder.load(openGgufLlama(gguf), { runtime });
    weightsInside = await Encoder.load(openGgufLlama(gguf), { runtime, weights: 'initializers' });
    encoders.push(fromSafetensors, fromGguf, weightsInside);
  });
  afterAll(async () => {
    for (const e of encoders) await e.close();
  });

  it('gives each prompt length its reference feature, from safetensors and from GGUF, weights inside or fed', async () => {
    expect(golden.sequences.map((s) => s.length)).toEqual([2, 3, 6, 10, 17]);
    for (const enc of [fromSafetensors, fromGguf, weightsInside]) {
      const one = [];
      for (const s of golden.sequences) one.push(...(await enc.forwardBatch([s])));
      expect(one[0]?.length).toBe(config.hidden_size);
      expect(worst(one, golden.single)).toBeLessThan(TOL);
    }
  });

  it('gives a left-padded batch the reference batch features, equal to the unpadded ones', async () => {
    for (const enc of [fromSafetensors, fromGguf, weightsInside]) {
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

  it("encodes texts with the model file's own tokenizer (GGUF metadata, or tokenizer.json beside safetensors)", async () => {
    const st = await Encoder.load(
      openSafetensorsLlama(writeTinyLlama(path.join(tmp, 'hf'), 'safetensors', weights, config)),
      {
        runtime,
      },
    );
    encoders.push(st);
    const texts = ['a photo of a dog', 'the cat on the boat', 'café'];
    expect(st.tokenize(texts)).toEqual(fromGguf.tokenize(texts));
    expect(fromGguf.tokenize(texts)[0]?.[0]).toBe(config.bos_token_id);
    const [a, b] = [await st.encodeTexts(texts), await fromGguf.encodeTexts(texts)];
    expect(
      worst(
        a,
        b.map((f) => [...f]),
      ),
    ).toBeLessThan(TOL);
    // the fixture's own folder has no tokenizer.json: only token ids can be encoded, and it says so
    expect(() => fromSafetensors.tokenize(['a dog'])).toThrow(/has no tokenizer Flaneur can read/);
  });

  it('scales rotary frequencies as Llama 3.1/3.2 do, from config.json and from GGUF rope_freqs', async () => {
    const l3 = golden.llama3;
    const hf = await Encoder.load(
      openSafetensorsLlama(
        writeTinyLlama(path.join(tmp, 'l3-hf'), 'safetensors', weights, config, { ropeScaling: l3.rope_scaling }),
      ),
      { runtime },
    );
    const gg = await Encoder.load(
      openGgufLlama(writeTinyLlama(path.join(tmp, 'l3-gguf'), 'gguf', weights, config, { ropeFreqs: l3.rope_freqs })),
      { runtime },
    );
    encoders.push(hf, gg);
    expect(hf.info.config.ropeFactors?.map((f) => Number(f.toFixed(4)))).toEqual(
      l3.rope_freqs.map((f) => Number(f.toFixed(4))),
    );
    for (const enc of [hf, gg]) {
      const feats = [];
      for (const s of l3.sequences) feats.push(...(await enc.forwardBatch([s])));
      expect(worst(feats, l3.single)).toBeLessThan(TOL);
    }
    // the scaling matters: the unscaled model's features are others
    const plain = [];
    for (const s of l3.sequences) plain.push(...(await fromSafetensors.forwardBatch([s])));
    expect(worst(plain, l3.single)).toBeGreaterThan(1e-3);
    expect(() =>
      openSafetensorsLlama(
        writeTinyLlama(path.join(tmp, 'yarn'), 'safetensors', weights, config, {
          ropeScaling: { rope_type: 'yarn', factor: 4 },
        }),
      ),
    ).toThrow(/scales its rotary embeddings as "yarn"/);
  });

  it('reads a sharded safetensors model by its index or any shard, and refuses an index pointing elsewhere', async () => {
    const dirS = path.join(tmp, 'sharded');
    writeTinyLlama(dirS, 'safetensors', weights, config);
    fs.rmSync(path.join(dirS, 'model.safetensors'));
    const names = [...weights.keys()];
    const half = Math.ceil(names.length / 2);
    const shardNames = ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'];
    const weightMap: Record<string, string> = {};
    [names.slice(0, half), names.slice(half)].forEach((part, k) => {
      const shard = shardNames[k] as string;
      const tensors = new Map(part.map((n) => [n, weights.get(n) as { shape: number[]; data: Float32Array }]));
      fs.writeFileSync(path.join(dirS, shard), encodeSafetensors(tensors));
      for (const n of part) weightMap[n] = shard;
    });
    const index = path.join(dirS, 'model.safetensors.index.json');
    fs.writeFileSync(index, JSON.stringify({ metadata: {}, weight_map: weightMap }));
    for (const entry of [index, path.join(dirS, shardNames[1] as string)]) {
      const enc = await Encoder.load(openSafetensorsLlama(entry), { runtime });
      encoders.push(enc);
      expect(worst(await enc.forwardBatch(golden.sequences), golden.padded_batch)).toBeLessThan(TOL);
    }
    const outside = { ...weightMap, 'model.norm.weight': '../model-00001-of-00002.safetensors' };
    fs.writeFileSync(index, JSON.stringify({ weight_map: outside }));
    expect(() => openSafetensorsLlama(index)).toThrow(/not a file beside it/);
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
