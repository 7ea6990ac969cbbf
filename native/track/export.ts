/** Track exports: MOT Challenge CSV (boxes) and per-frame PNG instance masks at the frame's resolution. */
import fs from 'node:fs';
import path from 'node:path';
import { encodePng } from '../media/png.js';

interface BoxRow {
  object: number;
  frameIdx: number;
  box: [number, number, number, number];
  area: number;
}

/**
 * MOT Challenge CSV: frame (1-based), id, x, y, w, h, confidence, -1, -1, -1; empty masks are left out. The whole
 * file, one line per box each ending in a newline: the Player's download and `track.exportMot` write exactly this.
 */
export function motCsv(boxes: readonly BoxRow[]): string {
  return boxes
    .filter((b) => b.area > 0)
    .map((b) => `${[b.frameIdx + 1, b.object, ...b.box.map((v) => v.toFixed(1)), 1, -1, -1, -1].join(',')}\n`)
    .join('');
}

/**
 * One frame's instance mask: each pixel holds the id of the object whose grid cell covers it (0 = none). The
 * grid (gridH rows × gridW columns, the frame's aspect kept or a square for older runs) spans the whole frame, so
 * cell (r, c) covers [c·W/gridW, (c+1)·W/gridW) × [r·H/gridH, (r+1)·H/gridH). Where masks overlap the higher id wins.
 */
export function instanceMask(
  objects: readonly { object: number; mask: Uint8Array }[],
  grid: { gridH: number; gridW: number },
  width: number,
  height: number,
): Uint8Array {
  const { gridH, gridW } = grid;
  const cells = new Uint8Array(gridH * gridW);
  for (const o of [...objects].sort((a, b) => a.object - b.object)) {
    if (o.mask.length !== gridH * gridW) throw new Error(`Mask of object ${o.object} is not ${gridH}×${gridW}.`);
    if (o.object < 1 || o.object > 255) throw new Error(`Object id ${o.object} does not fit an 8-bit mask.`);
    for (let i = 0; i < o.mask.length; i++) if (o.mask[i]) cells[i] = o.object;
  }
  const out = new Uint8Array(width * height);
  const colOf = Int32Array.from({ length: width }, (_, x) => Math.min(gridW - 1, Math.floor((x * gridW) / width)));
  for (let y = 0; y < height; y++) {
    const row = Math.min(gridH - 1, Math.floor((y * gridH) / height)) * gridW;
    const base = y * width;
    for (let x = 0; x < width; x++) out[base + x] = cells[row + (colOf[x] as number)] as number;
  }
  return out;
}

/**
 * Writes `frame_000001.png` … (1-based like MOT) into `dir`, one 8-bit instance mask per tracked frame; each file
 * is written to a temporary name and renamed so a failed export never leaves a half-written PNG.
 */
export function writeInstanceMasks(
  dir: string,
  boxes: readonly (BoxRow & { mask: Uint8Array })[],
  grid: { gridH: number; gridW: number },
  width: number,
  height: number,
): { frames: number } {
  fs.mkdirSync(dir, { recursive: true });
  const byFrame = new Map<number, (BoxRow & { mask: Uint8Array })[]>();
  for (const b of boxes) {
    const list = byFrame.get(b.frameIdx) ?? [];
    list.push(b);
    byFrame.set(b.frameIdx, list);
  }
  for (const [frameIdx, objects] of [...byFrame].sort((a, b) => a[0] - b[0])) {
    const file = path.join(dir, `frame_${String(frameIdx + 1).padStart(6, '0')}.png`);
    // A link planted at the temporary name is removed, never followed ('wx' creates a new file or fails).
    fs.rmSync(`${file}.tmp`, { force: true });
    fs.writeFileSync(`${file}.tmp`, encodePng(instanceMask(objects, grid, width, height), width, height, 6, 1), {
      flag: 'wx',
    });
    fs.renameSync(`${file}.tmp`, file);
  }
  return { frames: byFrame.size };
}
