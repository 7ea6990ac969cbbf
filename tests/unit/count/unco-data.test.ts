import { describe, expect, it } from 'vitest';
import { Rng } from '../../../native/base/rng.js';
import { boxFeature, poolDensity } from '../../../native/count/unco-data.js';
import { lossMask } from '../../../native/count/unco-step.js';

describe('UnCo batches', () => {
  it('pools a density map into cells without changing its total', () => {
    const d = new Float32Array(8 * 8);
    d[0] = 1;
    d[9] = 2;
    d[63] = 4;
    d[4] = 0.5;
    const p = poolDensity(d, 8, 4);
    expect([...p]).toEqual([3, 0.5, 0, 4]);
    expect(() => poolDensity(d, 8, 3)).toThrow();
  });

  it('takes the mean feature of the patches under an exemplar box, or the patch under a tiny box', () => {
    // A 4x4 grid of 2-d features (x, y of the patch) on a 64 px image.
    const f = new Float32Array(16 * 2);
    for (let i = 0; i < 16; i++) f.set([i % 4, Math.floor(i / 4)], i * 2);
    const grid = { gridH: 4, gridW: 4 };
    const img = { width: 64, height: 64 };
    expect([...boxFeature(f, grid, 2, [16, 0, 48, 32], img)]).toEqual([1.5, 0.5]);
    expect([...boxFeature(f, grid, 2, [50, 50, 53, 53], img)]).toEqual([3, 3]);
  });

  it('keeps every object pixel in the loss mask and drops about a fifth of the rest', () => {
    const d = new Float32Array(10000);
    for (let i = 0; i < 100; i++) d[i * 37] = 1;
    const m = lossMask(d, new Rng(3));
    for (let i = 0; i < 100; i++) expect(m[i * 37]).toBe(1);
    const kept = m.reduce((a, v) => a + v, 0);
    expect(kept / d.length).toBeGreaterThan(0.77);
    expect(kept / d.length).toBeLessThan(0.83);
  });
});
