/**
 * An approximate index for large banks (beyond about a million patches): inverted lists over spherical k-means
 * centroids (IVF-Flat). A query visits its `nprobe` nearest lists; each list is searched exactly with the same
 * MatMul + TopK graph, queries grouped per list. Measured against exact search in `npm run bench -- knn`.
 */
import type { Rng as RngType } from '../train/rng.js';
import { Rng } from '../train/rng.js';
import { type ExactKnn, type KnnBank, l2normalizeRows, makeBank } from './knn.js';

export interface IvfOptions {
  lists: number;
  /** Vectors used to train the centroids. */
  trainSample: number;
  iterations: number;
  seed: number;
}

function sample(n: number, m: number, rng: RngType): number[] {
  const idx = [...Array(n).keys()];
  for (let i = 0; i < Math.min(m, n); i++) {
    const j = i + rng.int(n - i);
    [idx[i], idx[j]] = [idx[j] as number, idx[i] as number];
  }
  return idx.slice(0, Math.min(m, n)).sort((a, b) => a - b);
}

async function assign(knn: ExactKnn, vectors: Float32Array, centroids: Float32Array, dim: number): Promise<Int32Array> {
  const { indices } = await knn.search(vectors, makeBank(centroids, dim), 1);
  return indices;
}

export class IvfIndex {
  private constructor(
    readonly dim: number,
    readonly centroids: Float32Array,
    private readonly lists: { ids: Int32Array; bank: KnnBank | null }[],
  ) {}

  static async build(vectors: Float32Array, dim: number, o: IvfOptions, knn: ExactKnn): Promise<IvfIndex> {
    const n = vectors.length / dim;
    const rng = new Rng(o.seed);
    const train = sample(n, o.trainSample, rng);
    const tv = new Float32Array(train.length * dim);
    train.forEach((i, j) => {
      tv.set(vectors.subarray(i * dim, (i + 1) * dim), j * dim);
    });
    const lists = Math.min(o.lists, train.length);
    const centroids = new Float32Array(lists * dim);
    sample(train.length, lists, rng).forEach((i, c) => {
      centroids.set(tv.subarray(i * dim, (i + 1) * dim), c * dim);
    });
    for (let it = 0; it < o.iterations; it++) {
      const a = await assign(knn, tv, centroids, dim);
      const sums = new Float64Array(lists * dim);
      const counts = new Int32Array(lists);
      for (let j = 0; j < train.length; j++) {
        const c = a[j] as number;
        counts[c] = (counts[c] as number) + 1;
        for (let d = 0; d < dim; d++) sums[c * dim + d] = (sums[c * dim + d] as number) + (tv[j * dim + d] as number);
      }
      for (let c = 0; c < lists; c++) {
        if (counts[c] === 0) {
          // An empty list takes a random training vector.
          const j = rng.int(train.length);
          centroids.set(tv.subarray(j * dim, (j + 1) * dim), c * dim);
          continue;
        }
        for (let d = 0; d < dim; d++) centroids[c * dim + d] = sums[c * dim + d] as number;
      }
      l2normalizeRows(centroids, dim);
    }
    const owner = await assign(knn, vectors, centroids, dim);
    const members: number[][] = Array.from({ length: lists }, () => []);
    for (let i = 0; i < n; i++) members[owner[i] as number]?.push(i);
    const built = members.map((ids) => {
      if (ids.length === 0) return { ids: new Int32Array(0), bank: null };
      const v = new Float32Array(ids.length * dim);
      ids.forEach((id, j) => {
        v.set(vectors.subarray(id * dim, (id + 1) * dim), j * dim);
      });
      return { ids: Int32Array.from(ids), bank: makeBank(v, dim) };
    });
    return new IvfIndex(dim, centroids, built);
  }

  async search(
    queries: Float32Array,
    k: number,
    nprobe: number,
    knn: ExactKnn,
  ): Promise<{ indices: Int32Array; sims: Float32Array }> {
    const { dim } = this;
    const nq = queries.length / dim;
    const probes = (await knn.search(queries, makeBank(this.centroids, dim), nprobe)).indices;
    const byList = new Map<number, number[]>();
    for (let q = 0; q < nq; q++) {
      for (let j = 0; j < nprobe; j++) {
        const l = probes[q * nprobe + j] as number;
        if (l < 0) continue;
        let a = byList.get(l);
        if (!a) byList.set(l, (a = []));
        a.push(q);
      }
    }
    const cand: { id: number; sim: number }[][] = Array.from({ length: nq }, () => []);
    for (const [l, qs] of byList) {
      const list = this.lists[l];
      if (!list?.bank) continue;
      const sub = new Float32Array(qs.length * dim);
      qs.forEach((q, j) => {
        sub.set(queries.subarray(q * dim, (q + 1) * dim), j * dim);
      });
      const res = await knn.search(sub, list.bank, k);
      const kk = res.indices.length / qs.length;
      qs.forEach((q, j) => {
        for (let t = 0; t < kk; t++) {
          const local = res.indices[j * kk + t] as number;
          if (local >= 0) cand[q]?.push({ id: list.ids[local] as number, sim: res.sims[j * kk + t] as number });
        }
      });
    }
    const indices = new Int32Array(nq * k).fill(-1);
    const sims = new Float32Array(nq * k).fill(Number.NEGATIVE_INFINITY);
    cand.forEach((c, q) => {
      c.sort((a, b) => b.sim - a.sim);
      for (let t = 0; t < Math.min(k, c.length); t++) {
        indices[q * k + t] = c[t]?.id as number;
        sims[q * k + t] = c[t]?.sim as number;
      }
    });
    return { indices, sims };
  }
}
