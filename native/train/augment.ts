/**
 * DINO-style augmentations on RGB frames, driven by a seeded generator: random resized crop, horizontal flip,
 * colour jitter (brightness, contrast, saturation, hue), random grayscale; then normalisation into a batch.
 */

import { sampleCropBox } from '../base/crop-box.js';
import type { Rng } from '../base/rng.js';
import { type RgbLike, resizeRgb } from '../models/preprocess.js';

export interface CropOptions {
  size: number;
  scale: [number, number];
  ratio?: [number, number];
}

export interface JitterOptions {
  p: number;
  brightness: number;
  contrast: number;
  saturation: number;
  hue: number;
}

export const DINO_JITTER: JitterOptions = { p: 0.8, brightness: 0.4, contrast: 0.4, saturation: 0.2, hue: 0.1 };

/** The box [x, y, w, h] of `img`, resized (bilinear) to size × size. */
export function cropResize(img: RgbLike, box: readonly [number, number, number, number], size: number): RgbLike {
  const [x, y, w, h] = box;
  const crop = new Uint8Array(w * h * 3);
  for (let row = 0; row < h; row++)
    crop.set(img.data.subarray(((y + row) * img.width + x) * 3, ((y + row) * img.width + x + w) * 3), row * w * 3);
  return resizeRgb({ width: w, height: h, data: crop }, size, size, 'bilinear');
}

/** torchvision RandomResizedCrop. */
export function randomResizedCrop(img: RgbLike, o: CropOptions, rng: Rng): RgbLike {
  return cropResize(img, sampleCropBox(img.width, img.height, o, rng), o.size);
}

/** Gaussian blur of float RGB [h, w, 3] in place, separable, radius 3 sigma (edges clamped). */
export function gaussianBlur(px: Float32Array, width: number, height: number, sigma: number): void {
  const r = Math.max(1, Math.ceil(3 * sigma));
  const kernel = Float32Array.from({ length: 2 * r + 1 }, (_, i) => Math.exp(-((i - r) ** 2) / (2 * sigma * sigma)));
  const sum = kernel.reduce((a, v) => a + v, 0);
  for (let i = 0; i < kernel.length; i++) kernel[i] = (kernel[i] as number) / sum;
  const tmp = new Float32Array(px.length);
  // Each output sums its taps in the same order (t = -r … r, edges clamped) in a float64 accumulator as a per-tap
  // clamp would; the clamped source positions are precomputed per output position instead.
  const K = 2 * r + 1;
  const taps = (n: number) => {
    const at = new Int32Array(n * K);
    for (let p = 0; p < n; p++) for (let t = -r; t <= r; t++) at[p * K + t + r] = Math.min(n - 1, Math.max(0, p + t));
    return at;
  };
  const xs = taps(width);
  const row = width * 3;
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++)
      for (let c = 0; c < 3; c++) {
        let acc = 0;
        for (let k = 0; k < K; k++)
          acc += (kernel[k] as number) * (px[y * row + (xs[x * K + k] as number) * 3 + c] as number);
        tmp[y * row + x * 3 + c] = acc;
      }
  const ys = taps(height);
  for (let y = 0; y < height; y++)
    for (let j = 0; j < row; j++) {
      let acc = 0;
      for (let k = 0; k < K; k++) acc += (kernel[k] as number) * (tmp[(ys[y * K + k] as number) * row + j] as number);
      px[y * row + j] = acc;
    }
}

export function hflip(img: RgbLike): RgbLike {
  const out = new Uint8Array(img.data.length);
  for (let y = 0; y < img.height; y++) {
    for (let x = 0; x < img.width; x++) {
      const s = (y * img.width + x) * 3;
      const d = (y * img.width + (img.width - 1 - x)) * 3;
      out[d] = img.data[s] as number;
      out[d + 1] = img.data[s + 1] as number;
      out[d + 2] = img.data[s + 2] as number;
    }
  }
  return { width: img.width, height: img.height, data: out };
}

const luma = (px: Float32Array, i: number) =>
  0.299 * (px[i] as number) + 0.587 * (px[i + 1] as number) + 0.114 * (px[i + 2] as number);

// Each adjustment is its own small function (called per view), which V8 optimises sooner than one long function
// whose loops run a few times per step.
function brightness(px: Float32Array, f: number): void {
  for (let i = 0; i < px.length; i++) px[i] = Math.min(1, (px[i] as number) * f);
}

