/**
 * An approximate index for large banks (beyond about a million patches): inverted lists over spherical k-means
 * centroids (IVF-Flat). A query visits its `nprobe` nearest lists; each list is searched exactly with the same
 * MatMul + TopK graph, queries grouped per list. Measured against exact search in `npm run bench -- knn`.
 */
import { assignNearest, sphericalKMeans } from './kmeans.js';
import { type ExactKnn, type KnnBank, makeBank } from './knn.js';

export interface IvfOptions {
  lists: number;
  /** Vectors used to train the centroids. */
  trainSample: number;
  iterations: number;
  seed: number;
}

export class IvfIndex {
  private constructor(
    readonly dim: number,
    readonly centroids: Float32Array,
    private readonly lists: { ids: Int32Array; bank: KnnBank | null }[],
  ) {}

  static async build(vectors: Float32Array, dim: number, o: IvfOptions, knn: ExactKnn): Promise<IvfIndex> {
    const n = vectors.length / dim;
    const centroids = await sphericalKMeans(knn, vectors, dim, {
      k: o.lists,
      iterations: o.iterations,
      seed: o.seed,
      sample: o.trainSample,
    });
    const lists = centroids.length / dim;
    const owner = await assignNearest(knn, vectors, centroids, dim);
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
        const a = byList.get(l);
        if (a) a.push(q);
        else byList.set(l, [q]);
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
