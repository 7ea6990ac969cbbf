/**
 * What a count leaves out, piece by piece: a region of interest masks the similarity map (the default threshold and
 * the slider alike), negative exemplars gate patches more like them than like the exemplars, and the threshold
 * rises above a look-alike group of peaks only when the groups are well apart and the exemplars in the upper one.
 */
import { describe, expect, it } from 'vitest';
import { findPeaks, type SimilarityMap } from '../../../native/count/count.js';
import { gateByNegatives, insidePolygon, maskOutside, OUTSIDE, statsThreshold } from '../../../native/count/reject.js';

describe('region of interest', () => {
  const triangle: [number, number][] = [
    [0, 0],
    [100, 0],
    [0, 100],
  ];

  it('tells inside from outside a polygon, concave ones included', () => {
    expect(insidePolygon(10, 10, triangle)).toBe(true);
    expect(insidePolygon(60, 60, triangle)).toBe(false);
    // A U shape: the notch between its arms is outside.
    const u: [number, number][] = [
      [0, 0],
      [30, 0],
      [30, 60],
      [70, 60],
      [70, 0],
      [100, 0],
      [100, 100],
      [0, 100],
    ];
    expect(insidePolygon(50, 30, u)).toBe(false);
    expect(insidePolygon(50, 80, u)).toBe(true);
    expect(insidePolygon(15, 30, u)).toBe(true);
  });

  it('masks the map outside the region, in image pixels, so peaks there never pass a threshold', () => {
    // A 50 × 50 map at 2 image pixels per map pixel, a peak in each corner.
    const W = 50;
    const data = new Float32Array(W * W).fill(0.1);
    for (const [x, y] of [
      [5, 5],
      [44, 5],
      [5, 44],
      [44, 44],
    ] as [number, number][])
      data[y * W + x] = 1;
    const map: SimilarityMap = { width: W, height: W, data, scale: 2 };
    const masked = maskOutside(map, triangle);
    // Pixel centres (x + 0.5) × 2 image pixels: inside when x + y + 1 < 50.
    for (let y = 0; y < W; y++)
      for (let x = 0; x < W; x++) {
        const inside = insidePolygon((x + 0.5) * 2, (y + 0.5) * 2, triangle);
        expect(masked.data[y * W + x] === OUTSIDE, `pixel ${x},${y}`).toBe(!inside);
      }
    const peaks = findPeaks(masked, 0.5, 3);
    expect(peaks.map((p) => [p.x, p.y])).toEqual([[11, 11]]);
    // The map itself is left as it was (the threshold is chosen on the whole image).
    expect(data.filter((v) => v === OUTSIDE)).toHaveLength(0);
  });
});

describe('negative exemplars', () => {
  it('gates a patch more like a negative than like the exemplars below zero, by how much more', () => {
    const sims = Float32Array.from([0.8, 0.6, 0.5]);
    const pos = Float32Array.from([0.9, 0.7, 0.6]);
    const neg = [Float32Array.from([0.1, 0.9, 0.2]), Float32Array.from([0.2, 0.3, 0.65])];
    const out = gateByNegatives(sims, pos, neg);
    expect(out[0]).toBeCloseTo(0.8);
    expect(out[1]).toBeCloseTo(-0.2);
    expect(out[2]).toBeCloseTo(-0.05);
  });
});

describe('a threshold from the peaks’ similarity statistics', () => {
  const spread = (centre: number, n: number, width: number) =>
    Array.from({ length: n }, (_, i) => centre + width * ((i / (n - 1)) * 2 - 1));

  it('rises above a look-alike group well apart from the exemplars’ group', () => {
    const scores = [...spread(0.9, 20, 0.05), ...spread(0.55, 40, 0.05)];
    const s = statsThreshold(scores, [0.93], 0.45);
    expect(s.raised).toBe(true);
    expect(s.threshold).toBeGreaterThan(0.6);
    expect(s.threshold).toBeLessThan(0.85);
    expect(scores.filter((v) => v >= s.threshold)).toHaveLength(20);
  });

  it('stays at the base when the peaks are one group whose similarities vary', () => {
    const s = statsThreshold(spread(0.7, 60, 0.2), [0.85], 0.45);
    expect(s.raised).toBe(false);
    expect(s.threshold).toBe(0.45);
  });

  it('stays at the base when an exemplar lies in the lower group (that group is what was asked for)', () => {
    const scores = [...spread(0.9, 20, 0.05), ...spread(0.55, 40, 0.05)];
    expect(statsThreshold(scores, [0.93, 0.56], 0.45).raised).toBe(false);
  });

  it('stays at the base with too few peaks for two groups', () => {
    expect(statsThreshold([0.9, 0.91, 0.5, 0.51], [0.9], 0.45).raised).toBe(false);
  });
});
