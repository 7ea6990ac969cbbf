/**
 * Label maps and patch labels: a patch's label is the class histogram of the pixels it covers (ignore label
 * excluded), as in the Hummingbird evaluation.
 */
export const IGNORE = 255;

/** A patch grid: rows and columns (a frame's, from its feature run; `frameGrid` in features/). */
export interface PatchGrid {
  gridH: number;
  gridW: number;
}

/** Soft labels [gridH*gridW, classes] of a label map (W x H, one class id per pixel) seen through the grid. */
export function patchLabels(
  labels: Uint8Array,
  width: number,
  height: number,
  grid: PatchGrid,
  classes: number,
): Float32Array {
  const { gridH, gridW } = grid;
  const out = new Float32Array(gridH * gridW * classes);
  for (let gy = 0; gy < gridH; gy++) {
    const y0 = Math.floor((gy * height) / gridH);
    const y1 = Math.floor(((gy + 1) * height) / gridH);
    for (let gx = 0; gx < gridW; gx++) {
      const x0 = Math.floor((gx * width) / gridW);
      const x1 = Math.floor(((gx + 1) * width) / gridW);
      const base = (gy * gridW + gx) * classes;
      let n = 0;
      for (let y = y0; y < y1; y++) {
        for (let x = x0; x < x1; x++) {
          const c = labels[y * width + x] as number;
          if (c === IGNORE || c >= classes) continue;
          out[base + c] = (out[base + c] as number) + 1;
          n++;
        }
      }
      if (n > 0) for (let c = 0; c < classes; c++) out[base + c] = (out[base + c] as number) / n;
    }
  }
  return out;
}

/**
 * Per-pixel argmax of patch scores [gridH*gridW, C], upsampled bilinearly (half-pixel centres) to width x height
 * (the source frame's resolution, whatever the grid's shape).
 */
export function upsampleArgmax(
  scores: Float32Array,
  grid: PatchGrid,
  classes: number,
  width: number,
  height: number,
): Uint8Array {
  const { gridH, gridW } = grid;
  const out = new Uint8Array(width * height);
  const acc = new Float32Array(classes);
  for (let y = 0; y < height; y++) {
    const sy = Math.min(Math.max(((y + 0.5) * gridH) / height - 0.5, 0), gridH - 1);
    const y0 = Math.floor(sy);
    const y1 = Math.min(y0 + 1, gridH - 1);
    const fy = sy - y0;
    for (let x = 0; x < width; x++) {
      const sx = Math.min(Math.max(((x + 0.5) * gridW) / width - 0.5, 0), gridW - 1);
      const x0 = Math.floor(sx);
      const x1 = Math.min(x0 + 1, gridW - 1);
      const fx = sx - x0;
      const w00 = (1 - fx) * (1 - fy);
      const w01 = fx * (1 - fy);
      const w10 = (1 - fx) * fy;
      const w11 = fx * fy;
      let best = 0;
      let bestV = Number.NEGATIVE_INFINITY;
      for (let c = 0; c < classes; c++) {
        const v =
          w00 * (scores[(y0 * gridW + x0) * classes + c] as number) +
          w01 * (scores[(y0 * gridW + x1) * classes + c] as number) +
          w10 * (scores[(y1 * gridW + x0) * classes + c] as number) +
          w11 * (scores[(y1 * gridW + x1) * classes + c] as number);
        acc[c] = v;
        if (v > bestV) {
          bestV = v;
          best = c;
        }
      }
      out[y * width + x] = best;
    }
  }
  return out;
}

/** Confusion counts accumulated over frames; IoU per class and their mean over classes that occur. */
export class IoUMeter {
  readonly intersection: Float64Array;
  readonly union: Float64Array;

  constructor(readonly classes: number) {
    this.intersection = new Float64Array(classes);
    this.union = new Float64Array(classes);
  }

  add(pred: Uint8Array, truth: Uint8Array): void {
    const C = this.classes;
    const tp = new Float64Array(C);
    const predN = new Float64Array(C);
    const truthN = new Float64Array(C);
    for (let i = 0; i < truth.length; i++) {
      const t = truth[i] as number;
      if (t === IGNORE || t >= C) continue;
      const p = pred[i] as number;
      truthN[t] = (truthN[t] as number) + 1;
      if (p < C) predN[p] = (predN[p] as number) + 1;
      if (p === t) tp[t] = (tp[t] as number) + 1;
    }
    for (let c = 0; c < C; c++) {
      this.intersection[c] = (this.intersection[c] as number) + (tp[c] as number);
      this.union[c] = (this.union[c] as number) + (predN[c] as number) + (truthN[c] as number) - (tp[c] as number);
    }
  }

  perClass(): (number | null)[] {
    return [...this.intersection].map((i, c) => ((this.union[c] as number) > 0 ? i / (this.union[c] as number) : null));
  }

  mean(): number {
    const v = this.perClass().filter((x): x is number => x !== null);
    return v.length ? v.reduce((a, b) => a + b, 0) / v.length : 0;
  }
}
