/**
 * Automatic counting: no exemplar. Salient patches (those least like the image's average patch, split by Otsu's
 * threshold) are clustered; each cluster's cells form blobs on the patch grid; the cluster with the most blobs is
 * the repeated structure, counted by peaks of its prototype's similarity map, suppressed at the blobs' size.
 */
import type { FeatureExtractor } from '../features/extract.js';
import { sphericalKMeans } from '../features/kmeans.js';
import { type ExactKnn, l2normalizeRows } from '../features/knn.js';
import type { RgbLike } from '../models/preprocess.js';
import { components, findPeaks, mapSize, type SimilarityMap, upsample } from './count.js';

export interface AutoCountResult {
  count: number;
  points: { x: number; y: number; score: number }[];
  /** Blobs per cluster of salient patches; `chosen` is the one counted. */
  clusters: { blobs: number; patches: number }[];
  chosen: number;
  threshold: number;
  map: SimilarityMap;
}

export function otsu(values: Float32Array): number {
  let lo = Number.POSITIVE_INFINITY;
  let hi = Number.NEGATIVE_INFINITY;
  for (const v of values) {
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  const bins = 64;
  const hist = new Float64Array(bins);
  for (const v of values) {
    const b = Math.min(bins - 1, Math.floor(((v - lo) / (hi - lo || 1)) * bins));
    hist[b] = (hist[b] as number) + 1;
  }
  const total = values.length;
  let sumAll = 0;
  for (let i = 0; i < bins; i++) sumAll += i * (hist[i] as number);
  let wB = 0;
  let sumB = 0;
  let best = 0;
  let bestVar = -1;
  for (let i = 0; i < bins; i++) {
    wB += hist[i] as number;
    if (wB === 0 || wB === total) continue;
    sumB += i * (hist[i] as number);
    const mB = sumB / wB;
    const mF = (sumAll - sumB) / (total - wB);
    const v = wB * (total - wB) * (mB - mF) ** 2;
    if (v > bestVar) {
      bestVar = v;
      best = i;
    }
  }
  return lo + ((best + 1) / bins) * (hi - lo);
}

export async function countAutomatically(
  ex: FeatureExtractor,
  knn: ExactKnn,
  img: RgbLike,
  o: { clusters?: number } = {},
): Promise<AutoCountResult> {
  const [f] = await ex.run([img]);
  if (!f) throw new Error('no features');
  const dim = ex.model.config.dim;
  const { gridH, gridW } = f;
  const n = gridH * gridW;
  const feats = l2normalizeRows(f.patches, dim);
  const mean = new Float32Array(dim);
  for (let i = 0; i < n; i++)
    for (let d = 0; d < dim; d++) mean[d] = (mean[d] as number) + (feats[i * dim + d] as number);
  l2normalizeRows(mean, dim);
  const saliency = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let d = 0; d < dim; d++) s += (feats[i * dim + d] as number) * (mean[d] as number);
    saliency[i] = 1 - s;
  }
  const t = otsu(saliency);
  const fg = [...Array(n).keys()].filter((i) => (saliency[i] as number) > t);
  const K = Math.min(o.clusters ?? 3, Math.max(1, fg.length));
  const fgFeats = new Float32Array(fg.length * dim);
  fg.forEach((p, j) => {
    fgFeats.set(feats.subarray(p * dim, (p + 1) * dim), j * dim);
  });
  const centroids = await sphericalKMeans(knn, fgFeats, dim, { k: K, iterations: 10, seed: 0 });
  const k = centroids.length / dim;
  const owner = new Int32Array(fg.length);
  fg.forEach((_, j) => {
    let best = 0;
    let bs = Number.NEGATIVE_INFINITY;
    for (let c = 0; c < k; c++) {
      let s = 0;
      for (let d = 0; d < dim; d++) s += (fgFeats[j * dim + d] as number) * (centroids[c * dim + d] as number);
      if (s > bs) {
        bs = s;
        best = c;
      }
    }
    owner[j] = best;
  });
  const clusters = Array.from({ length: k }, (_, c) => {
    const mask = new Uint8Array(n);
    fg.forEach((p, j) => {
      if (owner[j] === c) mask[p] = 1;
    });
    const { sizes } = components(mask, gridW, gridH);
    // Single-cell specks are noise unless that is all there is.
    const real = sizes.filter((z) => z > 1);
    const kept = real.length > 0 ? real : sizes;
    return { blobs: kept.length, patches: kept.reduce((a, b) => a + b, 0), sizes: kept };
  });
  // Countable things are many separate blobs that together cover a minority of the image (not the background).
  const candidates = clusters.map((c, i) => ({ c, i })).filter(({ c }) => c.patches <= 0.35 * n && c.blobs >= 2);
  const pool = candidates.length > 0 ? candidates : clusters.map((c, i) => ({ c, i }));
  const chosen = pool.reduce((best, x) => (x.c.blobs > best.c.blobs ? x : best)).i;
  const proto = centroids.subarray(chosen * dim, (chosen + 1) * dim);
  const sims = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let d = 0; d < dim; d++) s += (feats[i * dim + d] as number) * (proto[d] as number);
    sims[i] = s;
  }
  // Map, threshold and radius from the chosen cluster's own cells and blobs.
  const { mw, mh, scale } = mapSize(img.width, img.height);
  const data = new Float32Array(mw * mh);
  upsample(sims, gridH, gridW, mw, mh, data, 1);
  const map: SimilarityMap = { width: mw, height: mh, data, scale };
  const members = fg.filter((_, j) => owner[j] === chosen);
  const sorted = Float32Array.from(sims).sort();
  const median = sorted[Math.floor(n / 2)] as number;
  const inst = members.reduce((a, p) => a + (sims[p] as number), 0) / Math.max(1, members.length);
  const threshold = median + 0.6 * (inst - median);
  const blobSizes = [...(clusters[chosen]?.sizes ?? [1])].sort((a, b) => a - b);
  // Objects are about as large as the larger blobs (small ones are fragments of objects).
  const typical = blobSizes[Math.floor(blobSizes.length * 0.75)] ?? 1;
  const cell = mw / gridW;
  const radius = Math.max(1, 0.6 * Math.sqrt(typical) * cell);
  const points = findPeaks(map, threshold, radius);
  // Blobs of the chosen cluster are the count; peaks locate them (and split blobs of touching objects).
  const blobs = clusters[chosen]?.blobs ?? 0;
  return {
    count: Math.max(blobs, Math.min(points.length, 2 * blobs)),
    points,
    clusters: clusters.map(({ blobs, patches }) => ({ blobs, patches })),
    chosen,
    threshold,
    map,
  };
}
