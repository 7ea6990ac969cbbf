/**
 * Automatic counting: no exemplar. Salient patches (those least like the image's average patch, split by Otsu's
 * threshold) are clustered; each cluster's cells form blobs on the patch grid; the repeated structure is the cluster
 * with the most blobs (one input size, `countAutomatically`) or the most salient cluster whose blobs look like
 * objects of one kind (`countAutoDense`), counted by its blobs and located by peaks of its prototype's similarity
 * map, suppressed at the blobs' size. At every scale (`countAutoDense`): that search at several input sizes, tiled,
 * counted where it finds most blobs.
 */
import type { FeatureExtractor } from '../features/extract.js';
import { sphericalKMeans } from '../features/kmeans.js';
import { type ExactKnn, l2normalizeRows } from '../features/knn.js';
import type { RgbLike } from '../models/preprocess.js';
import {
  type CountScale,
  components,
  DENSE_DEFAULTS,
  type DenseFeatures,
  findPeaks,
  mapSize,
  type SimilarityMap,
  type TiledFeatures,
  tiledFeatures,
  upsample,
} from './count.js';
import { insidePolygon, maskOutside, type Polygon } from './reject.js';

export interface AutoCountResult {
  count: number;
  points: { x: number; y: number; score: number }[];
  /** Blobs per cluster of salient patches; `chosen` is the one counted. */
  clusters: { blobs: number; patches: number }[];
  chosen: number;
  threshold: number;
  /** Suppression radius of the peaks, in map pixels. */
  radius: number;
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

/** The repeated structure found on one patch grid: the chosen cluster, its prototype, blobs and similarities. */
export interface Discovery {
  clusters: { blobs: number; patches: number; sizes: number[]; specks: number; spread: number; saliency: number }[];
  chosen: number;
  proto: Float32Array;
  /** Cosine similarity of every patch to the prototype. */
  sims: Float32Array;
  /** Mean similarity of the chosen cluster's patches (what an instance scores). */
  inst: number;
  /** Centres of the chosen cluster's blobs (specks dropped), in grid units, and their sizes in patches. */
  centres: [number, number][];
  sizes: number[];
  /** Patches of a typical object (the 75th percentile of the blobs' sizes). */
  typical: number;
}

/**
 * How `discover` picks the repeated structure among the clusters covering a minority of the image: `blobs` the one
 * with the most blobs (the one-size counter's rule); `salient` the one whose patches are least like the average
 * patch (objects stand out from the background more than any other structure does), among those whose blobs look
 * like objects of one kind: at most `AUTO_SPECKS` times as many single-patch specks as blobs (a texture resolved at
 * a fine size breaks into specks; an object's rim adds a speck or so) and blob areas alike, their coefficient of
 * variation at most `AUTO_SPREAD` (one kind's areas vary by about a third; a texture's runs merge into long chains
 * next to single cells). Without such a cluster, the specks rule alone; without that, the most blobs.
 */
export type AutoChoice = 'blobs' | 'salient';
const AUTO_SPECKS = 2;
const AUTO_SPREAD = 0.6;

/**
 * Salient patches (least like the average patch, Otsu), spherical k-means over them, and the cluster that is the
 * repeated structure (`choice`).
 */
export async function discover(
  knn: ExactKnn,
  f: DenseFeatures,
  clusterCount: number,
  choice: AutoChoice = 'blobs',
): Promise<Discovery> {
  const { feats, gridH, gridW, dim } = f;
  const n = gridH * gridW;
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
  const K = Math.min(clusterCount, Math.max(1, fg.length));
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
  const masks: Uint8Array[] = [];
  const clusters = Array.from({ length: k }, (_, c) => {
    const mask = new Uint8Array(n);
    fg.forEach((p, j) => {
      if (owner[j] === c) mask[p] = 1;
    });
    masks.push(mask);
    const { sizes } = components(mask, gridW, gridH);
    // Single-cell specks are noise unless that is all there is.
    const real = sizes.filter((z) => z > 1);
    const kept = real.length > 0 ? real : sizes;
    let sal = 0;
    fg.forEach((p, j) => {
      if (owner[j] === c) sal += saliency[p] as number;
    });
    const patches = kept.reduce((a, b) => a + b, 0);
    const members = sizes.reduce((a, b) => a + b, 0);
    const m = patches / Math.max(1, kept.length);
    const spread = Math.sqrt(kept.reduce((a, b) => a + (b - m) ** 2, 0) / Math.max(1, kept.length)) / m;
    return {
      blobs: kept.length,
      patches,
      sizes: kept,
      specks: sizes.length - real.length,
      spread,
      saliency: sal / Math.max(1, members),
    };
  });
  // Countable things are many separate blobs that together cover a minority of the image (not the background).
  const candidates = clusters.map((c, i) => ({ c, i })).filter(({ c }) => c.patches <= 0.35 * n && c.blobs >= 2);
  const pool = candidates.length > 0 ? candidates : clusters.map((c, i) => ({ c, i }));
  const blobby = pool.filter(({ c }) => c.specks <= AUTO_SPECKS * c.blobs);
  const alike = blobby.filter(({ c }) => c.spread <= AUTO_SPREAD);
  const objects = alike.length > 0 ? alike : blobby;
  const chosen =
    choice === 'salient' && objects.length > 0
      ? objects.reduce((best, x) => (x.c.saliency > best.c.saliency ? x : best)).i
      : pool.reduce((best, x) => (x.c.blobs > best.c.blobs ? x : best)).i;
  const proto = centroids.slice(chosen * dim, (chosen + 1) * dim);
  const sims = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let d = 0; d < dim; d++) s += (feats[i * dim + d] as number) * (proto[d] as number);
    sims[i] = s;
  }
  const members = fg.filter((_, j) => owner[j] === chosen);
  const inst = members.reduce((a, p) => a + (sims[p] as number), 0) / Math.max(1, members.length);
  // The chosen cluster's blob centres (the same specks dropped as in its blob count).
  const { labels, sizes } = components(masks[chosen] as Uint8Array, gridW, gridH);
  const keepSpecks = !sizes.some((z) => z > 1);
  const sum = sizes.map(() => [0, 0, 0] as [number, number, number]);
  for (let i = 0; i < n; i++) {
    const l = labels[i] as number;
    if (l < 0) continue;
    const s = sum[l] as [number, number, number];
    s[0] += (i % gridW) + 0.5;
    s[1] += Math.floor(i / gridW) + 0.5;
    s[2]++;
  }
  const kept = sum.flatMap(([x, y, c], l) =>
    keepSpecks || (sizes[l] as number) > 1 ? [{ centre: [x / c, y / c] as [number, number], size: c }] : [],
  );
  const centres = kept.map((b) => b.centre);
  const blobSizes = [...(clusters[chosen]?.sizes ?? [1])].sort((a, b) => a - b);
  // Objects are about as large as the larger blobs (small ones are fragments of objects).
  const typical = blobSizes[Math.floor(blobSizes.length * 0.75)] ?? 1;
  return { clusters, chosen, proto, sims, inst, centres, sizes: kept.map((b) => b.size), typical };
}

