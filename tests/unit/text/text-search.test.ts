/**
 * The query side of ShareLock: texts through the language model (cached) and the head's projector into normalised
 * embeddings, class prototypes from prompt templates, zero-shot votes. The projector is checked against a plain
 * loop written from the official modules (Linear, BatchNorm1d with running statistics, ReLU, …, Linear, L2 norm).
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '../../../native/base/rng.js';
import type { TextFeatureCache } from '../../../native/text/feature-cache.js';
import { LlamaEncoder, openGgufLlama } from '../../../native/text/llama.js';
import {
  initShareLock,
  SHARELOCK_LOGIT_SCALE,
  type ShareLockConfig,
  shareLockConfig,
} from '../../../native/text/sharelock.js';
import {
  classPrototypes,
  promptsFor,
  ShareLockTextEmbedder,
  ZERO_SHOT_TEMPLATES,
  zeroShotPredict,
} from '../../../native/text/text-search.js';
import { randomLlamaWeights, tinyLlamaConfig, writeTinyLlama } from '../../helpers/llama-models.js';
import { tmpDir } from '../../helpers/tmp.js';

const runtime = { provider: 'cpu' as const, threads: 1 };
const llm = tinyLlamaConfig();
const P = 'language_projector.projection';

/** The eval-mode projector as the official nn.Sequential computes it, in float64. */
function referenceProjector(c: ShareLockConfig, w: Map<string, Float32Array>, x: Float32Array): Float64Array {
  let h = Float64Array.from(x);
  const linear = (i: number, inp: Float64Array, out: number) => {
    const W = w.get(`${P}.${4 * i}.weight`) as Float32Array;
    const bias = w.get(`${P}.${4 * i}.bias`) as Float32Array;
    return Float64Array.from({ length: out }, (_, r) => {
      let s = bias[r] as number;
      for (let k = 0; k < inp.length; k++) s += (W[r * inp.length + k] as number) * (inp[k] as number);
      return s;
    });
  };
  for (let i = 0; i < c.layers - 1; i++) {
    const bn = (name: string) => w.get(`${P}.${4 * i + 1}.${name}`) as Float32Array;
    h = linear(i, h, c.hidden).map((v, j) => {
      const y =
        ((v - (bn('running_mean')[j] as number)) / Math.sqrt((bn('running_var')[j] as number) + c.bnEps)) *
          (bn('weight')[j] as number) +
        (bn('bias')[j] as number);
      return Math.max(0, y);
    });
  }
  const out = linear(c.layers - 1, h, c.visionDim);
  const norm = Math.sqrt(out.reduce((a, v) => a + v * v, 0));
  return out.map((v) => v / norm);
}

/** A head with non-trivial BatchNorm statistics (as after training), for the tiny model's width. */
function trainedLookingHead(textDim: number, visionDim: number, seed: number) {
  const rng = new Rng(seed);
  const config = shareLockConfig(textDim, visionDim, { hidden: 32, layers: 3 });
  const init = initShareLock(config, rng);
  const tensors = new Map([...init.params, ...init.buffers]);
  const fill = (t: Float32Array, f: () => number) => {
    for (let i = 0; i < t.length; i++) t[i] = f();
  };
  for (const [name, t] of tensors) {
    if (name.endsWith('running_mean') || name.endsWith('.bias')) fill(t, () => 0.2 * rng.normal());
    if (name.endsWith('running_var')) fill(t, () => 0.5 + rng.next());
    const batchNormScale = Number(name.split('.')[2]) % 4 === 1 && name.endsWith('.weight');
    if (batchNormScale) fill(t, () => 0.5 + rng.next());
  }
  return { config, tensors };
}

function memoryCache(): TextFeatureCache & { size(): number } {
  const m = new Map<string, Float32Array>();
  return {
    get: (model, texts) =>
      new Map(
        texts.flatMap((t) => (m.has(`${model}\n${t}`) ? [[t, m.get(`${model}\n${t}`)]] : [])) as [
          string,
          Float32Array,
        ][],
      ),
    put: (model, entries) => {
      for (const [t, v] of entries) m.set(`${model}\n${t}`, v);
    },
    size: () => m.size,
  };
}

