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
  const { labels, sizes } = components(salient, gridW, gridH);
  const keys = l2normalizeRows(att.k.slice(), dim);
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
 * A Self-Collage library from unlabelled images: the objects of each image (`attend` gives its last-block
 * attention and keys, e.g. track/attention.ts `AttentionExtractor.run`), typed by k-means; every image is a
 * background candidate.
 */
export async function collageLibrary(
  images: readonly RgbLike[],
  attend: (img: RgbLike) => Promise<FrameAttention>,
  knn: ExactKnn,
  o: { types: number; seed: number } & SalientOptions,
): Promise<{ objects: CollageObject[]; backgrounds: RgbLike[]; discovered: DiscoveredObject[] }> {
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
  return { objects, backgrounds: [...images], discovered };
}