/** Peaks of a discovery's similarity on an image: threshold and suppression from the chosen cluster. */
function autoPeaks(d: Discovery, f: DenseFeatures, map: SimilarityMap, roi?: Polygon) {
  const sorted = Float32Array.from(d.sims).sort();
  const median = sorted[Math.floor(sorted.length / 2)] as number;
  const threshold = median + 0.6 * (d.inst - median);
  const cell = map.width / f.gridW;
  const radius = Math.max(1, 0.6 * Math.sqrt(d.typical) * cell);
  const counted = roi ? maskOutside(map, roi) : map;
  const points = findPeaks(counted, threshold, radius);
  // Blobs of the chosen cluster are the count; peaks locate them (and split blobs of touching objects).
  const blobs = roi
    ? d.centres.filter(([gx, gy]) =>
        insidePolygon((gx / f.gridW) * map.width * map.scale, (gy / f.gridH) * map.height * map.scale, roi),
      ).length
    : (d.clusters[d.chosen]?.blobs ?? 0);
  return { count: Math.max(blobs, Math.min(points.length, 2 * blobs)), points, threshold, radius, map: counted };
}

/**
 * The count at a size where objects span a few patches: each blob of the chosen cluster is one object, or as many
 * as it is times the median blob (touching objects merge; a single object's area varies by about ±45 % with a
 * ±20 % radius, hence the 1.25). Peaks would also find the background's fainter repeats at that resolution.
 */
