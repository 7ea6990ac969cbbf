import { afterAll, describe, expect, it } from 'vitest';
import { Rng } from '../../../native/base/rng.js';
import { IvfIndex } from '../../../native/features/ivf.js';
import { ExactKnn, l2normalizeRows, makeBank } from '../../../native/features/knn.js';

function clustered(n: number, dim: number, seed: number): Float32Array {
  const r = new Rng(seed);
  const centres = Float32Array.from({ length: 50 * dim }, () => r.normal());
  const out = new Float32Array(n * dim);
  for (let i = 0; i < n; i++) {
    const c = r.int(50);
    for (let d = 0; d < dim; d++) out[i * dim + d] = (centres[c * dim + d] as number) + 0.5 * r.normal();
  }
  return l2normalizeRows(out, dim);
}

describe('IVF approximate index', () => {
  const knn = new ExactKnn();
  afterAll(() => knn.release());

  it('finds most of the exact neighbours, more with more probes, and all when it probes every list', async () => {
    const dim = 32;
    const bank = clustered(6000, dim, 1);
    const q = clustered(64, dim, 2);
    const exact = await knn.search(q, makeBank(bank, dim), 10);
    const ivf = await IvfIndex.build(bank, dim, { lists: 32, trainSample: 3000, iterations: 5, seed: 1 }, knn);
    const recall = async (nprobe: number) => {
      const a = await ivf.search(q, 10, nprobe, knn);
      let hit = 0;
      for (let i = 0; i < 64; i++) {
        const t = new Set(exact.indices.subarray(i * 10, (i + 1) * 10));
        for (let j = 0; j < 10; j++) if (t.has(a.indices[i * 10 + j] as number)) hit++;
      }
      return hit / 640;
    };
    const r2 = await recall(2);
    const r8 = await recall(8);
    expect(r2).toBeGreaterThan(0.5);
    expect(r8).toBeGreaterThanOrEqual(r2);
    expect(await recall(32)).toBe(1);
  });
});
