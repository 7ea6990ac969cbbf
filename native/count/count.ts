/**
 * Counting without counting labels (training-free, in the spirit of CountingDINO): a prototype from the patch
 * features inside exemplar boxes, a cosine similarity map over the image at several input sizes, and peaks with
 * non-maximum suppression sized from the exemplar. Automatic counting finds the repeated structure itself:
 * salient patches, clustered; the cluster with the most separate blobs is counted the same way. The baseline is
 * connected components of a colour threshold around the exemplar's colour.
 */
import type { FeatureExtractor } from '../features/extract.js';
import { l2normalizeRows } from '../features/knn.js';
import { cropRgb, type RgbLike, resizeRgb } from '../models/preprocess.js';
import { gateByNegatives, maskOutside, type Polygon, statsThreshold, type ThresholdStats } from './reject.js';

export type Box = [number, number, number, number];

export interface SimilarityMap {
  width: number;
  height: number;
  /** Cosine similarity per map pixel (the image downscaled so its longer side is at most 256). */
  data: Float32Array;
  /** Image pixels per map pixel. */
  scale: number;
}

export interface CountResult {
  count: number;
  /** Centres in image pixels, with their similarity. */
  points: { x: number; y: number; score: number }[];
  threshold: number;
  radius: number;
  map: SimilarityMap;
}

const MAP_SIDE = 256;

/** Normalised patch features of an image on its patch grid (gridH rows × gridW columns). */
export interface DenseFeatures {
  feats: Float32Array;
  gridH: number;
  gridW: number;
  dim: number;
}

/** Patch features of an image at one extractor's input size (its aspect policy decides the grid). */
async function patchFeatures(ex: FeatureExtractor, img: RgbLike): Promise<DenseFeatures> {
  const [f] = await ex.run([img]);
  if (!f) throw new Error('no features');
  const dim = ex.model.config.dim;
  return { feats: l2normalizeRows(f.patches, dim), gridH: f.gridH, gridW: f.gridW, dim };
}

/**
 * The exemplars' prototype: the mean of the patches under the boxes. With `inner` (a fraction of the box), only the
 * patches whose centre lies in the box shrunk to that fraction around its centre (at least the patch under the
 * centre): when an exemplar spans a few patches, the box's border patches are mostly background, and averaging
 * them in makes the gaps between crowded objects look like objects.
 */
function prototypeFrom(f: DenseFeatures, boxes: readonly Box[], w: number, h: number, inner?: number): Float32Array {
  const { feats, gridH, gridW, dim } = f;
  const proto = new Float32Array(dim);
  let n = 0;
  const add = (gx: number, gy: number) => {
    const o = (gy * gridW + gx) * dim;
    for (let d = 0; d < dim; d++) proto[d] = (proto[d] as number) + (feats[o + d] as number);
    n++;
  };
  for (const [bx, by, bw, bh] of boxes) {
    if (inner !== undefined) {
      // Box in grid units, shrunk around its centre; patch centres at (g + 0.5).
      const cx = ((bx + bw / 2) / w) * gridW;
      const cy = ((by + bh / 2) / h) * gridH;
      const hw = ((inner * bw) / 2 / w) * gridW;
      const hh = ((inner * bh) / 2 / h) * gridH;
      let found = 0;
      for (let gy = Math.max(0, Math.floor(cy - hh)); gy <= Math.min(gridH - 1, Math.ceil(cy + hh)); gy++)
        for (let gx = Math.max(0, Math.floor(cx - hw)); gx <= Math.min(gridW - 1, Math.ceil(cx + hw)); gx++)
          if (Math.abs(gx + 0.5 - cx) <= hw && Math.abs(gy + 0.5 - cy) <= hh) {
            add(gx, gy);
            found++;
          }
      if (!found)
        add(Math.min(gridW - 1, Math.max(0, Math.floor(cx))), Math.min(gridH - 1, Math.max(0, Math.floor(cy))));
      continue;
    }
    const gx0 = Math.floor((bx / w) * gridW);
    const gy0 = Math.floor((by / h) * gridH);
    const gx1 = Math.max(gx0, Math.ceil(((bx + bw) / w) * gridW) - 1);
    const gy1 = Math.max(gy0, Math.ceil(((by + bh) / h) * gridH) - 1);
    for (let gy = Math.max(0, gy0); gy <= Math.min(gridH - 1, gy1); gy++)
      for (let gx = Math.max(0, gx0); gx <= Math.min(gridW - 1, gx1); gx++) add(gx, gy);
  }
  if (n === 0) throw new Error('the exemplar box covers no patch');
  return l2normalizeRows(proto, dim);
}

