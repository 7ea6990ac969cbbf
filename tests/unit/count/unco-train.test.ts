/**
 * UnCo end to end on the CPU, small: a Self-Collage library from a few synthetic scenes (objects from a frozen tiny
 * ViT's attention, k-means types), collage batches through the frozen extractor, and the decoder step fitting one
 * batch (its loss halves, its count error falls to under a quarter), the batches reproducible from the seed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '../../../native/base/rng.js';
import { collageLibrary } from '../../../native/count/collage-objects.js';
import { CollagePool, collageBatch } from '../../../native/count/unco-data.js';
import {
  buildUncoStep,
  initialUncoState,
  initUncoParams,
  type UncoConfig,
  UncoStepRunner,
} from '../../../native/count/unco-step.js';
import { FeatureExtractor } from '../../../native/features/extract.js';
import { ExactKnn } from '../../../native/features/knn.js';
import { importViTFile } from '../../../native/models/import-vit.js';
import { AttentionExtractor } from '../../../native/track/attention.js';
import { makeCountScene } from '../../../tools/synth/count.js';
import { writeTinyViT } from '../../helpers/models.js';

const model = importViTFile(writeTinyViT(5));
const size = 64;
const grid = size / model.config.patchSize;
const c: UncoConfig = {
  encoderDim: model.config.dim,
  grid,
  patch: 4,
  embed: 16,
  depth: 1,
  heads: 2,
  mlpRatio: 2,
  upsamplingDim: 8,
  shots: 1,
  batch: 2,
  scaling: 10,
};
const options = { size, minCount: 1, maxCount: 8, total: 10, pasteSize: [30, 60] as [number, number], scaling: 10 };

let extractor: FeatureExtractor;
let attention: AttentionExtractor;
const knn = new ExactKnn();
let library: Awaited<ReturnType<typeof collageLibrary>>;

beforeAll(async () => {
  extractor = await FeatureExtractor.create(model, size);
  attention = await AttentionExtractor.create(model, size);
  const images = [1, 2, 3, 4].map((s) => {
    const sc = makeCountScene(50 + s, { size: 128 });
    return { width: sc.width, height: sc.height, data: sc.rgb };
  });
  library = await collageLibrary(images, (img) => attention.run(img), knn, { types: 3, seed: 2 });
});

afterAll(async () => {
  await extractor.release();
  await attention.release();
  await knn.release();
});

describe('UnCo on Self-Collages', () => {
  it('finds objects in the library images and types them', () => {
    expect(library.objects.length).toBeGreaterThan(3);
    expect(library.backgrounds.length).toBe(4);
    for (const o of library.objects) {
      expect(o.mask.length).toBe(o.width * o.height);
      expect(o.mask.some((m) => m === 1)).toBe(true);
      expect(o.type).toBeGreaterThanOrEqual(0);
      expect(o.type).toBeLessThan(3);
    }
  });

  it('makes the same batch from the same seed, with density targets that sum to the counts', async () => {
    const a = await collageBatch(extractor, library, options, c, new Rng(9));
    const b = await collageBatch(extractor, library, options, c, new Rng(9));
    expect(a.batch.latent).toEqual(b.batch.latent);
    expect(a.batch.density).toEqual(b.batch.density);
    const S = grid * c.patch;
    a.collages.forEach((k, i) => {
      const sum = a.batch.density.subarray(i * S * S, (i + 1) * S * S).reduce((x, y) => x + y, 0);
      expect(Math.abs(sum - k.count * c.scaling)).toBeLessThan(1e-3 * c.scaling * Math.max(1, k.count));
    });
  });

  it('draws a collage pool once from its seed and samples batches of its collages from the run generator', async () => {
    const pool = await CollagePool.build(extractor, library, options, c, 5, new Rng(7));
    const again = await CollagePool.build(extractor, library, options, c, 5, new Rng(7));
    // The pool is the collages collageBatch draws from the same generator, whatever the chunking.
    const direct = await collageBatch(extractor, library, options, { ...c, batch: 5 }, new Rng(7));
    expect(pool.meanCount).toBeCloseTo(direct.collages.reduce((a, k) => a + k.count, 0) / 5, 6);
    const S2 = (grid * c.patch) ** 2;
    const n = grid * grid * c.encoderDim;
    const a = pool.batch(c, new Rng(3));
    expect(a).toEqual(again.batch(c, new Rng(3)));
    for (let b = 0; b < c.batch; b++) {
      const target = a.density.subarray(b * S2, (b + 1) * S2);
      const i = [0, 1, 2, 3, 4].findIndex((j) =>
        direct.batch.density.subarray(j * S2, (j + 1) * S2).every((v, k) => v === target[k]),
      );
      expect(i).toBeGreaterThanOrEqual(0);
      expect(a.latent.subarray(b * n, (b + 1) * n)).toEqual(direct.batch.latent.subarray(i * n, (i + 1) * n));
      // Every target cell is kept by the mask.
      for (let k = 0; k < S2; k++) if ((target[k] as number) > 0) expect(a.mask[b * S2 + k]).toBe(1);
    }
  });

  it('starts the output at the mean density when asked (the last bias), elsewhere as before', () => {
    const plain = initUncoParams(c, new Rng(1));
    const started = initUncoParams(c, new Rng(1), { meanCount: 4 });
    const S = grid * c.patch;
    for (const [name, t] of plain) {
      const u = started.get(name) as Float32Array;
      if (name === 'pred_head.pred_head.1.3.bias') expect([...u]).toEqual([Math.fround((4 * c.scaling) / (S * S))]);
      else expect(u).toEqual(t);
    }
  });

  it('fits a batch of collages: the density loss halves and the count error falls to under a quarter', async () => {
    const { batch, collages } = await collageBatch(extractor, library, options, c, new Rng(4));
    const graph = buildUncoStep(c);
    const runner = await UncoStepRunner.create(graph, c, { provider: 'cpu', threads: 1 });
    const state = initialUncoState(graph, initUncoParams(c, new Rng(1)));
    try {
      const losses: number[] = [];
      const countErr: number[] = [];
      for (let i = 0; i < 100; i++) {
        const m = await runner.step(state, batch, { lr: 5e-3, wd: 0 });
        losses.push(m.loss);
        countErr.push(collages.reduce((a, k, j) => a + Math.abs((m.count[j] as number) - k.count), 0) / c.batch);
      }
      expect(state.step).toBe(100);
      expect(losses.every(Number.isFinite)).toBe(true);
      expect(losses[99] as number).toBeLessThan((losses[0] as number) / 2);
      expect(countErr[99] as number).toBeLessThan((countErr[0] as number) / 4);
    } finally {
      await runner.release();
    }
  });
});