function blobObjects(d: Discovery, f: DenseFeatures, map: SimilarityMap, roi?: Polygon): number {
  const sizes = [...d.sizes].sort((a, b) => a - b);
  const median = sizes[Math.floor(sizes.length / 2)] ?? 1;
  let n = 0;
  d.centres.forEach(([gx, gy], i) => {
    if (roi && !insidePolygon((gx / f.gridW) * map.width * map.scale, (gy / f.gridH) * map.height * map.scale, roi))
      return;
    n += Math.max(1, Math.round((d.sizes[i] as number) / (1.25 * median)));
  });
  return n;
}

/**
 * Automatic counting at one input size (the whole image at the extractor's size): what the Count view did before
 * `countAutoDense`, kept as the automatic benchmark's baseline. A 448 px input has 784 patches, so it never finds
 * more than about a hundred blobs.
 */
export async function countAutomatically(
  ex: FeatureExtractor,
  knn: ExactKnn,
  img: RgbLike,
  o: { clusters?: number } = {},
): Promise<AutoCountResult> {
  const [f] = await ex.run([img]);
  if (!f) throw new Error('no features');
  const dim = ex.model.config.dim;
  const dense: DenseFeatures = { feats: l2normalizeRows(f.patches, dim), gridH: f.gridH, gridW: f.gridW, dim };
  const d = await discover(knn, dense, o.clusters ?? 3);
  // Map, threshold and radius from the chosen cluster's own cells and blobs.
  const { mw, mh, scale } = mapSize(img.width, img.height);
  const data = new Float32Array(mw * mh);
  upsample(d.sims, dense.gridH, dense.gridW, mw, mh, data, 1);
  const r = autoPeaks(d, dense, { width: mw, height: mh, data, scale });
  return { ...r, clusters: d.clusters.map(({ blobs, patches }) => ({ blobs, patches })), chosen: d.chosen };
}

/** One input size tried by `countAutoDense`: what was found there. */
export interface AutoScaleTrial {
  factor: number;
  inputWidth: number;
  inputHeight: number;
  tiles: number;
  /** Blobs of the chosen cluster, and the patches of a typical one. */
  blobs: number;
  typical: number;
}

export const AUTO_DEFAULTS = {
  /** Clusters of salient patches (k-means): objects, their parts and the background's salient structures. */
  clusters: 5,
  /** The repeated structure at each size: the most salient cluster that forms blobs (`AutoChoice`). */
  choice: 'salient',
  /** Stop going finer once a typical object covers this many patches (about 3.5 across): it is resolved. */
  resolvedPatches: 12,
  /** A finer size is taken only when it finds this many times more blobs than the best so far. */
  gain: 1.15,
  /**
   * The image is never enlarged more than this (objects a few pixels across are not countable). 3, not 4: on small
   * images (320 px sparse tuning scenes 7000-7011, bench/count-seeds.ts) the 4× size resolves the objects' parts and
   * the background into alike blobs (MAE 38.75 with 4, 15.75 with 3: 0.7×, 1.4×, 2.8×; the one-size counter 17.67
   * with the same model). Large images never reach it (2000 px: at most 1.79×, the `maxSide`), so dense counts keep.
   */
  maxFactor: 3,
} as const satisfies Record<string, number | AutoChoice>;

/**
 * Automatic counting at every scale: the repeated structure is looked for at several input sizes (the shorter side
 * at the extractor's size, then doubled until the longer side reaches `maxSide`, large inputs tiled as exemplar
 * counting does), and counted at the size where it falls into the most separate blobs. At a size too small for the
 * objects, a patch holds several and a crowd is one texture; at the right size each is a blob of a few patches.
 * At each size the structure is the most salient cluster of alike blobs (`AUTO_DEFAULTS.choice`): at the finest
 * sizes the background's own texture (paving, brickwork) is resolved too and falls into more blobs than the
 * objects, which the most-blobs rule then counted (bench/results/count-free.json before this: 1201 blobs for 200).
 */
