/**
 * NeCo's data per step, on the host: multi-crop views with their absolute boxes (NeCoTransforms: no flip, every crop
 * overlapping the global crops by at least 1% of the frame, globals by 2%), the relative box of every crop pair
 * (calculate_bboxes) turned into RoI-align matrices, and the queue of teacher patch embeddings (update_queue and the
 * reference draw of knn_loss), with the random choices made as a plan first so a test can inject the official run's.
 */

import { sampleCropBox } from '../base/crop-box.js';
import type { Rng } from '../base/rng.js';
import { roiAlignMatrix } from '../graph/roi-align.js';
import type { NecoPair } from '../models/neco.js';
import type { RgbLike } from '../models/preprocess.js';
import { colourJitter, cropResize, gaussianBlur, type JitterOptions, normalizeInto, unitFloats } from './augment.js';

/** NeCoTransforms with jitter_strength 1: ColorJitter(0.8, 0.8, 0.8, 0.2) with p 0.8. */
export const NECO_JITTER: JitterOptions = { p: 0.8, brightness: 0.8, contrast: 0.8, saturation: 0.8, hue: 0.2 };

export type Box = [number, number, number, number];

/** The first k of a uniformly random permutation of 0..n-1 (torch.randperm(n)[:k]). */
export function randpermPrefix(n: number, k: number, rng: Rng): number[] {
  // The partial Fisher-Yates shuffle on a typed array (NeCo draws 10 of these over a queue of 8192 per step).
  const a = new Int32Array(n);
  for (let i = 0; i < n; i++) a[i] = i;
  const m = Math.min(k, n);
  for (let i = 0; i < m; i++) {
    const j = i + rng.int(n - i);
    const t = a[i] as number;
    a[i] = a[j] as number;
    a[j] = t;
  }
  return Array.from(a.subarray(0, m));
}

export interface CropSpec {
  size: number;
  scale: [number, number];
  count: number;
}

function intersection(a: Box, b: Box): number {
  const w = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0]));
  const h = Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
  return w * h;
}

/**
 * Absolute crop boxes [x1, y1, x2, y2] for the global then local crops of one frame, resampled (as the official
 * loop) until each overlaps every earlier global crop by more than 1% of the frame (2% between globals). After 100
 * tries the crop is centred on the first global crop's centre instead, so a step never hangs.
 */
export function sampleNecoBoxes(width: number, height: number, specs: readonly CropSpec[], rng: Rng): Box[] {
  const boxes: Box[] = [];
  const globals = specs[0]?.count ?? 0;
  const minInter = Math.floor(width * height * 0.01);
  for (const spec of specs)
    for (let c = 0; c < spec.count; c++) {
      const i = boxes.length;
      const need = i < globals ? 2 * minInter : minInter;
      let box: Box | null = null;
      for (let t = 0; t < 100 && !box; t++) {
        const [x, y, w, h] = sampleCropBox(width, height, { scale: spec.scale }, rng);
        const cand: Box = [x, y, x + w, y + h];
        if (boxes.slice(0, Math.min(i, globals)).every((g) => intersection(cand, g) > need)) box = cand;
      }
      if (!box) {
        const [, , w, h] = sampleCropBox(width, height, { scale: spec.scale }, rng);
        const g = boxes[0] as Box;
        const cx = Math.min(Math.max(Math.round((g[0] + g[2] - w) / 2), 0), width - w);
        const cy = Math.min(Math.max(Math.round((g[1] + g[3] - h) / 2), 0), height - h);
        box = [cx, cy, cx + w, cy + h];
      }
      boxes.push(box);
    }
  return boxes;
}

/**
 * calculate_bboxes: for global crop g and crop v, their intersection in g's output pixels (gc[g][v]) and in v's
 * (all[v][g]), computed in float32 as the official code does with torch tensors.
 */
export function relativeBoxes(
  crops: readonly Box[],
  sizes: readonly number[],
  globals: number,
): { gc: Box[][]; all: Box[][] } {
  const f = Math.fround;
  const scaled = (lt: [number, number], rb: [number, number], k: number): Box => {
    const c = crops[k] as Box;
    const s = sizes[k] as number;
    const w = f(c[2] - c[0]);
    const h = f(c[3] - c[1]);
    return [
      f(s * f(f(lt[0] - c[0]) / w)),
      f(s * f(f(lt[1] - c[1]) / h)),
      f(s * f(f(rb[0] - c[0]) / w)),
      f(s * f(f(rb[1] - c[1]) / h)),
    ];
  };
  const gc: Box[][] = [];
  const all: Box[][] = crops.map(() => []);
  for (let g = 0; g < globals; g++) {
    gc.push([]);
    for (let v = 0; v < crops.length; v++) {
      const a = crops[g] as Box;
      const b = crops[v] as Box;
      const lt: [number, number] = [Math.max(a[0], b[0]), Math.max(a[1], b[1])];
      const rb: [number, number] = [Math.min(a[2], b[2]), Math.min(a[3], b[3])];
      (gc[g] as Box[]).push(scaled(lt, rb, g));
      (all[v] as Box[])[g] = scaled(lt, rb, v);
    }
  }
  return { gc, all };
}

export interface RoiBatch {
  roiTeacher: Float32Array;
  roiStudentGlobal: Float32Array;
  roiStudentLocal: Float32Array;
}

/**
 * RoI matrices of a batch for the step graph: per pair (official order) and image, the teacher side from the global
 * crop g's grid with gc[g][v], the student side from crop v's grid with all[v][g]; boxes divided by the patch size.
 */
