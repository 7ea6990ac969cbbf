/**
 * Synthetic videos for mask propagation: a few textured objects over the walking tour's street background (the
 * camera panning slowly) that move along looping paths, grow and shrink, leave the frame and come back, and pass in
 * front of one another (fixed depth order). Every frame comes with its instance-id mask (0 = background, objects
 * 1..n). Deterministic by seed; the bench keeps tuning seeds and held-out seeds apart.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { findBinaries } from '../../native/media/ffmpeg.js';
import { background, inside, objectColour, rng } from '../../native/segment/synth-tour.js';
import { instancePng } from '../../native/track/propagate-job.js';

export interface PropagationScene {
  width: number;
  height: number;
  frames: number;
  objects: number;
  seed: number;
  /** RGB24 frames and instance-id masks, frame after frame. */
  rgb: Uint8Array[];
  masks: Uint8Array[];
}

interface Mover {
  id: number;
  category: number;
  hue: [number, number, number];
  phase: number;
  /** Centre path: c + a·sin(2π f t + φ) per axis (fractions of the frame), radius r0·(1 + s·sin(2π g t + ψ)). */
  cx: number;
  cy: number;
  ax: number;
  ay: number;
  fx: number;
  fy: number;
  px: number;
  py: number;
  r0: number;
  s: number;
  g: number;
  ps: number;
  depth: number;
}

export interface SceneOptions {
  width?: number;
  height?: number;
  frames?: number;
  objects?: number;
  /** Objects 1 and 2 look alike (default true). */
  lookalikes?: boolean;
  /** Unannotated look-alikes of the objects (default 1). */
  distractors?: number;
}

/**
 * Tuning seeds (used while choosing the bench's settings) and held-out seeds (the reported figures). The first
 * held-out set (101-103) has been inspected per frame (bench/README.md: seed 103), so it is no longer unseen; the
 * second (104-111, the next seeds of the same generator, declared before any of them was run) is the one reported.
 */
export const TUNING_SEEDS = [11, 12, 13, 14] as const;
export const HELD_OUT_SEEDS_INSPECTED = [101, 102, 103] as const;
export const HELD_OUT_SEEDS = [104, 105, 106, 107, 108, 109, 110, 111] as const;

const HUES: [number, number, number][] = [
  [230, 60, 50],
  [50, 110, 230],
  [240, 200, 40],
  [60, 200, 90],
  [200, 80, 220],
];

export function renderScene(seed: number, o: SceneOptions = {}): PropagationScene {
  const width = o.width ?? 320;
  const height = o.height ?? 180;
  const frames = o.frames ?? 40;
  const count = o.objects ?? 3;
  const rand = rng(seed);
  const movers: Mover[] = [];
  const mover = (i: number, id: number, look: number): Mover => ({
    id,
    category: 1 + (look % 3),
    hue: HUES[(look + seed) % HUES.length] as [number, number, number],
    phase: look * 1.3,
    cx: 0.3 + 0.4 * rand(),
    cy: 0.35 + 0.3 * rand(),
    // The first object's path reaches past the frame's edge: it leaves and comes back.
    ax: i === 0 ? 0.75 + 0.1 * rand() : 0.25 + 0.2 * rand(),
    ay: 0.1 + 0.2 * rand(),
    fx: (0.7 + 0.6 * rand()) / frames,
    fy: (0.5 + rand()) / frames,
    px: rand() * 6.283,
    py: rand() * 6.283,
    r0: height * (0.13 + 0.06 * rand()),
    s: 0.35 + 0.2 * rand(),
    g: (0.8 + 0.8 * rand()) / frames,
    ps: rand() * 6.283,
    depth: rand(),
  });
  // Objects 1 and 2 look alike (same shape, colour and texture), as people in a crowd or animals of a herd: only
  // where they are tells them apart.
  for (let i = 0; i < count; i++) movers.push(mover(i, i + 1, i === 1 && o.lookalikes !== false ? 0 : i));
  // Unannotated look-alikes of the objects (id 0: background): a bank of the first frame's patches cannot tell them
  // from the objects, propagation can (they are elsewhere).
  for (let d = 0; d < (o.distractors ?? 1); d++) movers.push(mover(count + d, 0, count - 1 - d));
  // Nearest last: a later mover is drawn over an earlier one.
  const order = [...movers].sort((a, b) => a.depth - b.depth);
  const rgb: Uint8Array[] = [];
  const masks: Uint8Array[] = [];
  for (let t = 0; t < frames; t++) {
    const img = new Uint8Array(width * height * 3);
    const mask = new Uint8Array(width * height);
    const pan = t * 1.5;
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const c = background(x + pan, y + height * 0.2, height * 1.4, seed);
        img.set(
          c.map((v) => Math.max(0, Math.min(255, Math.round(v)))),
          (y * width + x) * 3,
        );
      }
    }
    for (const m of order) {
      const ox = width * (m.cx + m.ax * Math.sin(6.283 * m.fx * t + m.px));
      const oy = height * (m.cy + m.ay * Math.sin(6.283 * m.fy * t + m.py));
      const r = m.r0 * (1 + m.s * Math.sin(6.283 * m.g * t + m.ps));
      const x0 = Math.max(0, Math.floor(ox - 1.4 * r));
      const x1 = Math.min(width - 1, Math.ceil(ox + 1.4 * r));
      const y0 = Math.max(0, Math.floor(oy - 1.4 * r));
      const y1 = Math.min(height - 1, Math.ceil(oy + 1.4 * r));
      for (let y = y0; y <= y1; y++) {
        for (let x = x0; x <= x1; x++) {
          const dx = x - ox;
          const dy = y - oy;
          if (!inside(m.category, dx, dy, r)) continue;
          // Texture in the object's own frame, scaled with it (a growing object keeps its pattern).
          const c = objectColour(m, (dx * m.r0) / r, (dy * m.r0) / r);
          img.set(
            c.map((v) => Math.max(0, Math.min(255, Math.round(v)))),
            (y * width + x) * 3,
          );
          mask[y * width + x] = m.id;
        }
      }
    }
    rgb.push(img);
    masks.push(mask);
  }
  return { width, height, frames, objects: count, seed, rgb, masks };
}