/** Bilinear upsampling of a gridH × gridW grid of values to the map size (half-pixel centres), added with a weight. */
export function upsample(
  values: Float32Array,
  gridH: number,
  gridW: number,
  mw: number,
  mh: number,
  into: Float32Array,
  weight: number,
): void {
  for (let y = 0; y < mh; y++) {
    const sy = Math.min(Math.max(((y + 0.5) * gridH) / mh - 0.5, 0), gridH - 1);
    const y0 = Math.floor(sy);
    const y1 = Math.min(y0 + 1, gridH - 1);
    const fy = sy - y0;
    for (let x = 0; x < mw; x++) {
      const sx = Math.min(Math.max(((x + 0.5) * gridW) / mw - 0.5, 0), gridW - 1);
      const x0 = Math.floor(sx);
      const x1 = Math.min(x0 + 1, gridW - 1);
      const fx = sx - x0;
      const v =
        (1 - fy) * ((1 - fx) * (values[y0 * gridW + x0] as number) + fx * (values[y0 * gridW + x1] as number)) +
        fy * ((1 - fx) * (values[y1 * gridW + x0] as number) + fx * (values[y1 * gridW + x1] as number));
      into[y * mw + x] = (into[y * mw + x] as number) + weight * v;
    }
  }
}

export function mapSize(w: number, h: number, side = MAP_SIDE): { mw: number; mh: number; scale: number } {
  const scale = Math.max(1, Math.max(w, h) / side);
  return { mw: Math.round(w / scale), mh: Math.round(h / scale), scale };
}

/** Local maxima above `threshold`, greedily suppressed within `radius` map pixels, strongest first. */
export function findPeaks(
  map: SimilarityMap,
  threshold: number,
  radius: number,
): { x: number; y: number; score: number }[] {
  const { width: W, height: H, data } = map;
  const cand: { x: number; y: number; s: number }[] = [];
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const s = data[y * W + x] as number;
      if (s < threshold) continue;
      let isMax = true;
      for (let dy = -1; dy <= 1 && isMax; dy++) {
        for (let dx = -1; dx <= 1; dx++) {
          const yy = y + dy;
          const xx = x + dx;
          if ((dx || dy) && yy >= 0 && yy < H && xx >= 0 && xx < W && (data[yy * W + xx] as number) > s) {
            isMax = false;
            break;
          }
        }
      }
      if (isMax) cand.push({ x, y, s });
    }
  }
  cand.sort((a, b) => b.s - a.s);
  // Suppression through a grid of buckets of the radius' size: crowds have thousands of candidates.
  const r2 = radius * radius;
  const cell = Math.max(1, radius);
  const cols = Math.ceil(W / cell) + 1;
  const buckets = new Map<number, { x: number; y: number }[]>();
  const kept: { x: number; y: number; s: number }[] = [];
  for (const c of cand) {
    const bx = Math.floor(c.x / cell);
    const by = Math.floor(c.y / cell);
    let free = true;
    for (let dy = -1; dy <= 1 && free; dy++)
      for (let dx = -1; dx <= 1 && free; dx++)
        for (const k of buckets.get((by + dy) * cols + bx + dx) ?? [])
          if ((k.x - c.x) ** 2 + (k.y - c.y) ** 2 <= r2) {
            free = false;
            break;
          }
    if (!free) continue;
    kept.push(c);
    const key = by * cols + bx;
    const list = buckets.get(key) ?? [];
    list.push(c);
    buckets.set(key, list);
  }
  return kept.map((k) => ({ x: (k.x + 0.5) * map.scale, y: (k.y + 0.5) * map.scale, score: k.s }));
}

/**
 * Similarity to the prototype contrasted with the image's average patch: what is like the exemplar and unlike the
 * rest of the image stands out, which keeps textured backgrounds that resemble everything from lighting up.
 */