function contrast(px: Float32Array, f: number): void {
  const n = px.length / 3;
  let mean = 0;
  for (let i = 0; i < n; i++) mean += luma(px, i * 3);
  mean /= n;
  for (let i = 0; i < px.length; i++) px[i] = Math.min(1, Math.max(0, ((px[i] as number) - mean) * f + mean));
}

function saturation(px: Float32Array, f: number): void {
  const n = px.length / 3;
  for (let i = 0; i < n; i++) {
    const g = luma(px, i * 3);
    for (let c = 0; c < 3; c++) px[i * 3 + c] = Math.min(1, Math.max(0, ((px[i * 3 + c] as number) - g) * f + g));
  }
}

/** Hue: rotate chroma in YIQ space by `a` radians. */
function hue(px: Float32Array, a: number): void {
  const n = px.length / 3;
  const cos = Math.cos(a);
  const sin = Math.sin(a);
  for (let i = 0; i < n; i++) {
    const r = px[i * 3] as number;
    const g = px[i * 3 + 1] as number;
    const bl = px[i * 3 + 2] as number;
    const y = 0.299 * r + 0.587 * g + 0.114 * bl;
    const ci = 0.596 * r - 0.274 * g - 0.322 * bl;
    const cq = 0.211 * r - 0.523 * g + 0.312 * bl;
    const i2 = ci * cos - cq * sin;
    const q2 = ci * sin + cq * cos;
    px[i * 3] = Math.min(1, Math.max(0, y + 0.956 * i2 + 0.621 * q2));
    px[i * 3 + 1] = Math.min(1, Math.max(0, y - 0.272 * i2 - 0.647 * q2));
    px[i * 3 + 2] = Math.min(1, Math.max(0, y - 1.106 * i2 + 1.703 * q2));
  }
}

function grayscale(px: Float32Array): void {
  const n = px.length / 3;
  for (let i = 0; i < n; i++) {
    const g = luma(px, i * 3);
    px[i * 3] = g;
    px[i * 3 + 1] = g;
    px[i * 3 + 2] = g;
  }
}

/** Colour jitter and grayscale on float RGB in [0, 1] (in place), applied in a random order like torchvision. */
export function colourJitter(px: Float32Array, o: JitterOptions, grayscaleP: number, rng: Rng): void {
  if (rng.next() < o.p) {
    for (const op of rng.shuffle([0, 1, 2, 3])) {
      if (op === 0) brightness(px, rng.uniform(1 - o.brightness, 1 + o.brightness));
      else if (op === 1) contrast(px, rng.uniform(1 - o.contrast, 1 + o.contrast));
      else if (op === 2) saturation(px, rng.uniform(1 - o.saturation, 1 + o.saturation));
      else hue(px, rng.uniform(-o.hue, o.hue) * 2 * Math.PI);
    }
  }
  if (rng.next() < grayscaleP) grayscale(px);
}

/** An RGB image's bytes as floats in [0, 1] (what colour jitter and blur work on). */
export function unitFloats(img: RgbLike): Float32Array {
  const px = new Float32Array(img.data.length);
  for (let i = 0; i < px.length; i++) px[i] = (img.data[i] as number) / 255;
  return px;
}

/** Float RGB [h·w, 3] in [0, 1], normalised per channel, written CHW into `out` at `offset`. */
export function normalizeInto(
  px: Float32Array,
  mean: readonly number[],
  std: readonly number[],
  out: Float32Array,
  offset: number,
): void {
  const plane = px.length / 3;
  for (let i = 0; i < plane; i++)
    for (let c = 0; c < 3; c++)
      out[offset + c * plane + i] = ((px[i * 3 + c] as number) - (mean[c] as number)) / (std[c] as number);
}

/** One augmented view, normalised, written CHW into `out` at `offset`. */
export function augmentInto(
  img: RgbLike,
  crop: CropOptions,
  jitter: JitterOptions,
  grayscaleP: number,
  mean: readonly number[],
  std: readonly number[],
  rng: Rng,
  out: Float32Array,
  offset: number,
): void {
  let v = randomResizedCrop(img, crop, rng);
  if (rng.next() < 0.5) v = hflip(v);
  const px = unitFloats(v);
  colourJitter(px, jitter, grayscaleP, rng);
  normalizeInto(px, mean, std, out, offset);
}
