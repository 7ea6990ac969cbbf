/**
 * Objects for Self-Collages without labels, from the frozen encoder: the salient patches of an image (the last
 * block's CLS attention averaged over heads, the most attended patches that hold `mass` of it, as DINO's attention
 * masks and the seed's unsupervised saliency), split into connected regions on the patch grid; each region is an
 * object (its pixels cut by the region's mask at image resolution) with a feature (mean of its patches' L2-normalised
 * keys, the features Dora's discovery works on). Object types are spherical k-means clusters of those features
 * (features/kmeans.ts); images whose objects are few serve as backgrounds.
 */
import { assignNearest, sphericalKMeans } from '../features/kmeans.js';
import { type ExactKnn, l2normalizeRows } from '../features/knn.js';
import { maskBox } from '../models/dora.js';
import type { RgbLike } from '../models/preprocess.js';
import type { FrameAttention } from '../track/attention.js';
import type { CollageObject } from './collage.js';
import { components } from './count.js';

export interface DiscoveredObject extends Omit<CollageObject, 'type'> {
  /** Library image index and box [x0, y0, x1, y1) in its pixels. */
  image: number;
  box: [number, number, number, number];
  /** L2-normalised mean key of its patches. */
  feature: Float32Array;
}

export interface SalientOptions {
  /** Share of the CLS attention mass the kept patches hold (DINO's attention masks: 0.6). */
  mass?: number;
  /** Regions smaller than this many patches are dropped. */
  minPatches?: number;
  /** Regions covering more than this share of the grid are background, not objects. */
  maxShare?: number;
  /**
   * Cut objects at pixel level (`pixelObjects`): within the salient regions, the pixels whose colour the
   * non-salient part of the image rarely shows, split into connected components — one object each, where the
   * patch grid would merge neighbours into one region. Off: the patch regions themselves.
   */
  pixels?: boolean;
}

/** A binary mask dilated (`grow` 1) or eroded (0) by a (2r+1)² square, separably. */
function morph(mask: Uint8Array, W: number, H: number, r: number, grow: 0 | 1): Uint8Array {
  const pass = (src: Uint8Array, horizontal: boolean) => {
    const out = new Uint8Array(W * H);
    for (let y = 0; y < H; y++)
      for (let x = 0; x < W; x++) {
        let v = grow ? 0 : 1;
        for (let d = -r; d <= r; d++) {
          const xx = horizontal ? x + d : x;
          const yy = horizontal ? y : y + d;
          // Outside the image: background for a dilation, no constraint for an erosion.
          const inside = xx >= 0 && xx < W && yy >= 0 && yy < H;
          const s = inside ? (src[yy * W + xx] as number) : grow ? 0 : 1;
          if (s === grow) {
            v = grow;
            break;
          }
        }
        out[y * W + x] = v;
      }
    return out;
  };
  return pass(pass(mask, true), false);
}

/** Morphological closing: gaps up to 2r px inside an object (its stripes, checks, dots) filled. */
function closing(mask: Uint8Array, W: number, H: number, r: number): Uint8Array {
  return r > 0 ? morph(morph(mask, W, H, r, 1), W, H, r, 0) : mask;
}

/** Colour bins per channel of the background histogram (`pixelObjects`). */
const BINS = 8;

/**
 * Objects at pixel level (the saliency mask refined by colour contrast, as unsupervised object segmentation refines
 * a coarse attention mask): the colours of the non-salient patches are the background's (a BINS³ histogram); inside
 * the salient patches and their neighbours, a pixel whose colour bin holds under `rare` of the background's pixels
 * is foreground; closed (gaps up to 4 px: stripes, checks), each 4-connected component of at least `minArea` pixels (and at most half the image) is
 * an object, its feature the mean of the L2-normalised keys of the patches it covers. Null when the image has no
 * non-salient patch to learn the background from.
 */