function contrastedSimilarity(f: DenseFeatures, p: Float32Array): Float32Array {
  const { feats, gridH, gridW, dim } = f;
  const n = gridH * gridW;
  const mean = new Float32Array(dim);
  for (let i = 0; i < n; i++)
    for (let d = 0; d < dim; d++) mean[d] = (mean[d] as number) + (feats[i * dim + d] as number);
  l2normalizeRows(mean, dim);
  const sims = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    let b = 0;
    for (let d = 0; d < dim; d++) {
      s += (feats[i * dim + d] as number) * (p[d] as number);
      b += (feats[i * dim + d] as number) * (mean[d] as number);
    }
    sims[i] = s - b;
  }
  return sims;
}

/** The similarity of a prototype over the image, averaged over input sizes. */
async function similarityMap(
  extractors: readonly FeatureExtractor[],
  img: RgbLike,
  proto: (f: DenseFeatures) => Float32Array,
  negatives?: (f: DenseFeatures, k: number) => Float32Array[],
): Promise<SimilarityMap> {
  const { mw, mh, scale } = mapSize(img.width, img.height);
  const data = new Float32Array(mw * mh);
  for (const [k, ex] of extractors.entries()) {
    const f = await patchFeatures(ex, img);
    const p = proto(f);
    const neg = negatives?.(f, k) ?? [];
    const sims = contrastedSimilarity(f, p);
    const gated = neg.length
      ? gateByNegatives(
          sims,
          cosines(f, p),
          neg.map((n) => cosines(f, n)),
        )
      : sims;
    upsample(gated, f.gridH, f.gridW, mw, mh, data, 1 / extractors.length);
  }
  return { width: mw, height: mh, data, scale };
}

/**
 * The default threshold: halfway between the map's median (the background) and the similarity at the exemplars'
 * centres (what an instance looks like).
 */
export function defaultThreshold(map: SimilarityMap, boxes: readonly Box[], fraction = 0.5): number {
  const sorted = Float32Array.from(map.data).sort();
  const median = sorted[Math.floor(sorted.length / 2)] as number;
  const at = boxes.map(([x, y, w, h]) => {
    const mx = Math.min(map.width - 1, Math.floor((x + w / 2) / map.scale));
    const my = Math.min(map.height - 1, Math.floor((y + h / 2) / map.scale));
    return map.data[my * map.width + mx] as number;
  });
  const instance = at.reduce((a, b) => a + b, 0) / at.length;
  return median + fraction * (instance - median);
}

/** The exemplars' prototypes, one per input size, to count the same kind of thing in other images. */
export async function exemplarPrototypes(
  extractors: readonly FeatureExtractor[],
  img: RgbLike,
  boxes: readonly Box[],
): Promise<Float32Array[]> {
  const out: Float32Array[] = [];
  for (const ex of extractors) out.push(prototypeFrom(await patchFeatures(ex, img), boxes, img.width, img.height));
  return out;
}

/**
 * Counts with prototypes taken elsewhere; `radius` in image pixels, `threshold` on the contrasted similarity;
 * `negatives`: per negative exemplar, its prototypes (one per input size); `roi` in image pixels.
 */
export async function countWithPrototypes(
  extractors: readonly FeatureExtractor[],
  img: RgbLike,
  prototypes: readonly Float32Array[],
  radius: number,
  threshold: number,
  o: { negatives?: readonly (readonly Float32Array[])[]; roi?: Polygon } = {},
): Promise<{ count: number; points: { x: number; y: number; score: number }[] }> {
  let k = 0;
  const whole = await similarityMap(
    extractors,
    img,
    () => prototypes[k++] as Float32Array,
    o.negatives?.length ? (_, i) => (o.negatives ?? []).map((n) => n[i] as Float32Array) : undefined,
  );
  const map = o.roi ? maskOutside(whole, o.roi) : whole;
  const points = findPeaks(map, threshold, Math.max(1, radius / map.scale));
  return { count: points.length, points };
}

/**
 * Counting at fixed input sizes (the whole image at each extractor's size, similarity maps averaged): the method
 * before exemplar-chosen scales, kept for `sizes` given explicitly and as the dense benchmark's baseline.
 */