export function roiBatch(
  perImage: readonly { gc: Box[][]; all: Box[][] }[],
  pairs: readonly NecoPair[],
  o: { patch: number; globalGrid: number; localGrid: number; aligned: number },
): RoiBatch {
  const B = perImage.length;
  const A = o.aligned * o.aligned;
  const Ng = o.globalGrid * o.globalGrid;
  const Nl = o.localGrid * o.localGrid;
  const Pg = pairs.filter((p) => !p.local).length;
  const Pl = pairs.length - Pg;
  const out: RoiBatch = {
    roiTeacher: new Float32Array(pairs.length * B * A * Ng),
    roiStudentGlobal: new Float32Array(Pg * B * A * Ng),
    roiStudentLocal: new Float32Array(Pl * B * A * Nl),
  };
  const grid = (box: Box): Box => box.map((x) => Math.fround(x / o.patch)) as Box;
  for (const [i, p] of pairs.entries())
    for (let b = 0; b < B; b++) {
      const img = perImage[b] as { gc: Box[][]; all: Box[][] };
      const t = roiAlignMatrix(grid((img.gc[p.g] as Box[])[p.v] as Box), o.globalGrid, o.globalGrid, {
        out: o.aligned,
      });
      out.roiTeacher.set(t, (i * B + b) * A * Ng);
      const n = p.local ? o.localGrid : o.globalGrid;
      const s = roiAlignMatrix(grid((img.all[p.v] as Box[])[p.g] as Box), n, n, { out: o.aligned });
      (p.local ? out.roiStudentLocal : out.roiStudentGlobal).set(s, (p.slot * B + b) * A * n * n);
    }
  return out;
}

/**
 * One view: the box cropped and resized (bilinear), colour jitter, grayscale (0.2), Gaussian blur (p 0.5,
 * sigma 0.1-2), normalised, written CHW into `out` at `offset`. No flip (NeCo's boxes must stay aligned).
 */
export function necoViewInto(
  img: RgbLike,
  box: Box,
  size: number,
  mean: readonly number[],
  std: readonly number[],
  rng: Rng,
  out: Float32Array,
  offset: number,
): void {
  const px = unitFloats(cropResize(img, [box[0], box[1], box[2] - box[0], box[3] - box[1]], size));
  colourJitter(px, NECO_JITTER, 0.2, rng);
  if (rng.next() < 0.5) gaussianBlur(px, size, size, rng.uniform(0.1, 2));
  normalizeInto(px, mean, std, out, offset);
}

/** The random choices of one step's queue update and reference draw. */
export interface QueuePlan {
  /** Per global crop: which of its B*Ng teacher patches are pushed (randperm(B*Ng)[:k]). */
  push: number[][];
  /** Per pair: queue positions of its B*A references (randperm(Q)[:B*A] % entries after the push). */
  draws: number[][];
}

/**
 * The official queue of teacher patch embeddings, one per global crop ([Q, K], newest first), and how many rows are
 * filled. Each step pushes min(10 B, Q) random teacher patches of each global crop before the references are drawn.
 */
export class NecoQueue {
  readonly rows: Float32Array[];
  entries = 0;

  constructor(
    readonly crops: number,
    readonly size: number,
    readonly dim: number,
  ) {
    this.rows = Array.from({ length: crops }, () => new Float32Array(size * dim));
  }

  pushCount(batch: number, patches: number): number {
    return Math.min(batch * 10, this.size, batch * patches);
  }

  plan(rng: Rng, batch: number, patches: number, pairs: readonly NecoPair[], aligned: number): QueuePlan {
    const k = this.pushCount(batch, patches);
    const push = Array.from({ length: this.crops }, () => randpermPrefix(batch * patches, k, rng));
    const after = Math.min(this.entries + k, this.size);
    const draws = pairs.map(() => randpermPrefix(this.size, batch * aligned, rng).map((j) => j % after));
    return { push, draws };
  }

  /**
   * The step graph's ref_queue and ref_index for a plan, before the push: a drawn position below k is the pushed
   * teacher patch (a row of the graph's own teacher embeddings), one above is an older queue row (copied in).
   */
  references(
    plan: QueuePlan,
    pairs: readonly NecoPair[],
    batch: number,
    patches: number,
  ): { refQueue: Float32Array; refIndex: BigInt64Array } {
    const K = this.dim;
    const k = (plan.push[0] as number[]).length;
    const n = plan.draws.reduce((a, d) => a + d.length, 0);
    const refQueue = new Float32Array(n * K);
    const refIndex = new BigInt64Array(n);
    const teacherRows = this.crops * batch * patches;
    let r = 0;
    for (const [i, p] of pairs.entries())
      for (const pos of plan.draws[i] as number[]) {
        if (pos < k) refIndex[r] = BigInt(p.g * batch * patches + ((plan.push[p.g] as number[])[pos] as number));
        else {
          const q = this.rows[p.g] as Float32Array;
          refQueue.set(q.subarray((pos - k) * K, (pos - k + 1) * K), r * K);
          refIndex[r] = BigInt(teacherRows + r);
        }
        r++;
      }
    return { refQueue, refIndex };
  }

  /** update_queue: shift by k and put the planned teacher patches ([G*B*Ng, K], crop-major) in front. */
  push(plan: QueuePlan, teacherPatches: Float32Array, batch: number, patches: number): void {
    const K = this.dim;
    for (let g = 0; g < this.crops; g++) {
      const idx = plan.push[g] as number[];
      const k = idx.length;
      const q = this.rows[g] as Float32Array;
      q.copyWithin(k * K, 0, (this.size - k) * K);
      for (const [j, row] of idx.entries()) {
        const src = (g * batch * patches + row) * K;
        q.set(teacherPatches.subarray(src, src + K), j * K);
      }
    }
    this.entries = Math.min(this.entries + (plan.push[0]?.length ?? 0), this.size);
  }
}
