import { afterAll, describe, expect, it } from 'vitest';
import { Rng } from '../../../native/base/rng.js';
import { countAutomatically, otsu } from '../../../native/count/auto.js';
import { components, countByColour, countWithExemplars, findPeaks } from '../../../native/count/count.js';
import { FeatureExtractor } from '../../../native/features/extract.js';
import { ExactKnn } from '../../../native/features/knn.js';
import { presetConfig, vitParamShapes } from '../../../native/models/vit.js';
import { initParams } from '../../../native/train/train-dino.js';
import { makeCountScene } from '../../../tools/synth/count.js';

describe('counting pieces', () => {
  it('finds separated peaks above a threshold, strongest first', () => {
    const W = 20;
    const data = new Float32Array(W * W);
    const bump = (cx: number, cy: number, h: number) => {
      for (let y = 0; y < W; y++)
        for (let x = 0; x < W; x++)
          data[y * W + x] = Math.max(data[y * W + x] as number, h * Math.exp(-((x - cx) ** 2 + (y - cy) ** 2) / 4));
    };
    bump(4, 4, 1);
    bump(6, 5, 0.9); // too close to the first: suppressed
    bump(15, 15, 0.8);
    bump(15, 4, 0.2); // below the threshold
    const peaks = findPeaks({ width: W, height: W, data, scale: 2 }, 0.5, 4);
    expect(peaks.map((p) => [p.x, p.y])).toEqual([
      [9, 9],
      [31, 31],
    ]);
  });

  it('labels 4-connected components', () => {
    const m = Uint8Array.from([1, 1, 0, 0, 0, 1, 0, 1, 1, 0, 0, 1, 0, 0, 0, 1]);
    // 1 1 0 0 / 0 1 0 1 / 1 0 0 1 / 0 0 0 1: an L of three, a bar of three, a lone pixel.
    expect(components(m, 4, 4).sizes.sort()).toEqual([1, 3, 3]);
  });

  it('splits values with Otsu between two modes', () => {
    const v = Float32Array.from([...Array(50).fill(0.1), ...Array(50).fill(0.9)]);
    const t = otsu(v);
    expect(t).toBeGreaterThan(0.1);
    expect(t).toBeLessThan(0.9);
  });

  it('counts a synthetic scene by colour (the baseline) close to the truth when colours are distinct', () => {
    const s = makeCountScene(7002);
    const r = countByColour({ width: s.width, height: s.height, data: s.rgb }, s.exemplar);
    expect(Math.abs(r.count - s.count)).toBeLessThanOrEqual(Math.max(3, 0.3 * s.count));
  });
});

describe('exemplar and automatic counting on model features', () => {
  const cfg = presetConfig('vit_s16');
  const model = {
    config: cfg,
    weights: initParams(vitParamShapes(cfg), new Rng(3)),
    scheme: 'official' as const,
    sourceDtype: 'F32',
    ignored: [],
  };
  const knn = new ExactKnn();
  let extractors: FeatureExtractor[] = [];
  afterAll(async () => {
    for (const e of extractors) await e.release();
    await knn.release();
  });

  it('counts fewer things as the threshold rises, never closer together than the exemplar radius', async () => {
    extractors = await Promise.all([224, 448].map((s) => FeatureExtractor.create(model, s)));
    const s = makeCountScene(7003);
    const img = { width: s.width, height: s.height, data: s.rgb };
    const r = await countWithExemplars(extractors, img, [s.exemplar]);
    expect(r.count).toBeGreaterThan(0);
    const higher = await countWithExemplars(extractors, img, [s.exemplar], { threshold: r.threshold + 0.1 });
    expect(higher.count).toBeLessThan(r.count);
    for (const p of r.points) {
      expect(p.x).toBeGreaterThanOrEqual(0);
      expect(p.x).toBeLessThanOrEqual(s.width);
      for (const q of r.points)
        if (p !== q) expect(Math.hypot(p.x - q.x, p.y - q.y)).toBeGreaterThan(r.radius * r.map.scale * 0.99);
    }
    const auto = await countAutomatically(extractors[1] as FeatureExtractor, knn, img);
    expect(auto.clusters.length).toBeGreaterThan(0);
    expect(auto.count).toBeGreaterThan(0);
  });
});
