/**
 * Attention previews during training: the teacher's last-block CLS attention on fixed sample frames, every N steps,
 * as small PNGs (the first three heads as red, green and blue, each stretched from its minimum to its maximum; with fewer heads
 * the last repeats) in the
 * run's checkpoint folder: previews/step-000050-f1.png.
 */
import fs from 'node:fs';
import path from 'node:path';
import { encodePng } from '../media/png.js';
import type { RgbLike } from '../models/preprocess.js';
import { preprocessInto } from '../models/preprocess.js';
import type { ViTConfig } from '../models/vit.js';
import type { TeacherAttention, TeacherWeights } from './dora-clips.js';

const CELL = 8;

export function previewFile(dir: string, step: number, frame: number): string {
  return path.join(dir, 'previews', `step-${String(step).padStart(6, '0')}-f${frame}.png`);
}

/** The grid × grid CLS attention of heads 0..2 as an RGB image, each cell CELL px. */
export function attentionImage(
  attention: Float32Array,
  heads: number,
  grid: number,
): { data: Uint8Array; size: number } {
  const n = grid * grid;
  const size = grid * CELL;
  const out = new Uint8Array(size * size * 3);
  for (let c = 0; c < 3; c++) {
    const h = Math.min(c, heads - 1);
    let min = Number.POSITIVE_INFINITY;
    let max = Number.NEGATIVE_INFINITY;
    for (let i = 0; i < n; i++) {
      min = Math.min(min, attention[h * n + i] as number);
      max = Math.max(max, attention[h * n + i] as number);
    }
    for (let i = 0; i < n; i++) {
      const v = Math.round((255 * ((attention[h * n + i] as number) - min)) / (max - min || 1));
      const gx = i % grid;
      const gy = (i - gx) / grid;
      for (let y = 0; y < CELL; y++)
        for (let x = 0; x < CELL; x++) out[((gy * CELL + y) * size + gx * CELL + x) * 3 + c] = v;
    }
  }
  return { data: out, size };
}

/** Writes the previews of `frames` for the teacher at `step`. */
export async function writePreviews(
  dir: string,
  step: number,
  frames: readonly RgbLike[],
  vit: ViTConfig,
  size: number,
  attention: TeacherAttention,
  teacher: TeacherWeights,
  shapes: ReadonlyMap<string, number[]>,
): Promise<void> {
  fs.mkdirSync(path.join(dir, 'previews'), { recursive: true });
  const plane = 3 * size * size;
  const views = new Float32Array(frames.length * plane);
  frames.forEach((f, i) => {
    preprocessInto(f, { size, mode: 'stretch', filter: 'bilinear', mean: vit.mean, std: vit.std }, views, i * plane);
  });
  const att = await attention.run(views, frames.length, teacher, shapes);
  const grid = size / vit.patchSize;
  for (let i = 0; i < frames.length; i++) {
    const a = att.attention.subarray(i * vit.heads * att.n, (i + 1) * vit.heads * att.n);
    const img = attentionImage(a, vit.heads, grid);
    const file = previewFile(dir, step, i);
    fs.writeFileSync(`${file}.tmp`, encodePng(img.data, img.size, img.size));
    fs.renameSync(`${file}.tmp`, file);
  }
}

/** The previews of a run, oldest first (of the latest `lastSteps` steps when given): step, frame, PNG data URL. */
export function listPreviews(dir: string, lastSteps?: number): { step: number; frame: number; png: string }[] {
  const folder = path.join(dir, 'previews');
  if (!fs.existsSync(folder)) return [];
  const found = fs
    .readdirSync(folder)
    .map((name) => /^step-(\d+)-f(\d+)\.png$/.exec(name))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ name: m[0], step: Number(m[1]), frame: Number(m[2]) }))
    .sort((a, b) => a.step - b.step || a.frame - b.frame);
  const steps = [...new Set(found.map((p) => p.step))];
  const from = lastSteps === undefined ? Number.NEGATIVE_INFINITY : (steps[steps.length - lastSteps] ?? steps[0] ?? 0);
  // Only the kept files are read (every step of the Train view asks again).
  return found
    .filter((p) => p.step >= from)
    .map(({ name, step, frame }) => ({
      step,
      frame,
      png: `data:image/png;base64,${fs.readFileSync(path.join(folder, name)).toString('base64')}`,
    }));
}
