/**
 * In-context segmentation by dense nearest neighbours (Hummingbird, NeurIPS 2023; open-hummingbird-eval): patch
 * features of a query are matched against a memory bank of labelled patches; each patch takes the softmax(cos / T)
 * weighted average of its k neighbours' label histograms; the class map is upsampled bilinearly and argmaxed.
 */

import type { Rng } from '../base/rng.js';
import { type ExactKnn, type KnnBank, makeBank } from '../features/knn.js';
import { type PatchGrid, upsampleArgmax } from './labels.js';

export interface HummingbirdOptions {
  k: number;
  temperature: number;
}

export const HUMMINGBIRD_DEFAULTS: HummingbirdOptions = { k: 30, temperature: 0.02 };

/** A memory bank in memory: normalised vectors for search, soft labels [size, classes]. */
export interface LabelledBank {
  search: KnnBank;
  labels: Float32Array;
  classes: number;
}

export function labelledBank(
  vectors: Float32Array,
  labels: Float32Array,
  dim: number,
  classes: number,
  dtype: 'float32' | 'float16' = 'float32',
): LabelledBank {
  return { search: makeBank(vectors, dim, dtype), labels, classes };
}

/** Class scores [n, classes] for query patches (rows of [n, dim], normalised). */
export async function patchScores(
  knn: ExactKnn,
  bank: LabelledBank,
  queries: Float32Array,
  o: HummingbirdOptions = HUMMINGBIRD_DEFAULTS,
): Promise<Float32Array> {
  const dim = bank.search.dim;
  const n = queries.length / dim;
  const { indices, sims } = await knn.search(queries, bank.search, o.k);
  const k = indices.length / n;
  const C = bank.classes;
  const out = new Float32Array(n * C);
  const w = new Float64Array(k);
  for (let i = 0; i < n; i++) {
    let max = Number.NEGATIVE_INFINITY;
    for (let j = 0; j < k; j++) max = Math.max(max, (sims[i * k + j] as number) / o.temperature);
    let sum = 0;
    for (let j = 0; j < k; j++) {
      const idx = indices[i * k + j] as number;
      w[j] = idx < 0 ? 0 : Math.exp((sims[i * k + j] as number) / o.temperature - max);
      sum += w[j] as number;
    }
    for (let j = 0; j < k; j++) {
      const idx = indices[i * k + j] as number;
      if (idx < 0) continue;
      const wj = (w[j] as number) / sum;
      for (let c = 0; c < C; c++)
        out[i * C + c] = (out[i * C + c] as number) + wj * (bank.labels[idx * C + c] as number);
    }
  }
  return out;
}

export async function segmentPatches(
  knn: ExactKnn,
  bank: LabelledBank,
  queries: Float32Array,
  grid: PatchGrid,
  width: number,
  height: number,
  o: HummingbirdOptions = HUMMINGBIRD_DEFAULTS,
): Promise<{ mask: Uint8Array; scores: Float32Array }> {
  const scores = await patchScores(knn, bank, queries, o);
  return { mask: upsampleArgmax(scores, grid, bank.classes, width, height), scores };
}

/**
 * Bounded memory, rare classes first (as open-hummingbird-eval): each image keeps `perImage` patches, those with
 * the lowest score = (share of the image's patches with the same dominant class) x U(0, 1).
 */
export function sampleRareFirst(labels: Float32Array, classes: number, perImage: number, rng: Rng): number[] {
  const n = labels.length / classes;
  if (perImage >= n) return [...Array(n).keys()];
  const dominant = new Int32Array(n);
  const freq = new Float64Array(classes);
  for (let i = 0; i < n; i++) {
    let best = -1;
    let bv = 0;
    for (let c = 0; c < classes; c++) {
      const v = labels[i * classes + c] as number;
      if (v > bv) {
        bv = v;
        best = c;
      }
    }
    dominant[i] = best;
    if (best >= 0) freq[best] = (freq[best] as number) + 1;
  }
  const scored = [...Array(n).keys()].map((i) => {
    const d = dominant[i] as number;
    const share = d < 0 ? 1 : (freq[d] as number) / n;
    return { i, s: share * rng.next() };
  });
  scored.sort((a, b) => a.s - b.s);
  return scored
    .slice(0, perImage)
    .map((x) => x.i)
    .sort((a, b) => a - b);
}
