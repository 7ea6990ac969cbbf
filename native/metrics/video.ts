/**
 * Video object segmentation metrics as the DAVIS benchmark defines them: J (region similarity, the IoU of an
 * object's predicted and true masks, 1 when both are empty) and F (the boundary F-measure: one-pixel boundaries of
 * both masks matched within a tolerance of `boundTh` × the image diagonal, 0.008 by default). J&F = (J + F) / 2,
 * each averaged over an object's frames first, then over objects (the toolkit's `J&F-Mean`).
 */

/** DAVIS's tolerance: boundaries match within ceil(0.008 × image diagonal) pixels. */
export const BOUNDARY_TOLERANCE = 0.008;

/** Region similarity of binary masks (non-zero = object); 1 when both are empty (DAVIS `db_eval_iou`). */
export function regionJ(pred: Uint8Array, truth: Uint8Array): number {
  if (pred.length !== truth.length) throw new Error('masks of different sizes');
  let inter = 0;
  let union = 0;
  for (let i = 0; i < pred.length; i++) {
    const p = pred[i] !== 0;
    const t = truth[i] !== 0;
    if (p && t) inter++;
    if (p || t) union++;
  }
  return union === 0 ? 1 : inter / union;
}

/**
 * One-pixel-wide boundary map of a binary mask: a pixel is on the boundary when it differs from its east, south or
 * south-east neighbour (the last row compares east only, the last column south only, the corner is never one) —
 * the definition of `_seg2bmap` (D. Martin, 2003) that DAVIS uses.
 */
export function boundaryMap(mask: Uint8Array, width: number, height: number): Uint8Array {
  const b = new Uint8Array(width * height);
  const at = (x: number, y: number) => (mask[y * width + x] as number) !== 0;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const s = at(x, y);
      const lastRow = y === height - 1;
      const lastCol = x === width - 1;
      let on: boolean;
      if (lastRow && lastCol) on = false;
      else if (lastRow) on = s !== at(x + 1, y);
      else if (lastCol) on = s !== at(x, y + 1);
      else on = s !== at(x + 1, y) || s !== at(x, y + 1) || s !== at(x + 1, y + 1);
      if (on) b[y * width + x] = 1;
    }
  }
  return b;
}

/**
 * Dilation of a binary map by a disk, pixels outside the image ignored. Row runs: for each row offset dy the disk
 * spans [-w(dy), w(dy)], so a boundary pixel marks a horizontal run of each row it reaches (O(pixels · r)).
 */
function dilate(map: Uint8Array, width: number, height: number, r: number): Uint8Array {
  const out = new Uint8Array(width * height);
  const half: number[] = [];
  for (let dy = -r; dy <= r; dy++) half.push(Math.floor(Math.sqrt(r * r - dy * dy)));
  // Per row, a difference array of the covered runs, then a prefix sum.
  const diff = new Int32Array(width + 1);
  for (let y = 0; y < height; y++) {
    diff.fill(0);
    let any = false;
    for (let dy = -r; dy <= r; dy++) {
      const sy = y + dy;
      if (sy < 0 || sy >= height) continue;
      const w = half[dy + r] as number;
      const row = sy * width;
      for (let x = 0; x < width; x++) {
        if (map[row + x] === 0) continue;
        any = true;
        diff[Math.max(0, x - w)] = (diff[Math.max(0, x - w)] as number) + 1;
        diff[Math.min(width, x + w + 1)] = (diff[Math.min(width, x + w + 1)] as number) - 1;
      }
    }
    if (!any) continue;
    let run = 0;
    for (let x = 0; x < width; x++) {
      run += diff[x] as number;
      if (run > 0) out[y * width + x] = 1;
    }
  }
  return out;
}

/** The tolerance in pixels for a width × height image: ceil(boundTh × diagonal), or boundTh itself when ≥ 1. */
export function boundaryTolerance(width: number, height: number, boundTh = BOUNDARY_TOLERANCE): number {
  return boundTh >= 1 ? boundTh : Math.ceil(boundTh * Math.hypot(width, height));
}

/**
 * Boundary F-measure of binary masks (DAVIS `f_measure`): precision = predicted boundary pixels within the
 * tolerance of a true boundary pixel, recall the converse, F their harmonic mean. With no predicted boundary and a
 * true one, precision 1 and recall 0 (F 0); the converse F 0 too; no boundary in either: F 1.
 */