export function pixelObjects(
  img: RgbLike,
  salient: Uint8Array,
  keys: Float32Array,
  att: { gridH: number; gridW: number; dim: number },
  image: number,
  o: { rare?: number; minArea?: number; close?: number } = {},
): DiscoveredObject[] | null {
  const { gridH, gridW, dim } = att;
  const W = img.width;
  const H = img.height;
  const cw = W / gridW;
  const ch = H / gridH;
  const cell = (x: number, y: number) =>
    Math.min(gridH - 1, Math.floor(y / ch)) * gridW + Math.min(gridW - 1, Math.floor(x / cw));
  const bin = (i: number) => {
    const d = img.data;
    const q = (v: number) => Math.min(BINS - 1, Math.floor(((v as number) * BINS) / 256));
    return (q(d[i * 3] as number) * BINS + q(d[i * 3 + 1] as number)) * BINS + q(d[i * 3 + 2] as number);
  };
  // Salient patches and their 8 neighbours: where objects may be.
  const near = new Uint8Array(gridH * gridW);
  for (let gy = 0; gy < gridH; gy++)
    for (let gx = 0; gx < gridW; gx++) {
      if (!salient[gy * gridW + gx]) continue;
      for (let dy = -1; dy <= 1; dy++)
        for (let dx = -1; dx <= 1; dx++) {
          const y = gy + dy;
          const x = gx + dx;
          if (y >= 0 && y < gridH && x >= 0 && x < gridW) near[y * gridW + x] = 1;
        }
    }
  const hist = new Float64Array(BINS ** 3);
  let bg = 0;
  for (let i = 0; i < W * H; i++)
    if (!salient[cell(i % W, Math.floor(i / W))]) {
      hist[bin(i)] = (hist[bin(i)] as number) + 1;
      bg++;
    }
  if (bg === 0) return null;
  const rare = (o.rare ?? 0.01) * bg;
  const fg = new Uint8Array(W * H);
  for (let i = 0; i < W * H; i++)
    if (near[cell(i % W, Math.floor(i / W))] && (hist[bin(i)] as number) < rare) fg[i] = 1;
  const { labels, sizes } = components(closing(fg, W, H, o.close ?? 2), W, H);
  const minArea = o.minArea ?? Math.max(4, Math.round(0.1 * cw * ch));
  const boxes = sizes.map(() => [W, H, -1, -1] as [number, number, number, number]);
  for (let i = 0; i < W * H; i++) {
    const id = labels[i] as number;
    if (id < 0) continue;
    const b = boxes[id] as [number, number, number, number];
    const x = i % W;
    const y = (i - x) / W;
    b[0] = Math.min(b[0], x);
    b[1] = Math.min(b[1], y);
    b[2] = Math.max(b[2], x + 1);
    b[3] = Math.max(b[3], y + 1);
  }
  const out: DiscoveredObject[] = [];
  for (const [id, area] of sizes.entries()) {
    if (area < minArea || area > 0.5 * W * H) continue;
    const [x0, y0, x1, y1] = boxes[id] as [number, number, number, number];
    const width = x1 - x0;
    const height = y1 - y0;
    const rgb = new Uint8Array(width * height * 3);
    const mask = new Uint8Array(width * height);
    const feature = new Float32Array(dim);
    for (let y = 0; y < height; y++)
      for (let x = 0; x < width; x++) {
        const si = (y + y0) * W + x + x0;
        rgb.set(img.data.subarray(si * 3, si * 3 + 3), (y * width + x) * 3);
        if (labels[si] !== id) continue;
        mask[y * width + x] = 1;
        const c = cell(x + x0, y + y0);
        for (let d = 0; d < dim; d++) feature[d] = (feature[d] as number) + (keys[c * dim + d] as number);
      }
    l2normalizeRows(feature, dim);
    out.push({ image, box: [x0, y0, x1, y1], width, height, rgb, mask, feature });
  }
  return out;
}

/** Salient patches: the most attended patches (mean over heads) that together hold `mass` of the attention. */
export function salientPatches(att: Pick<FrameAttention, 'attention' | 'heads' | 'gridH' | 'gridW'>, mass: number) {
  const n = att.gridH * att.gridW;
  const mean = new Float64Array(n);
  let total = 0;
  for (let h = 0; h < att.heads; h++)
    for (let i = 0; i < n; i++) mean[i] = (mean[i] as number) + (att.attention[h * n + i] as number);
  for (const v of mean) total += v;
  const order = [...mean.keys()].sort((a, b) => (mean[b] as number) - (mean[a] as number) || a - b);
  const mask = new Uint8Array(n);
  let kept = 0;
  for (const i of order) {
    if (kept >= mass * total) break;
    mask[i] = 1;
    kept += mean[i] as number;
  }
  return mask;
}

