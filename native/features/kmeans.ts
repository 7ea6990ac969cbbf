/**
 * Spherical k-means on L2-normalised vectors, the assignment step on ONNX Runtime (the kNN graph with k = 1).
 * Used for IVF lists and for annotation-free pseudo-classes.
 */
import { Rng } from '../base/rng.js';
import { type ExactKnn, l2normalizeRows, makeBank } from './knn.js';

export function sampleIndices(n: number, m: number, rng: Rng): number[] {
  const idx = [...Array(n).keys()];
  for (let i = 0; i < Math.min(m, n); i++) {
    const j = i + rng.int(n - i);
    [idx[i], idx[j]] = [idx[j] as number, idx[i] as number];
  }
  return idx.slice(0, Math.min(m, n)).sort((a, b) => a - b);
}

export async function assignNearest(
  knn: ExactKnn,
  vectors: Float32Array,
  centroids: Float32Array,
  dim: number,
): Promise<Int32Array> {
  const { indices } = await knn.search(vectors, makeBank(centroids, dim), 1);
  return indices;
}

/** Centroids [k, dim] (normalised) of `vectors` [n, dim], trained on at most `sample` of them. */
export async function sphericalKMeans(
  knn: ExactKnn,
  vectors: Float32Array,
  dim: number,
  o: { k: number; iterations: number; seed: number; sample?: number },
): Promise<Float32Array> {
  const n = vectors.length / dim;
  const rng = new Rng(o.seed);
  const train = sampleIndices(n, o.sample ?? n, rng);
  const tv = new Float32Array(train.length * dim);
  train.forEach((i, j) => {
    tv.set(vectors.subarray(i * dim, (i + 1) * dim), j * dim);
  });
  const k = Math.min(o.k, train.length);
  const centroids = new Float32Array(k * dim);
  sampleIndices(train.length, k, rng).forEach((i, c) => {
    centroids.set(tv.subarray(i * dim, (i + 1) * dim), c * dim);
  });
  for (let it = 0; it < o.iterations; it++) {
    const a = await assignNearest(knn, tv, centroids, dim);
    const sums = new Float64Array(k * dim);
    const counts = new Int32Array(k);
    for (let j = 0; j < train.length; j++) {
      const c = a[j] as number;
      counts[c] = (counts[c] as number) + 1;
      for (let d = 0; d < dim; d++) sums[c * dim + d] = (sums[c * dim + d] as number) + (tv[j * dim + d] as number);
    }
    for (let c = 0; c < k; c++) {
      if (counts[c] === 0) {
        // An empty cluster restarts from a random training vector.
        const j = rng.int(train.length);
        centroids.set(tv.subarray(j * dim, (j + 1) * dim), c * dim);
        continue;
      }
      for (let d = 0; d < dim; d++) centroids[c * dim + d] = sums[c * dim + d] as number;
    }
    l2normalizeRows(centroids, dim);
  }
  return centroids;
}
