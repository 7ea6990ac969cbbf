/**
 * The views each FUNGI objective sees (fungivision's transforms), as normalised CHW float32 written into a batch:
 * KL: resize to (size·256/224)² and a centred crop (the embedding uses the same view); DINO: 2 global + 10 local
 * RandomResizedCrops at the full size (scales 0.25–1 and 0.05–0.25); SimCLR: the image resized to size², cut into
 * overlapping patches (size/√numPatches every patch/strideScale px, torch unfold order: rows then columns), each
 * resized back to size². Resizing is bicubic as torchvision's; crops are drawn from a generator seeded per frame,
 * so a frame's views do not depend on its batch or on a resume.
 */

import { sampleCropBox } from '../base/crop-box.js';
import { Rng } from '../base/rng.js';
import { cropRgb, type RgbLike, resizeRgb } from '../models/preprocess.js';
import { type FungiObjective, type FungiSettings, simclrGeometry } from './graph.js';

export interface Normalisation {
  mean: readonly [number, number, number];
  std: readonly [number, number, number];
}

function writeChw(img: RgbLike, n: Normalisation, out: Float32Array, offset: number): void {
  const plane = img.width * img.height;
  for (let i = 0; i < plane; i++)
    for (let c = 0; c < 3; c++)
      out[offset + c * plane + i] =
        ((img.data[i * 3 + c] as number) / 255 - (n.mean[c] as number)) / (n.std[c] as number);
}

function klView(img: RgbLike, size: number): RgbLike {
  const big = Math.round((size * 256) / 224);
  const r = resizeRgb(img, big, big, 'bilinear');
  const o = Math.floor((big - size) / 2);
  return cropRgb(r, o, o, size, size);
}

function dinoViews(img: RgbLike, size: number, s: FungiSettings, rng: Rng): RgbLike[] {
  const crop = (scale: [number, number]) => {
    const [x, y, w, h] = sampleCropBox(img.width, img.height, { scale }, rng);
    return resizeRgb(cropRgb(img, x, y, w, h), size, size, 'bicubic');
  };
  return [
    ...Array.from({ length: s.dino.globalViews }, () => crop(s.dino.globalScale)),
    ...Array.from({ length: s.dino.localViews }, () => crop(s.dino.localScale)),
  ];
}

function simclrViews(img: RgbLike, size: number, s: FungiSettings): RgbLike[] {
  const base = resizeRgb(img, size, size, 'bicubic');
  const { patch, stride } = simclrGeometry(s, size);
  const views: RgbLike[] = [];
  for (let y = 0; y + patch <= size; y += stride)
    for (let x = 0; x + patch <= size; x += stride)
      views.push(resizeRgb(cropRgb(base, x, y, patch, patch), size, size, 'bicubic'));
  return views;
}

/** A frame's views for one objective. `seed` identifies the frame (DINO crops). */
export function objectiveViews(
  objective: FungiObjective | 'embedding',
  img: RgbLike,
  size: number,
  settings: FungiSettings,
  seed: number,
): RgbLike[] {
  if (objective === 'embedding' || objective === 'kl') return [klView(img, size)];
  if (objective === 'dino') return dinoViews(img, size, settings, new Rng(seed));
  return simclrViews(img, size, settings);
}

/** Writes views of several frames, frame-major, into one [Σ views, 3, size, size] batch. */
export function writeViews(views: readonly RgbLike[], n: Normalisation, out: Float32Array, offset = 0): void {
  views.forEach((v, i) => {
    writeChw(v, n, out, offset + i * 3 * v.width * v.height);
  });
}

/** A stable 32-bit seed per (run seed, media, frame). */
export function frameSeed(seed: number, mediaId: number, frameIdx: number): number {
  let h = (seed ^ 0x9e3779b9) >>> 0;
  for (const v of [mediaId, frameIdx]) {
    h = Math.imul(h ^ v, 0x85ebca6b) >>> 0;
    h = (h ^ (h >>> 13)) >>> 0;
  }
  return h;
}
