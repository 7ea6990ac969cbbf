/**
 * Counting without counting labels (training-free, in the spirit of CountingDINO): a prototype from the patch
 * features inside exemplar boxes, a cosine similarity map over the image at several input sizes, and peaks with
 * non-maximum suppression sized from the exemplar. Automatic counting finds the repeated structure itself:
 * salient patches, clustered; the cluster with the most separate blobs is counted the same way. The baseline is
 * connected components of a colour threshold around the exemplar's colour.
 */
import type { FeatureExtractor } from '../features/extract.js';
import { l2normalizeRows } from '../features/knn.js';
import type { RgbLike } from '../models/preprocess.js';

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

/** Patch features of an image at one input size, normalised: [grid*grid, dim]. */
async function patchFeatures(
  ex: FeatureExtractor,
  img: RgbLike,
): Promise<{ feats: Float32Array; grid: number; dim: number }> {
  const [f] = await ex.run([img]);
  if (!f) throw new Error('no features');
  const dim = ex.model.config.dim;
  return { feats: l2normalizeRows(f.patches, dim), grid: ex.size / ex.model.config.patchSize, dim };
}

function prototypeFrom(
  feats: Float32Array,
  grid: number,
  dim: number,
  boxes: readonly Box[],
  w: number,
  h: number,
): Float32Array {
  const proto = new Float32Array(dim);
  let n = 0;
  for (const [bx, by, bw, bh] of boxes) {
    const gx0 = Math.floor((bx / w) * grid);
    const gy0 = Math.floor((by / h) * grid);
    const gx1 = Math.max(gx0, Math.ceil(((bx + bw) / w) * grid) - 1);
    const gy1 = Math.max(gy0, Math.ceil(((by + bh) / h) * grid) - 1);
    for (let gy = Math.max(0, gy0); gy <= Math.min(grid - 1, gy1); gy++) {
      for (let gx = Math.max(0, gx0); gx <= Math.min(grid - 1, gx1); gx++) {
        const o = (gy * grid + gx) * dim;
        for (let d = 0; d < dim; d++) proto[d] = (proto[d] as number) + (feats[o + d] as number);
        n++;
      }
    }
  }
  if (n === 0) throw new Error('the exemplar box covers no patch');
  return l2normalizeRows(proto, dim);
}

/** Bilinear upsampling of a grid of values to the map size (half-pixel centres). */
export function upsample(
  values: Float32Array,
  grid: number,
  mw: number,
  mh: number,
  into: Float32Array,
  weight: number,
): void {
  for (let y = 0; y < mh; y++) {
    const sy = Math.min(Math.max(((y + 0.5) * grid) / mh - 0.5, 0), grid - 1);
    const y0 = Math.floor(sy);
    const y1 = Math.min(y0 + 1, grid - 1);
    const fy = sy - y0;
    for (let x = 0; x < mw; x++) {
      const sx = Math.min(Math.max(((x + 0.5) * grid) / mw - 0.5, 0), grid - 1);
      const x0 = Math.floor(sx);
      const x1 = Math.min(x0 + 1, grid - 1);
      const fx = sx - x0;
      const v =
        (1 - fy) * ((1 - fx) * (values[y0 * grid + x0] as number) + fx * (values[y0 * grid + x1] as number)) +
        fy * ((1 - fx) * (values[y1 * grid + x0] as number) + fx * (values[y1 * grid + x1] as number));
      into[y * mw + x] = (into[y * mw + x] as number) + weight * v;
    }
  }
}

export function mapSize(w: number, h: number): { mw: number; mh: number; scale: number } {
  const scale = Math.max(1, Math.max(w, h) / MAP_SIDE);
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
  const kept: { x: number; y: number; s: number }[] = [];
  const r2 = radius * radius;
  for (const c of cand) if (kept.every((k) => (k.x - c.x) ** 2 + (k.y - c.y) ** 2 > r2)) kept.push(c);
  return kept.map((k) => ({ x: (k.x + 0.5) * map.scale, y: (k.y + 0.5) * map.scale, score: k.s }));
}