export async function countAutoDense(
  ex: FeatureExtractor,
  knn: ExactKnn,
  img: RgbLike,
  o: {
    clusters?: number;
    choice?: AutoChoice;
    maxSide?: number;
    /** At most this enlargement (`AUTO_DEFAULTS.maxFactor`). */
    maxFactor?: number;
    tile?: number;
    overlap?: number;
    roi?: Polygon;
  } = {},
): Promise<AutoCountResult & { trials: AutoScaleTrial[]; scale: CountScale }> {
  const P = ex.patchSize;
  const maxSide = o.maxSide ?? DENSE_DEFAULTS.maxSide;
  const long = Math.max(img.width, img.height);
  const base = ex.size / Math.min(img.width, img.height);
  const maxFactor = o.maxFactor ?? AUTO_DEFAULTS.maxFactor;
  const top = Math.max(base, Math.min(maxSide / long, maxFactor));
  const factors: number[] = [];
  for (let f = base; f < top * 0.999; f *= 2) factors.push(f);
  if (factors.length === 0 || top / (factors[factors.length - 1] as number) > 1.25) factors.push(top);
  const round = (v: number) => Math.max(P, Math.round(v / P) * P);
  const trials: AutoScaleTrial[] = [];
  let best: { d: Discovery; f: TiledFeatures; trial: AutoScaleTrial } | null = null;
  for (const factor of factors) {
    const iw = round(img.width * factor);
    const ih = round(img.height * factor);
    const f = await tiledFeatures(ex, img, iw, ih, o);
    const d = await discover(knn, f, o.clusters ?? AUTO_DEFAULTS.clusters, o.choice ?? AUTO_DEFAULTS.choice);
    const blobs = d.clusters[d.chosen]?.blobs ?? 0;
    const trial = { factor, inputWidth: iw, inputHeight: ih, tiles: f.tiles, blobs, typical: d.typical };
    trials.push(trial);
    if (!best || blobs > best.trial.blobs * AUTO_DEFAULTS.gain) best = { d, f, trial };
    // No stop when a size finds fewer blobs than a coarser one: below the objects' size the most salient cluster
    // can be a part of them (fewer, smaller blobs) and the next size resolves them (tuning scene 5000: 135, 71, 205).
    // Nor at the first size (the whole image at the extractor's size): a dense crowd's objects are a few pixels
    // there and its blobs are clumps of them and of the background (tuning scene 5000 at 1000 px: 15 patches).
    if (trials.length > 1 && d.typical >= AUTO_DEFAULTS.resolvedPatches) break;
  }
  if (!best) throw new Error('no input size to count at');
  const { d, f, trial } = best;
  const { mw, mh, scale } = mapSize(img.width, img.height, Math.min(2048, 2 * Math.max(f.gridW, f.gridH)));
  const data = new Float32Array(mw * mh);
  upsample(d.sims, f.gridH, f.gridW, mw, mh, data, 1);
  const whole = { width: mw, height: mh, data, scale };
  const r = autoPeaks(d, f, whole, o.roi);
  return {
    ...r,
    count: blobObjects(d, f, whole, o.roi),
    clusters: d.clusters.map(({ blobs, patches }) => ({ blobs, patches })),
    chosen: d.chosen,
    trials,
    scale: {
      imageWidth: img.width,
      imageHeight: img.height,
      factor: trial.factor,
      inputWidth: trial.inputWidth,
      inputHeight: trial.inputHeight,
      gridH: f.gridH,
      gridW: f.gridW,
      exemplarPatches: Math.sqrt(d.typical),
      tiles: f.tiles,
      tileSize: f.tileSize,
      overlap: f.overlap,
      capped:
        trial.factor < maxFactor && trial.factor * long >= maxSide * 0.999 && d.typical < AUTO_DEFAULTS.resolvedPatches,
    },
  };
}
