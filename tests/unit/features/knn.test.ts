import { afterAll, describe, expect, it } from 'vitest';
import { Rng } from '../../../native/base/rng.js';
import { ExactKnn, l2normalizeRows, makeBank } from '../../../native/features/knn.js';

function randomRows(n: number, dim: number, seed: number): Float32Array {
  const r = new Rng(seed);
  return l2normalizeRows(
    Float32Array.from({ length: n * dim }, () => r.normal()),
    dim,
  );
}

function bruteForce(q: Float32Array, bank: Float32Array, dim: number, k: number): number[][] {
  const nq = q.length / dim;
  const nb = bank.length / dim;
  const out: number[][] = [];
  for (let i = 0; i < nq; i++) {
    const sims: [number, number][] = [];
    for (let j = 0; j < nb; j++) {
      let s = 0;
      for (let d = 0; d < dim; d++) s += (q[i * dim + d] as number) * (bank[j * dim + d] as number);
      sims.push([s, j]);
    }
    sims.sort((a, b) => b[0] - a[0]);
    out.push(sims.slice(0, k).map(([, j]) => j));
  }
  return out;
}

describe('exact kNN', () => {
  const knn = new ExactKnn();
  afterAll(() => knn.release());

  it.each([
    ['one chunk', 3000, 4096],
    ['several chunks (merged)', 5000, 1024],
  ])('equals brute force on seeded random data (%s)', async (_n, size, chunk) => {
    const dim = 32;
    const bank = randomRows(size, dim, 1);
    const q = randomRows(50, dim, 2);
    const res = await knn.search(q, makeBank(bank, dim, 'float32', chunk), 30);
    const ref = bruteForce(q, bank, dim, 30);
    for (let i = 0; i < 50; i++) expect(Array.from(res.indices.subarray(i * 30, (i + 1) * 30))).toEqual(ref[i]);
    for (let i = 1; i < 30; i++) expect(res.sims[i] as number).toBeLessThanOrEqual(res.sims[i - 1] as number);
  });

  it('searches an f16 bank with nearly the same neighbours', async () => {
    const dim = 32;
    const bank = randomRows(2000, dim, 3);
    const q = randomRows(20, dim, 4);
    const res = await knn.search(q, makeBank(bank, dim, 'float16', 700), 10);
    const ref = bruteForce(q, bank, dim, 10);
    let same = 0;
    for (let i = 0; i < 20; i++)
      same += ref[i]?.filter((j) => res.indices.subarray(i * 10, (i + 1) * 10).includes(j)).length ?? 0;
    expect(same / 200).toBeGreaterThan(0.95);
  });

  it('returns fewer neighbours than asked when the bank is small', async () => {
    const res = await knn.search(randomRows(2, 8, 5), makeBank(randomRows(3, 8, 6), 8), 30);
    expect(res.indices.length).toBe(2 * 3);
  });
});