export async function countWithExemplars(
  extractors: readonly FeatureExtractor[],
  img: RgbLike,
  boxes: readonly Box[],
  o: { threshold?: number } = {},
): Promise<CountResult> {
  const map = await similarityMap(extractors, img, (f) => prototypeFrom(f, boxes, img.width, img.height));
  return peaksFor(map, boxes, o.threshold);
}

/** Peaks of a map: suppressed within `nms` × the exemplars' smallest side. */
function peaksFor(
  map: SimilarityMap,
  boxes: readonly Box[],
  threshold?: number,
  nms = 0.5,
  thresholdAt = 0.5,
): CountResult {
  const minSide = Math.min(...boxes.map((b) => Math.min(b[2], b[3])));
  const radius = Math.max(1, (nms * minSide) / map.scale);
  const t = threshold ?? defaultThreshold(map, boxes, thresholdAt);
  const points = findPeaks(map, t, radius);
  return { count: points.length, points, threshold: t, radius, map };
}

/** How a dense count looked at the image: the scale chosen from the exemplar and the tiles it took. */
export interface CountScale {
  /** The image counted: a still image's own file at its resolution (see CountService), else the stored frame. */
  imageWidth: number;
  imageHeight: number;
  /** Resize factor applied to the image (input pixels per image pixel). */
  factor: number;
  /** The resized image (multiples of the patch size) and its patch grid. */
  inputWidth: number;
  inputHeight: number;
  gridH: number;
  gridW: number;
  /** Patches across the (median) exemplar at that scale. */
  exemplarPatches: number;
  /** Tiles run through the model, their side and overlap in input pixels. */
  tiles: number;
  tileSize: number;
  overlap: number;
  /** The scale was held down by the `maxSide` bound (the exemplar then spans fewer patches than asked). */
  capped: boolean;
}

export interface DenseOptions {
  exemplarPatches?: number;
  nms?: number;
  inner?: number;
  thresholdAt?: number;
  tile?: number;
  overlap?: number;
  maxSide?: number;
}

export const DENSE_DEFAULTS = {
  /** Patches the exemplar should span (training-free exemplar counters resize so an object covers a few). */
  exemplarPatches: 3,
  /** Tile side in input pixels, and overlap between neighbouring tiles. */
  tile: 448,
  overlap: 64,
  /** Bound on the resized image's longer side: a 2000×1500 photo of 12 px objects is not made 6000 px wide. */
  maxSide: 3584,
  /**
   * Peaks closer than this × the exemplar's side are one object: objects that do not overlap are at least their
   * size apart, and at half a patch per map pixel small objects give twin peaks within half their size.
   */
  nms: 0.7,
  /** The prototype from the patches whose centre is in the exemplar box shrunk to this fraction (see prototypeFrom). */
  inner: 0.6,
  /**
   * The default threshold this fraction of the way from the map's median to the exemplars' similarity (0.5 for
   * fixed sizes): in a crowd the gaps between objects and look-alike distractors peak at about half the
   * exemplar's similarity. Chosen on generated scenes other than the benchmark's (seeds 11, 12: at 0.5, 0.6, 0.7
   * counts of 407, 370, 332 for 320 objects and 605, 504, 500 for 500; recall 1.00, 0.99, 0.97 and 1.00 throughout).
   */
  thresholdAt: 0.65,
} as const;

/** The scale for counting from the exemplars: their median side spans `exemplarPatches` patches, within bounds. */
export function denseScale(
  width: number,
  height: number,
  boxes: readonly Box[],
  patch: number,
  minShort: number,
  o: DenseOptions = {},
): { factor: number; inputWidth: number; inputHeight: number; capped: boolean } {
  const want = o.exemplarPatches ?? DENSE_DEFAULTS.exemplarPatches;
  const maxSide = o.maxSide ?? DENSE_DEFAULTS.maxSide;
  const sides = boxes.map((b) => Math.sqrt(Math.max(1, b[2]) * Math.max(1, b[3]))).sort((a, b) => a - b);
  const side = sides[Math.floor(sides.length / 2)] as number;
  let factor = (want * patch) / side;
  // Never below the model's input size on the shorter side (large exemplars in small images), never above maxSide.
  factor = Math.max(factor, minShort / Math.min(width, height));
  const cap = maxSide / Math.max(width, height);
  const capped = factor > cap;
  factor = Math.min(factor, cap);
  const round = (v: number) => Math.max(patch, Math.round(v / patch) * patch);
  return { factor, inputWidth: round(width * factor), inputHeight: round(height * factor), capped };
}

