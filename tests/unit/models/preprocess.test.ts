import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Rng } from '../../../native/base/rng.js';
import {
  cropRgb,
  IMAGENET_MEAN,
  IMAGENET_STD,
  preprocessBatch,
  preprocessInto,
  resizeRgb,
} from '../../../native/models/preprocess.js';

function solid(width: number, height: number, rgb: [number, number, number]) {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) data.set(rgb, i * 3);
  return { width, height, data };
}

describe('preprocessing', () => {
  it('keeps a flat image flat through resizing in both directions', () => {
    for (const filter of ['bilinear', 'bicubic'] as const) {
      const down = resizeRgb(solid(640, 480, [10, 200, 90]), 224, 168, filter);
      const up = resizeRgb(solid(50, 40, [10, 200, 90]), 224, 179, filter);
      for (const img of [down, up]) {
        for (let i = 0; i < img.data.length; i += 3)
          expect([img.data[i], img.data[i + 1], img.data[i + 2]]).toEqual([10, 200, 90]);
      }
    }
  });

  it('averages when downscaling (antialiasing) instead of sampling', () => {
    // Alternating black and white columns: a plain point-sampled 2x downscale would be all black or all white.
    const img = solid(64, 8, [0, 0, 0]);
    for (let y = 0; y < 8; y++) for (let x = 1; x < 64; x += 2) img.data.set([255, 255, 255], (y * 64 + x) * 3);
    const small = resizeRgb(img, 16, 2, 'bilinear');
    for (let y = 0; y < 2; y++) {
      // Interior pixels (the edge ones see a truncated window).
      for (let x = 1; x < 15; x++) expect(Math.abs((small.data[(y * 16 + x) * 3] as number) - 128)).toBeLessThan(3);
    }
  });

  it('centre-crops the shorter-side resize and normalises with ImageNet mean and std', () => {
    const img = solid(300, 200, [255, 0, 128]);
    // Mark the left and right bands: they must be cropped away.
    for (let y = 0; y < 200; y++) {
      for (let x = 0; x < 40; x++) img.data.set([0, 255, 0], (y * 300 + x) * 3);
      for (let x = 260; x < 300; x++) img.data.set([0, 255, 0], (y * 300 + x) * 3);
    }
    const out = preprocessBatch([img, img], { size: 112, filter: 'bilinear' });
    expect(out.length).toBe(2 * 3 * 112 * 112);
    const plane = 112 * 112;
    const centre = 56 * 112 + 56;
    expect(out[centre]).toBeCloseTo((1 - IMAGENET_MEAN[0]) / IMAGENET_STD[0], 5);
    expect(out[plane + centre]).toBeCloseTo((0 - IMAGENET_MEAN[1]) / IMAGENET_STD[1], 5);
    expect(out[2 * plane + centre]).toBeCloseTo((128 / 255 - IMAGENET_MEAN[2]) / IMAGENET_STD[2], 5);
    // Column 0 of the crop comes from x = 25 of the 168-wide resize, past the green band (0..~22 after resize).
    expect(out[plane + 56 * 112]).toBeCloseTo(out[plane + centre] as number, 1);
    expect(out.subarray(3 * plane)).toEqual(out.subarray(0, 3 * plane));
  });

  it('resizes to the same bytes as the general two-pass resampler (taps of weight 0 dropped, a same-size pass copied)', () => {
    // sha256 prefixes of the outputs before those fast paths (commit 3481d13): an aspect-policy frame (299x224 to
    // 304x224, the column pass a copy), a square one, and bicubic up and down.
    const rng = new Rng(7);
    const img = { width: 299, height: 224, data: Uint8Array.from({ length: 299 * 224 * 3 }, () => rng.int(256)) };
    const hash = (w: number, h: number, f: 'bilinear' | 'bicubic') =>
      createHash('sha256')
        .update(resizeRgb(img, w, h, f).data)
        .digest('hex')
        .slice(0, 16);
    expect(hash(304, 224, 'bilinear')).toBe('620e8c4b828383cd');
    expect(hash(224, 224, 'bilinear')).toBe('014dd26b2dd5a831');
    expect(hash(150, 300, 'bicubic')).toBe('72b52adb1fdfe0ef');
    expect(hash(299, 400, 'bicubic')).toBe('279147100180a995');
  });

  it('stretches and normalises in one pass to the values of resizeRgb then (v / 255 - mean) / std, bit for bit', () => {
    // The one-pass path (no byte image in between, rounding without Math.round) against the two steps it replaces:
    // downscales of 2 and 3 taps, a copied row or column pass, bicubic up and down (sums beyond 0..255 clamp).
    const rng = new Rng(11);
    const mean = [0.4, 0.5, 0.6] as const;
    const std = [0.2, 0.25, 0.3] as const;
    const cases = [
      [320, 240, 304, 224, 'bilinear'],
      [299, 224, 304, 224, 'bilinear'],
      [320, 240, 320, 224, 'bicubic'],
      [304, 224, 304, 224, 'bilinear'],
      [50, 40, 224, 179, 'bicubic'],
      [640, 480, 224, 224, 'bilinear'],
      [300, 200, 112, 300, 'bicubic'],
    ] as const;
    for (const [w0, h0, w, h, filter] of cases) {
      const img = { width: w0, height: h0, data: Uint8Array.from({ length: w0 * h0 * 3 }, () => rng.int(256)) };
      const got = new Float32Array(3 * w * h);
      preprocessInto(img, { size: w, height: h, mode: 'stretch', filter, mean, std }, got);
      const bytes = resizeRgb(img, w, h, filter).data;
      const want = new Float32Array(3 * w * h);
      for (let c = 0; c < 3; c++)
        for (let i = 0; i < w * h; i++)
          want[c * w * h + i] = ((bytes[i * 3 + c] as number) / 255 - (mean[c] as number)) / (std[c] as number);
      expect(Buffer.from(got.buffer).equals(Buffer.from(want.buffer))).toBe(true);
    }
  });

  it('crops exact rectangles', () => {
    const img = solid(4, 4, [0, 0, 0]);
    img.data.set([9, 9, 9], (2 * 4 + 1) * 3);
    const c = cropRgb(img, 1, 2, 2, 2);
    expect(Array.from(c.data.subarray(0, 3))).toEqual([9, 9, 9]);
    expect(c.width).toBe(2);
  });
});