/**
 * Hand-made patch features of a frame (no encoder): per patch of a gridH × gridW grid, the mean colour of each cell
 * of a 2×2 split and a coarse texture term (mean absolute gradient) and a small hashed noise term, dim 15. For parity tests and fixtures: both
 * implementations read exactly these floats.
 */
export function colourFeatures(
  rgb: Uint8Array,
  width: number,
  height: number,
  gridH: number,
  gridW: number,
): Float32Array {
  const dim = 15;
  const out = new Float32Array(gridH * gridW * dim);
  for (let gy = 0; gy < gridH; gy++) {
    const y0 = Math.floor((gy * height) / gridH);
    const y1 = Math.floor(((gy + 1) * height) / gridH);
    for (let gx = 0; gx < gridW; gx++) {
      const x0 = Math.floor((gx * width) / gridW);
      const x1 = Math.floor(((gx + 1) * width) / gridW);
      const f = out.subarray((gy * gridW + gx) * dim, (gy * gridW + gx + 1) * dim);
      const ym = (y0 + y1) / 2;
      const xm = (x0 + x1) / 2;
      const cnt = [0, 0, 0, 0];
      let grad = 0;
      let gn = 0;
      let sum = 0;
      for (let y = y0; y < y1; y++) {
        for (let x = x0; x < x1; x++) {
          const q = (y >= ym ? 2 : 0) + (x >= xm ? 1 : 0);
          const p = (y * width + x) * 3;
          for (let c = 0; c < 3; c++) f[q * 3 + c] = (f[q * 3 + c] as number) + (rgb[p + c] as number) / 255;
          sum += ((rgb[p] as number) * (x + 1) + (rgb[p + 2] as number) * (y + 1)) % 9973;
          cnt[q] = (cnt[q] as number) + 1;
          if (x + 1 < x1) {
            for (let c = 0; c < 3; c++) grad += Math.abs((rgb[p + 3 + c] as number) - (rgb[p + c] as number)) / 255;
            gn++;
          }
        }
      }
      for (let q = 0; q < 4; q++)
        for (let c = 0; c < 3; c++) f[q * 3 + c] = (f[q * 3 + c] as number) / Math.max(1, cnt[q] as number) - 0.5;
      const g = gn ? grad / gn : 0;
      f[12] = g;
      f[13] = g * g;
      // A little deterministic noise (a hash of the patch's pixels and place), as encoders' features have: identical
      // patches of look-alike objects would otherwise tie exactly, and ties break by float rounding.
      f[14] = 0.1 + 0.05 * (((sum * 2654435761 + gy * 40503 + gx * 977) >>> 0) / 4294967296);
    }
  }
  return out;
}

/** Pipes raw RGB frames through ffmpeg with the given output arguments. */
function encodeFrames(frames: readonly Uint8Array[], width: number, height: number, output: string[]): Promise<void> {
  const input = `-v error -y -f rawvideo -pix_fmt rgb24 -s ${width}x${height} -r 10 -i pipe:0`.split(' ');
  const ff = spawn(findBinaries().ffmpeg.path, [...input, ...output], { stdio: ['pipe', 'ignore', 'inherit'] });
  const done = new Promise<void>((resolve, reject) => {
    ff.on('error', reject);
    ff.on('close', (c) => (c === 0 ? resolve() : reject(new Error(`ffmpeg exited ${c}`))));
  });
  for (const f of frames) ff.stdin.write(f);
  ff.stdin.end();
  return done;
}

/** The scene as an H.264 video (10 fps, every frame a keyframe-friendly GOP of 10) with its masks beside it. */
export async function writeSceneVideo(file: string, scene: PropagationScene): Promise<string> {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  await encodeFrames(scene.rgb, scene.width, scene.height, [
    '-c:v',
    'libx264',
    '-preset',
    'medium',
    '-crf',
    '14',
    '-g',
    '10',
    '-pix_fmt',
    'yuv420p',
    file,
  ]);
  return file;
}

/**
 * Scenes in the DAVIS layout: JPEGImages/480p/<name>/00000.jpg … (JPEG, quality 2) and Annotations/480p/<name>/
 * 00000.png … (palette PNGs, DAVIS's colours, index = object), as the DAVIS benchmark ships them.
 */
export async function writeDavisFolder(
  root: string,
  scenes: readonly { name: string; scene: PropagationScene }[],
): Promise<string> {
  for (const { name, scene } of scenes) {
    const jpeg = path.join(root, 'JPEGImages', '480p', name);
    const ann = path.join(root, 'Annotations', '480p', name);
    fs.mkdirSync(jpeg, { recursive: true });
    fs.mkdirSync(ann, { recursive: true });
    await encodeFrames(scene.rgb, scene.width, scene.height, [
      '-q:v',
      '2',
      '-start_number',
      '0',
      path.join(jpeg, '%05d.jpg'),
    ]);
    scene.masks.forEach((m, i) => {
      fs.writeFileSync(path.join(ann, `${String(i).padStart(5, '0')}.png`), instancePng(m, scene.width, scene.height));
    });
  }
  return root;
}