export function boundaryF(
  pred: Uint8Array,
  truth: Uint8Array,
  width: number,
  height: number,
  boundTh = BOUNDARY_TOLERANCE,
): number {
  if (pred.length !== width * height || truth.length !== width * height) throw new Error('masks of different sizes');
  const r = boundaryTolerance(width, height, boundTh);
  const fb = boundaryMap(pred, width, height);
  const gb = boundaryMap(truth, width, height);
  let nFg = 0;
  let nGt = 0;
  for (let i = 0; i < fb.length; i++) {
    nFg += fb[i] as number;
    nGt += gb[i] as number;
  }
  if (nFg === 0 && nGt === 0) return 1;
  if (nFg === 0 || nGt === 0) return 0;
  const fd = dilate(fb, width, height, r);
  const gd = dilate(gb, width, height, r);
  let fgMatch = 0;
  let gtMatch = 0;
  for (let i = 0; i < fb.length; i++) {
    if (fb[i] && gd[i]) fgMatch++;
    if (gb[i] && fd[i]) gtMatch++;
  }
  const precision = fgMatch / nFg;
  const recall = gtMatch / nGt;
  return precision + recall === 0 ? 0 : (2 * precision * recall) / (precision + recall);
}

/** The binary mask of one object in an instance-id mask. */
export function objectMask(ids: Uint8Array, object: number): Uint8Array {
  const out = new Uint8Array(ids.length);
  for (let i = 0; i < ids.length; i++) if (ids[i] === object) out[i] = 1;
  return out;
}

export interface ObjectScore {
  object: number;
  J: number;
  F: number;
  JF: number;
  frames: number;
}

export interface VideoScore {
  /** Means over objects of their per-frame means. */
  J: number;
  F: number;
  JF: number;
  objects: ObjectScore[];
}

/**
 * J and F per object over the frames of a video (instance-id masks: 0 background, 1..n objects, 255 void and
 * ignored as DAVIS does, i.e. read as background). The objects are 1..`objects` (DAVIS: the largest id of the
 * first frame); an object missing from both masks of a frame scores J = F = 1 there.
 */
export class VideoScorer {
  private readonly j: number[][];
  private readonly f: number[][];

  constructor(
    readonly objects: number,
    readonly boundTh = BOUNDARY_TOLERANCE,
  ) {
    this.j = Array.from({ length: objects }, () => []);
    this.f = Array.from({ length: objects }, () => []);
  }

  /** Scores one frame: predicted and true instance ids, width × height. */
  add(pred: Uint8Array, truth: Uint8Array, width: number, height: number): void {
    for (let o = 1; o <= this.objects; o++) {
      const p = objectMask(pred, o);
      const t = objectMask(truth, o);
      (this.j[o - 1] as number[]).push(regionJ(p, t));
      (this.f[o - 1] as number[]).push(boundaryF(p, t, width, height, this.boundTh));
    }
  }

  get frames(): number {
    return this.j[0]?.length ?? 0;
  }

  score(): VideoScore {
    const mean = (v: number[]) => (v.length ? v.reduce((a, b) => a + b, 0) / v.length : 0);
    const objects = this.j.map((js, i) => {
      const J = mean(js);
      const F = mean(this.f[i] as number[]);
      return { object: i + 1, J, F, JF: (J + F) / 2, frames: js.length };
    });
    return summarise(objects);
  }
}

/** Means over objects (of any number of videos, as DAVIS's J&F-Mean over all objects of all sequences). */
export function summarise(objects: ObjectScore[]): VideoScore {
  const mean = (k: 'J' | 'F') => (objects.length ? objects.reduce((a, o) => a + o[k], 0) / objects.length : 0);
  const J = mean('J');
  const F = mean('F');
  return { J, F, JF: (J + F) / 2, objects };
}

/**
 * DAVIS's semi-supervised protocol for one sequence: every frame but the first (whose masks were given) and the
 * last is scored, for objects 1..`objects` (the largest id of the first truth mask when not given).
 */
export function scoreSequence(
  pred: readonly Uint8Array[],
  truth: readonly Uint8Array[],
  width: number,
  height: number,
  objects?: number,
): VideoScore {
  if (pred.length !== truth.length) throw new Error('prediction and truth have different frame counts');
  const count = objects ?? maxId(truth[0] ?? new Uint8Array(0));
  const scorer = new VideoScorer(count);
  for (let t = 1; t < truth.length - 1; t++) scorer.add(pred[t] as Uint8Array, truth[t] as Uint8Array, width, height);
  return scorer.score();
}

/** The largest object id of an instance mask (255, DAVIS's void, not counted). */
export function maxId(ids: Uint8Array): number {
  let m = 0;
  for (const v of ids) if (v !== 255 && v > m) m = v;
  return m;
}