/** Tile origins along one side: `tile`-wide windows with `overlap`, the last flush with the end. */
function tileStarts(length: number, tile: number, overlap: number): number[] {
  if (length <= tile) return [0];
  const out: number[] = [];
  for (let s = 0; s + tile < length; s += tile - overlap) out.push(s);
  out.push(length - tile);
  return out;
}

/** Patch features of an image resized to `inputWidth` × `inputHeight` (multiples of the patch), tile by tile. */
export interface TiledFeatures extends DenseFeatures {
  tiles: number;
  tileSize: number;
  overlap: number;
}

/**
 * Patch features of the whole image resized to `inputWidth` × `inputHeight`, computed tile by tile: tiles of
 * `tile` input pixels overlapping by `overlap`, aligned to the patch grid, and each patch of the image taken from
 * the tile in which it lies most centrally (so no patch sees a tile edge it would not see in the whole image).
 */
export async function tiledFeatures(
  ex: FeatureExtractor,
  img: RgbLike,
  inputWidth: number,
  inputHeight: number,
  o: { tile?: number; overlap?: number } = {},
): Promise<TiledFeatures> {
  const P = ex.patchSize;
  const dim = ex.model.config.dim;
  const tileSide = Math.max(P, Math.round((o.tile ?? DENSE_DEFAULTS.tile) / P) * P);
  const overlap = Math.min(tileSide - P, Math.round((o.overlap ?? DENSE_DEFAULTS.overlap) / P) * P);
  const big = resizeRgb(img, inputWidth, inputHeight, 'bilinear');
  const gridW = inputWidth / P;
  const gridH = inputHeight / P;
  const feats = new Float32Array(gridW * gridH * dim);
  const best = new Float32Array(gridW * gridH).fill(Number.POSITIVE_INFINITY);
  const tw = Math.min(tileSide, inputWidth);
  const th = Math.min(tileSide, inputHeight);
  const xs = tileStarts(inputWidth, tw, overlap);
  const ys = tileStarts(inputHeight, th, overlap);
  const shape = { width: tw, height: th, gridW: tw / P, gridH: th / P };
  const tiles = ys.flatMap((y) => xs.map((x) => ({ x, y })));
  const BATCH = 4;
  for (let t = 0; t < tiles.length; t += BATCH) {
    const group = tiles.slice(t, t + BATCH);
    const out = await ex.runAt(
      group.map(({ x, y }) => cropRgb(big, x, y, tw, th)),
      shape,
    );
    group.forEach(({ x, y }, k) => {
      const f = l2normalizeRows((out[k] as { patches: Float32Array }).patches, dim);
      for (let cy = 0; cy < shape.gridH; cy++) {
        for (let cx = 0; cx < shape.gridW; cx++) {
          // Distance from the tile's centre, in tile halves: the most central tile wins the patch.
          const d = Math.max(
            Math.abs(cx + 0.5 - shape.gridW / 2) / shape.gridW,
            Math.abs(cy + 0.5 - shape.gridH / 2) / shape.gridH,
          );
          const g = (y / P + cy) * gridW + x / P + cx;
          if (d >= (best[g] as number)) continue;
          best[g] = d;
          feats.set(f.subarray((cy * shape.gridW + cx) * dim, (cy * shape.gridW + cx + 1) * dim), g * dim);
        }
      }
    });
  }
  return { feats, gridH, gridW, dim, tiles: tiles.length, tileSize: Math.max(tw, th), overlap };
}

