/** Ranking images for a text embedding: the exact cosine top-k, best first, as a brute-force loop finds it. */
import { afterAll, describe, expect, it } from 'vitest';
import { Rng } from '../../../native/base/rng.js';
import { l2normalizeRows } from '../../../native/features/knn.js';
import { scanTopK, TextRanker } from '../../../native/text/rank.js';

describe('TextRanker', () => {
  const rng = new Rng(9);
  const dim = 24;
  const n = 5000;
  const rows = l2normalizeRows(
    Float32Array.from({ length: n * dim }, () => rng.normal()),
    dim,
  );
  const ranker = new TextRanker(rows, dim, { provider: 'cpu', threads: 1 });
  afterAll(() => ranker.release());

  it('returns the k most similar rows, best first, with their cosine similarities', async () => {
    for (let t = 0; t < 3; t++) {
      const q = l2normalizeRows(
        Float32Array.from({ length: dim }, () => rng.normal()),
        dim,
      );
      const brute = Array.from({ length: n }, (_, i) => {
        let s = 0;
        for (let j = 0; j < dim; j++) s += (rows[i * dim + j] as number) * (q[j] as number);
        return [i, s] as const;
      }).sort((a, b) => b[1] - a[1]);
      const { indices, scores } = await ranker.rank(q, 10);
      expect(indices).toEqual(brute.slice(0, 10).map(([i]) => i));
      scores.forEach((s, i) => {
        expect(s).toBeCloseTo(brute[i]?.[1] as number, 5);
      });
    }
  });

  it('returns every row when k exceeds the library', async () => {
    const small = new TextRanker(rows.subarray(0, 3 * dim), dim, { provider: 'cpu', threads: 1 });
    const { indices } = await small.rank(rows.subarray(dim, 2 * dim), 10);
    await small.release();
    expect(indices).toHaveLength(3);
    expect(indices[0]).toBe(1);
  });

  it('gives the same ranking from the blocked JavaScript scan (ties by index)', async () => {
    const q = l2normalizeRows(
      Float32Array.from({ length: dim }, () => rng.normal()),
      dim,
    );
    const ours = scanTopK(rows, dim, q, 50);
    const ort = await ranker.rank(q, 50);
    expect(ours.indices).toEqual(ort.indices);
    ours.scores.forEach((s, i) => {
      expect(s).toBeCloseTo(ort.scores[i] as number, 5);
    });
    // fewer rows than k: every row, best first
    expect(scanTopK(rows.subarray(0, 0), dim, q, 5).indices).toEqual([]);
  });

  it("scores every row for several queries at once (a map's colours, zero-shot prototypes)", async () => {
    const qs = l2normalizeRows(
      Float32Array.from({ length: 2 * dim }, () => rng.normal()),
      dim,
    );
    const all = await ranker.scores(qs);
    expect(all).toHaveLength(2 * n);
    for (const [qi, i] of [
      [0, 0],
      [1, 4999],
      [1, 1234],
    ] as const) {
      let s = 0;
      for (let j = 0; j < dim; j++) s += (rows[i * dim + j] as number) * (qs[qi * dim + j] as number);
      expect(all[qi * n + i]).toBeCloseTo(s, 5);
    }
  });
});