describe('ShareLock text embedder', () => {
  const dir = tmpDir('flaneur-textsearch-');
  let encoder: LlamaEncoder;
  let embedder: ShareLockTextEmbedder;
  const head = trainedLookingHead(llm.hidden_size, 8, 5);
  const cache = memoryCache();
  const encoded: string[] = [];

  beforeAll(async () => {
    const file = writeTinyLlama(path.join(dir, 'llm'), 'gguf', randomLlamaWeights(llm, 4), llm);
    encoder = await LlamaEncoder.load(openGgufLlama(file), { runtime });
    const counting = {
      encodeTexts: (texts: readonly string[]) => {
        encoded.push(...texts);
        return encoder.encodeTexts(texts);
      },
    };
    embedder = await ShareLockTextEmbedder.create(
      { encoder: counting, textDim: llm.hidden_size, cache, modelKey: 'tiny', head },
      runtime,
    );
  });
  afterAll(async () => {
    await embedder?.release();
    await encoder?.close();
  });

  it("embeds texts as the official projector does with the language model's last-token features", async () => {
    const texts = ['a dog on a boat', 'the cat', 'a photo of a bicycle in the rain'];
    const { embeddings, computed } = await embedder.embed(texts);
    expect(computed).toBe(3);
    const features = await encoder.encodeTexts(texts);
    texts.forEach((_, i) => {
      const ref = referenceProjector(head.config, head.tensors, features[i] as Float32Array);
      const ours = embeddings.subarray(i * 8, (i + 1) * 8);
      for (let d = 0; d < 8; d++) expect(ours[d]).toBeCloseTo(ref[d] as number, 5);
      expect(ours.reduce((a, v) => a + v * v, 0)).toBeCloseTo(1, 5);
    });
  });

  it('encodes a text with the language model once; later queries read its cached feature', async () => {
    encoded.length = 0;
    const first = await embedder.embed(['a red kite', 'a red kite', 'a dog on a boat']);
    expect(encoded).toEqual(['a red kite']);
    expect(first.computed).toBe(1);
    const again = await embedder.embed(['a red kite']);
    expect(again.computed).toBe(0);
    expect(encoded).toEqual(['a red kite']);
    expect([...again.embeddings]).toEqual([...first.embeddings.subarray(0, 8)]);
  });

  it('projects more texts than one projector run holds, in order', async () => {
    const rng = new Rng(8);
    const features = Array.from({ length: 300 }, () =>
      Float32Array.from({ length: llm.hidden_size }, () => rng.normal()),
    );
    const out = await embedder.project(features);
    for (const i of [0, 255, 256, 299]) {
      const ref = referenceProjector(head.config, head.tensors, features[i] as Float32Array);
      for (let d = 0; d < 8; d++) expect(out[i * 8 + d]).toBeCloseTo(ref[d] as number, 5);
    }
  });

  it('refuses a head trained for a language model of another width, saying so', async () => {
    const other = trainedLookingHead(llm.hidden_size * 2, 8, 6);
    await expect(
      ShareLockTextEmbedder.create(
        { encoder, textDim: llm.hidden_size, cache, modelKey: 'tiny', head: other },
        runtime,
      ),
    ).rejects.toThrow(
      `reads text features of width ${llm.hidden_size * 2}, but the language model gives ${llm.hidden_size}`,
    );
  });
});

describe('zero-shot classes from names', () => {
  it('puts every class name in every template, class by class', () => {
    const prompts = promptsFor(['dog', 'sea lion'], ['a photo of a {}', '{} art']);
    expect(prompts).toEqual(['a photo of a dog', 'dog art', 'a photo of a sea lion', 'sea lion art']);
    expect(promptsFor(['dog'])).toHaveLength(ZERO_SHOT_TEMPLATES.length);
    expect(promptsFor(['dog'])[0]).toBe('A photo of a dog');
    expect(() => promptsFor(['dog'], ['a photo'])).toThrow('needs {} where the class name goes');
  });

  it("averages a class's template embeddings and normalises the mean", () => {
    // class 0: two orthogonal unit vectors → their bisector; class 1: one vector twice → itself
    const e = Float32Array.from([1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 1]);
    const p = classPrototypes(e, 3, 2);
    const h = Math.SQRT1_2;
    expect([...p].map((v) => Number(v.toFixed(6)))).toEqual([h, h, 0, 0, 0, 1].map((v) => Number(v.toFixed(6))));
  });

  it('votes for the most similar prototype, with its softmax probability at ShareLock’s scale', () => {
    // 3 classes × 2 images, row-major [classes, images]
    const scores = Float32Array.from([0.1, 0.9, 0.5, 0.2, 0.3, 0.1]);
    const { predicted, confidence } = zeroShotPredict(scores, 3);
    expect([...predicted]).toEqual([1, 0]);
    const soft = (xs: number[], i: number) =>
      Math.exp(SHARELOCK_LOGIT_SCALE * (xs[i] as number)) /
      xs.reduce((a, x) => a + Math.exp(SHARELOCK_LOGIT_SCALE * x), 0);
    expect(confidence[0]).toBeCloseTo(soft([0.1, 0.5, 0.3], 1), 6);
    expect(confidence[1]).toBeCloseTo(soft([0.9, 0.2, 0.1], 0), 6);
  });
});