/** Patch features of the whole image at the scale the exemplar asks for (`denseScale`), tiled (`tiledFeatures`). */
export async function denseFeatures(
  ex: FeatureExtractor,
  img: RgbLike,
  boxes: readonly Box[],
  o: DenseOptions = {},
): Promise<DenseFeatures & { scale: CountScale }> {
  const P = ex.patchSize;
  const s = denseScale(img.width, img.height, boxes, P, ex.size, o);
  const f = await tiledFeatures(ex, img, s.inputWidth, s.inputHeight, o);
  const sides = boxes.map((b) => Math.sqrt(Math.max(1, b[2]) * Math.max(1, b[3]))).sort((a, b) => a - b);
  return {
    feats: f.feats,
    gridH: f.gridH,
    gridW: f.gridW,
    dim: f.dim,
    scale: {
      imageWidth: img.width,
      imageHeight: img.height,
      factor: s.factor,
      inputWidth: s.inputWidth,
      inputHeight: s.inputHeight,
      gridH: f.gridH,
      gridW: f.gridW,
      exemplarPatches: ((sides[Math.floor(sides.length / 2)] as number) * s.factor) / P,
      tiles: f.tiles,
      tileSize: f.tileSize,
      overlap: f.overlap,
      capped: s.capped,
    },
  };
}

/** Cosine similarity of every patch to a prototype. */
function cosines(f: DenseFeatures, p: Float32Array): Float32Array {
  const { feats, gridH, gridW, dim } = f;
  const out = new Float32Array(gridH * gridW);
  for (let i = 0; i < out.length; i++) {
    let s = 0;
    for (let d = 0; d < dim; d++) s += (feats[i * dim + d] as number) * (p[d] as number);
    out[i] = s;
  }
  return out;
}

/** The highest similarity within the central half of each exemplar box: what an instance scores. */
export function exemplarScores(map: SimilarityMap, boxes: readonly Box[]): number[] {
  return boxes.map(([x, y, w, h]) => {
    const x0 = Math.max(0, Math.floor((x + w / 4) / map.scale));
    const y0 = Math.max(0, Math.floor((y + h / 4) / map.scale));
    const x1 = Math.min(map.width - 1, Math.max(x0, Math.floor((x + (3 * w) / 4) / map.scale)));
    const y1 = Math.min(map.height - 1, Math.max(y0, Math.floor((y + (3 * h) / 4) / map.scale)));
    let best = Number.NEGATIVE_INFINITY;
    for (let yy = y0; yy <= y1; yy++)
      for (let xx = x0; xx <= x1; xx++) best = Math.max(best, map.data[yy * map.width + xx] as number);
    return best;
  });
}

export interface DenseCountOptions extends DenseOptions {
  threshold?: number;
  /** Negative exemplars ("not this"), image pixels: what is more like one of them than like the exemplars. */
  negatives?: readonly Box[];
  /** Region of interest, image pixels: only what lies inside is counted. */
  roi?: Polygon;
  /** Raise the default threshold above look-alike distractors (statsThreshold); true by default. */
  rejectDistractors?: boolean;
}

/**
 * Counting crowds: the image resized so the exemplar spans a few patches, tiled with overlap into one patch grid
 * (`denseFeatures`), the prototype and contrasted similarity on that grid, a map at half a patch per pixel and
 * peaks suppressed within 0.7 × the exemplar across the whole image (an object in a tile overlap is found once).
 * Negative exemplars gate the similarity, the default threshold rises above a look-alike group of peaks, and a
 * region of interest masks the map (after the threshold is chosen on the whole image).
 */