/** The objects of one image: connected salient regions, cut at image resolution. */
export function discoverObjects(
  img: RgbLike,
  att: FrameAttention,
  image: number,
  o: SalientOptions = {},
): DiscoveredObject[] {
  const { gridH, gridW, dim } = att;
  const n = gridH * gridW;
  const salient = salientPatches(att, o.mass ?? 0.6);
  const keys = l2normalizeRows(att.k.slice(), dim);
  const refined = o.pixels ? pixelObjects(img, salient, keys, att, image) : null;
  if (refined?.length) return refined;
  const { labels, sizes } = components(salient, gridW, gridH);
  const out: DiscoveredObject[] = [];
  for (const [id, patches] of sizes.entries()) {
    if (patches < (o.minPatches ?? 1) || patches > (o.maxShare ?? 0.5) * n) continue;
    const region = new Uint8Array(n);
    const feature = new Float32Array(dim);
    for (let i = 0; i < n; i++) {
      if (labels[i] !== id) continue;
      region[i] = 1;
      for (let d = 0; d < dim; d++) feature[d] = (feature[d] as number) + (keys[i * dim + d] as number);
    }
    const [gx0, gy0, gw, gh] = maskBox(region, att, gridW, gridH) as [number, number, number, number];
    const gx1 = gx0 + gw - 1;
    const gy1 = gy0 + gh - 1;
    l2normalizeRows(feature, dim);
    const cw = img.width / gridW;
    const ch = img.height / gridH;
    const x0 = Math.floor(gx0 * cw);
    const y0 = Math.floor(gy0 * ch);
    const x1 = Math.min(img.width, Math.ceil((gx1 + 1) * cw));
    const y1 = Math.min(img.height, Math.ceil((gy1 + 1) * ch));
    const width = x1 - x0;
    const height = y1 - y0;
    const rgb = new Uint8Array(width * height * 3);
    const mask = new Uint8Array(width * height);
    for (let y = 0; y < height; y++) {
      const gy = Math.min(gridH - 1, Math.floor((y + y0) / ch));
      for (let x = 0; x < width; x++) {
        const gx = Math.min(gridW - 1, Math.floor((x + x0) / cw));
        const si = ((y + y0) * img.width + x + x0) * 3;
        const di = y * width + x;
        mask[di] = labels[gy * gridW + gx] === id ? 1 : 0;
        rgb.set(img.data.subarray(si, si + 3), di * 3);
      }
    }
    out.push({ image, box: [x0, y0, x1, y1], width, height, rgb, mask, feature });
  }
  return out;
}

/** Object types: spherical k-means over the objects' features (k at most the number of objects). */
export async function objectTypes(
  knn: ExactKnn,
  objects: readonly DiscoveredObject[],
  o: { types: number; seed: number; iterations?: number },
): Promise<Int32Array> {
  if (!objects.length) return new Int32Array(0);
  const dim = (objects[0] as DiscoveredObject).feature.length;
  const feats = new Float32Array(objects.length * dim);
  objects.forEach((ob, i) => {
    feats.set(ob.feature, i * dim);
  });
  const centroids = await sphericalKMeans(knn, feats, dim, {
    k: Math.min(o.types, objects.length),
    iterations: o.iterations ?? 10,
    seed: o.seed,
  });
  return assignNearest(knn, feats, centroids, dim);
}

/**
 * `img` with the pixels of `objects` (pixel-level masks) painted over: each row's object pixels take the colour of
 * the nearest pixel to their left that is no object's (to their right at the row's start).
 */
export function withoutObjects(img: RgbLike, objects: readonly DiscoveredObject[]): RgbLike {
  const W = img.width;
  const H = img.height;
  const gone = new Uint8Array(W * H);
  for (const o of objects)
    for (let y = 0; y < o.height; y++)
      for (let x = 0; x < o.width; x++) if (o.mask[y * o.width + x]) gone[(o.box[1] + y) * W + o.box[0] + x] = 1;
  const data = img.data.slice();
  for (let y = 0; y < H; y++) {
    let src = -1;
    for (let x = 0; x < W; x++)
      if (!gone[y * W + x]) {
        src = x;
        break;
      }
    if (src < 0) continue;
    for (let x = 0; x < W; x++) {
      const i = y * W + x;
      if (gone[i]) data.copyWithin(i * 3, (y * W + src) * 3, (y * W + src) * 3 + 3);
      else src = x;
    }
  }
  return { width: W, height: H, data };
}

/**
 * A Self-Collage library from unlabelled images: the objects of each image (`attend` gives its last-block
 * attention and keys, e.g. track/attention.ts `AttentionExtractor.run`), typed by k-means; every image is a
 * background candidate, with the types of the objects found in it (`backgroundTypes`: a collage takes a background
 * without its object types, as the official `ign_clusters`) and, with pixel-level objects, those objects painted
 * over (`withoutObjects`).
 */
export async function collageLibrary(
  images: readonly RgbLike[],
  attend: (img: RgbLike) => Promise<FrameAttention>,
  knn: ExactKnn,
  o: { types: number; seed: number } & SalientOptions,
): Promise<{
  objects: CollageObject[];
  backgrounds: RgbLike[];
  backgroundTypes: Set<number>[];
  discovered: DiscoveredObject[];
}> {
  const discovered: DiscoveredObject[] = [];
  for (const [i, img] of images.entries()) discovered.push(...discoverObjects(img, await attend(img), i, o));
  const types = await objectTypes(knn, discovered, o);
  const objects = discovered.map((d, i) => ({
    width: d.width,
    height: d.height,
    rgb: d.rgb,
    mask: d.mask,
    type: types[i] as number,
  }));
  const backgroundTypes = images.map(() => new Set<number>());
  discovered.forEach((d, i) => {
    backgroundTypes[d.image]?.add(types[i] as number);
  });
  const backgrounds = o.pixels
    ? images.map((img, i) =>
        withoutObjects(
          img,
          discovered.filter((d) => d.image === i),
        ),
      )
    : [...images];
  return { objects, backgrounds, backgroundTypes, discovered };
}
