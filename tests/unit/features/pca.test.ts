import { describe, expect, it } from 'vitest';
import { Rng } from '../../../native/base/rng.js';
import { applyPca, fitPca, packPca, unpackPca } from '../../../native/features/pca.js';

describe('PCA', () => {
  it('recovers the axes of an anisotropic Gaussian and projects onto them', async () => {
    // Data along a rotated 3-D basis with standard deviations 5, 2, 0.5, offset by a mean.
    const rng = new Rng(3);
    const a = 0.6;
    const basis = [
      [Math.cos(a), Math.sin(a), 0],
      [-Math.sin(a), Math.cos(a), 0],
      [0, 0, 1],
    ];
    const sd = [5, 2, 0.5];
    const n = 4000;
    const rows = new Float32Array(n * 3);
    for (let i = 0; i < n; i++) {
      const z = sd.map((s) => s * rng.normal());
      for (let j = 0; j < 3; j++)
        rows[i * 3 + j] = 10 * (j + 1) + z.reduce((acc, zz, r) => acc + zz * (basis[r]?.[j] as number), 0);
    }
    const p = await fitPca(rows, 3, 2);
    expect(p.k).toBe(2);
    expect(Math.sqrt(p.variance[0] as number)).toBeCloseTo(5, 0);
    expect(Math.sqrt(p.variance[1] as number)).toBeCloseTo(2, 0);
    for (let r = 0; r < 2; r++) {
      const dot = [0, 1, 2].reduce(
        (acc, j) => acc + (p.components[r * 3 + j] as number) * (basis[r]?.[j] as number),
        0,
      );
      expect(Math.abs(dot)).toBeGreaterThan(0.995);
    }
    expect(p.mean[0]).toBeCloseTo(10, 0);
    const proj = await applyPca(p, rows);
    let v0 = 0;
    for (let i = 0; i < n; i++) v0 += (proj[i * 2] as number) ** 2;
    expect(Math.sqrt(v0 / n)).toBeCloseTo(5, 0);
    const back = unpackPca(packPca(p), 3, 2);
    expect(await applyPca(back, rows.subarray(0, 3))).toEqual(proj.subarray(0, 2));
  });
});