export async function countDense(
  ex: FeatureExtractor,
  img: RgbLike,
  boxes: readonly Box[],
  o: DenseCountOptions = {},
): Promise<CountResult & { scale: CountScale; stats: ThresholdStats | null }> {
  const f = await denseFeatures(ex, img, boxes, o);
  const inner = o.inner ?? DENSE_DEFAULTS.inner;
  const proto = prototypeFrom(f, boxes, img.width, img.height, inner);
  let sims = contrastedSimilarity(f, proto);
  if (o.negatives?.length)
    sims = gateByNegatives(
      sims,
      cosines(f, proto),
      o.negatives.map((b) => cosines(f, prototypeFrom(f, [b], img.width, img.height, inner))),
    );
  // Half a patch per map pixel (at most 2048 on the longer side): peaks of neighbouring small objects stay apart.
  const { mw, mh, scale } = mapSize(img.width, img.height, Math.min(2048, 2 * Math.max(f.gridW, f.gridH)));
  const data = new Float32Array(mw * mh);
  upsample(sims, f.gridH, f.gridW, mw, mh, data, 1);
  const whole: SimilarityMap = { width: mw, height: mh, data, scale };
  const minSide = Math.min(...boxes.map((b) => Math.min(b[2], b[3])));
  const radius = Math.max(1, ((o.nms ?? DENSE_DEFAULTS.nms) * minSide) / scale);
  let threshold = o.threshold;
  let stats: ThresholdStats | null = null;
  if (threshold === undefined) {
    const base = defaultThreshold(whole, boxes, o.thresholdAt ?? DENSE_DEFAULTS.thresholdAt);
    stats =
      o.rejectDistractors === false
        ? null
        : statsThreshold(
            findPeaks(whole, base, radius).map((p) => p.score),
            exemplarScores(whole, boxes),
            base,
          );
    threshold = stats?.threshold ?? base;
  }
  const map = o.roi ? maskOutside(whole, o.roi) : whole;
  const points = findPeaks(map, threshold, radius);
  return { count: points.length, points, threshold, radius, map, scale: f.scale, stats };
}

/** 4-connected components of a boolean grid, with their sizes. */
export function components(mask: Uint8Array, w: number, h: number): { labels: Int32Array; sizes: number[] } {
  const labels = new Int32Array(w * h).fill(-1);
  const sizes: number[] = [];
  const stack: number[] = [];
  for (let i = 0; i < w * h; i++) {
    if (!mask[i] || (labels[i] as number) >= 0) continue;
    const id = sizes.length;
    let n = 0;
    stack.push(i);
    labels[i] = id;
    while (stack.length) {
      const p = stack.pop() as number;
      n++;
      const x = p % w;
      const y = (p - x) / w;
      for (const q of [x > 0 ? p - 1 : -1, x < w - 1 ? p + 1 : -1, y > 0 ? p - w : -1, y < h - 1 ? p + w : -1]) {
        if (q >= 0 && mask[q] && labels[q] === -1) {
          labels[q] = id;
          stack.push(q);
        }
      }
    }
    sizes.push(n);
  }
  return { labels, sizes };
}

/** Baseline: pixels within `tolerance` (RGB distance) of the exemplar's central colour, connected components. */
export function countByColour(
  img: RgbLike,
  box: Box,
  tolerance = 60,
): { count: number; points: { x: number; y: number }[] } {
  const [bx, by, bw, bh] = box;
  let r = 0;
  let g = 0;
  let b = 0;
  let n = 0;
  for (let y = Math.round(by + bh * 0.3); y < by + bh * 0.7; y++) {
    for (let x = Math.round(bx + bw * 0.3); x < bx + bw * 0.7; x++) {
      const i = (Math.min(img.height - 1, Math.max(0, y)) * img.width + Math.min(img.width - 1, Math.max(0, x))) * 3;
      r += img.data[i] as number;
      g += img.data[i + 1] as number;
      b += img.data[i + 2] as number;
      n++;
    }
  }
  r /= n;
  g /= n;
  b /= n;
  const mask = new Uint8Array(img.width * img.height);
  for (let i = 0; i < mask.length; i++) {
    const d = Math.hypot(
      (img.data[i * 3] as number) - r,
      (img.data[i * 3 + 1] as number) - g,
      (img.data[i * 3 + 2] as number) - b,
    );
    mask[i] = d <= tolerance ? 1 : 0;
  }
  const { labels, sizes } = components(mask, img.width, img.height);
  const minArea = 0.25 * bw * bh * 0.3;
  const keep = sizes.map((s) => s >= minArea);
  const sums = sizes.map(() => ({ x: 0, y: 0, n: 0 }));
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i] as number;
    if (l < 0 || !keep[l]) continue;
    const s = sums[l] as { x: number; y: number; n: number };
    s.x += i % img.width;
    s.y += Math.floor(i / img.width);
    s.n++;
  }
  const points = sums.filter((s) => s.n > 0).map((s) => ({ x: s.x / s.n, y: s.y / s.n }));
  return { count: points.length, points };
}
