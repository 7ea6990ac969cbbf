/**
 * Writes the inputs of the propagation parity fixture (tests/fixtures/propagate): a small synthetic video
 * (tools/synth/propagate.ts, seed 11, 160×96, 12 frames, 3 objects), hand-made colour features on a 6×10 grid
 * (the grid of a 96×160 input with 16-pixel patches) and every frame's instance ids; and pairs of masks for the
 * F-measure check (empty, full, shifted, ragged). Then run the reference on it:
 *
 *   node --import tsx tools/propagate-fixture.ts tests/fixtures/propagate
 *   /usr/bin/python3 tools/propagate_reference.py propagate tests/fixtures/propagate
 *   /usr/bin/python3 tools/propagate_reference.py propagate tests/fixtures/propagate/product
 *   /usr/bin/python3 tools/propagate_reference.py propagate tests/fixtures/propagate/reidentify
 *   /usr/bin/python3 tools/propagate_reference.py fmeasure tests/fixtures/propagate/fmeasure
 */
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { DINO_PROTOCOL } from '../native/track/propagate.js';
import { colourFeatures, renderScene } from './synth/propagate.js';

export const FIXTURE = { seed: 11, width: 160, height: 96, frames: 12, objects: 3, gridH: 6, gridW: 10, patch: 16 };

export function fmeasurePairs(width: number, height: number): Uint8Array[][] {
  const blank = () => new Uint8Array(width * height);
  const rect = (x0: number, y0: number, x1: number, y1: number) => {
    const m = blank();
    for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) m[y * width + x] = 1;
    return m;
  };
  const disc = (cx: number, cy: number, r: number) => {
    const m = blank();
    for (let y = 0; y < height; y++)
      for (let x = 0; x < width; x++) if ((x - cx) ** 2 + (y - cy) ** 2 <= r * r) m[y * width + x] = 1;
    return m;
  };
  const full = rect(0, 0, width, height);
  const ragged = blank();
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) if ((x * 7 + y * 13) % 11 < 4 && x > 20 && y > 10) ragged[y * width + x] = 1;
  return [
    [blank(), blank()],
    [full, full],
    [blank(), full],
    [full, blank()],
    [blank(), disc(80, 48, 20)],
    [disc(80, 48, 20), blank()],
    [full, disc(80, 48, 20)],
    [disc(80, 48, 20), disc(80, 48, 20)],
    [disc(80, 48, 20), disc(83, 49, 20)],
    [disc(80, 48, 20), disc(90, 52, 18)],
    [rect(10, 10, 60, 50), rect(12, 8, 64, 52)],
    [rect(0, 0, 40, 96), rect(0, 0, 44, 96)],
    [rect(120, 60, 160, 96), rect(100, 50, 160, 96)],
    [ragged, disc(70, 50, 30)],
    [rect(0, 0, 1, 1), rect(159, 95, 160, 96)],
  ];
}

function main(): void {
  const dir = path.resolve(process.argv[2] ?? 'tests/fixtures/propagate');
  fs.mkdirSync(path.join(dir, 'fmeasure'), { recursive: true });
  const f = FIXTURE;
  // No look-alike pair: two objects with the same features give exactly tied scores, which torch and Flaneur break
  // differently (float rounding), not a difference of method.
  const s = renderScene(f.seed, {
    width: f.width,
    height: f.height,
    frames: f.frames,
    objects: f.objects,
    lookalikes: false,
  });
  const feats = s.rgb.map((rgb) => colourFeatures(rgb, f.width, f.height, f.gridH, f.gridW));
  const dim = feats[0]?.length ? feats[0].length / (f.gridH * f.gridW) : 0;
  const all = new Float32Array(f.frames * f.gridH * f.gridW * dim);
  for (const [i, x] of feats.entries()) all.set(x, i * x.length);
  fs.writeFileSync(path.join(dir, 'features.f32'), Buffer.from(all.buffer));
  const masks = new Uint8Array(f.frames * f.width * f.height);
  for (const [i, m] of s.masks.entries()) masks.set(m, i * m.length);
  fs.writeFileSync(path.join(dir, 'masks.u8.gz'), zlib.gzipSync(masks, { level: 9 }));
  const meta = {
    ...DINO_PROTOCOL,
    // A 6×10 grid: a radius of 2 patches makes the neighbourhood bite.
    radius: 2,
    seed: f.seed,
    frames: f.frames,
    width: f.width,
    height: f.height,
    gridH: f.gridH,
    gridW: f.gridW,
    inputHeight: f.gridH * f.patch,
    inputWidth: f.gridW * f.patch,
    dim,
    classes: f.objects + 1,
  };
  fs.writeFileSync(path.join(dir, 'meta.json'), `${JSON.stringify(meta, null, 2)}\n`);
  // The same video with the options beyond DINO's protocol (a first-frame prior of 0.5): the reference's second mode.
  const product = path.join(dir, 'product');
  fs.mkdirSync(product, { recursive: true });
  fs.copyFileSync(path.join(dir, 'features.f32'), path.join(product, 'features.f32'));
  fs.copyFileSync(path.join(dir, 'masks.u8.gz'), path.join(product, 'masks.u8.gz'));
  const productMeta = { ...meta, firstPrior: 0.5 };
  fs.writeFileSync(path.join(product, 'meta.json'), `${JSON.stringify(productMeta, null, 2)}\n`);
  // And with the re-identification of lost objects (the product default, margin -0.05): objects leave the frame and
  // come back here.
  const reid = path.join(dir, 'reidentify');
  fs.mkdirSync(reid, { recursive: true });
  fs.copyFileSync(path.join(dir, 'features.f32'), path.join(reid, 'features.f32'));
  fs.copyFileSync(path.join(dir, 'masks.u8.gz'), path.join(reid, 'masks.u8.gz'));
  fs.writeFileSync(path.join(reid, 'meta.json'), `${JSON.stringify({ ...meta, reidentify: -0.05 }, null, 2)}\n`);
  const pairs = fmeasurePairs(f.width, f.height);
  const pairBytes = new Uint8Array(pairs.length * 2 * f.width * f.height);
  for (const [i, m] of pairs.flat().entries()) pairBytes.set(m, i * m.length);
  fs.writeFileSync(path.join(dir, 'fmeasure', 'pairs.u8.gz'), zlib.gzipSync(pairBytes, { level: 9 }));
  fs.writeFileSync(
    path.join(dir, 'fmeasure', 'meta.json'),
    `${JSON.stringify({ width: f.width, height: f.height, pairs: pairs.length }, null, 2)}\n`,
  );
}

if (process.argv[1]?.endsWith('propagate-fixture.ts')) main();