/** The similarity of a prototype over the image, averaged over input sizes. */
async function similarityMap(
  extractors: readonly FeatureExtractor[],
  img: RgbLike,
  proto: (feats: Float32Array, grid: number, dim: number) => Float32Array,
): Promise<SimilarityMap> {
  const { mw, mh, scale } = mapSize(img.width, img.height);
  const data = new Float32Array(mw * mh);
  for (const ex of extractors) {
    const { feats, grid, dim } = await patchFeatures(ex, img);
    const p = proto(feats, grid, dim);
    // Contrast with the image's average patch: what is like the exemplar and unlike the rest of the image stands
    // out, which keeps textured backgrounds that resemble everything from lighting up.
    const mean = new Float32Array(dim);
    for (let i = 0; i < grid * grid; i++)
      for (let d = 0; d < dim; d++) mean[d] = (mean[d] as number) + (feats[i * dim + d] as number);
    l2normalizeRows(mean, dim);
    const sims = new Float32Array(grid * grid);
    for (let i = 0; i < grid * grid; i++) {
      let s = 0;
      let b = 0;
      for (let d = 0; d < dim; d++) {
        s += (feats[i * dim + d] as number) * (p[d] as number);
        b += (feats[i * dim + d] as number) * (mean[d] as number);
      }
      sims[i] = s - b;
    }
    upsample(sims, grid, mw, mh, data, 1 / extractors.length);
  }
  return { width: mw, height: mh, data, scale };
}

/**
 * The default threshold: halfway between the map's median (the background) and the similarity at the exemplars'
 * centres (what an instance looks like).
 */
export function defaultThreshold(map: SimilarityMap, boxes: readonly Box[]): number {
  const sorted = Float32Array.from(map.data).sort();
  const median = sorted[Math.floor(sorted.length / 2)] as number;
  const at = boxes.map(([x, y, w, h]) => {
    const mx = Math.min(map.width - 1, Math.floor((x + w / 2) / map.scale));
    const my = Math.min(map.height - 1, Math.floor((y + h / 2) / map.scale));
    return map.data[my * map.width + mx] as number;
  });
  const instance = at.reduce((a, b) => a + b, 0) / at.length;
  return median + 0.5 * (instance - median);
}

/** The exemplars' prototypes, one per input size, to count the same kind of thing in other images. */
export async function exemplarPrototypes(
  extractors: readonly FeatureExtractor[],
  img: RgbLike,
  boxes: readonly Box[],
): Promise<Float32Array[]> {
  const out: Float32Array[] = [];
  for (const ex of extractors) {
    const { feats, grid, dim } = await patchFeatures(ex, img);
    out.push(prototypeFrom(feats, grid, dim, boxes, img.width, img.height));
  }
  return out;
}

/** Counts with prototypes taken elsewhere; `radius` in image pixels, `threshold` on the contrasted similarity. */
export async function countWithPrototypes(
  extractors: readonly FeatureExtractor[],
  img: RgbLike,
  prototypes: readonly Float32Array[],
  radius: number,
  threshold: number,
): Promise<{ count: number; points: { x: number; y: number; score: number }[] }> {
  let k = 0;
  const map = await similarityMap(extractors, img, () => prototypes[k++] as Float32Array);
  const points = findPeaks(map, threshold, Math.max(1, radius / map.scale));
  return { count: points.length, points };
}

export async function countWithExemplars(
  extractors: readonly FeatureExtractor[],
  img: RgbLike,
  boxes: readonly Box[],
  o: { threshold?: number } = {},
): Promise<CountResult> {
  const map = await similarityMap(extractors, img, (feats, grid, dim) =>
    prototypeFrom(feats, grid, dim, boxes, img.width, img.height),
  );
  const minSide = Math.min(...boxes.map((b) => Math.min(b[2], b[3])));
  const radius = Math.max(1, (0.5 * minSide) / map.scale);
  const threshold = o.threshold ?? defaultThreshold(map, boxes);
  const points = findPeaks(map, threshold, radius);
  return { count: points.length, points, threshold, radius, map };
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
