/**
 * Dora's data for one training step (ICLR 2024, METHODS.md): clips of F frames with stride s from one video;
 * one random resized crop and flip shared by the whole clip, colour jitter, grayscale and blur drawn per frame;
 * local crops per frame. The teacher's last-block attention on the unmasked views discovers k objects on each
 * clip's first frame (`discover`) and tracks them through the clip (`trackMasks`); each frame's view multiplied by
 * each object mask gives the student's k masked views. All randomness comes from the generator, so a resumed
 * run draws the same batches.
 */

import { sampleCropBox } from '../base/crop-box.js';
import type { Rng } from '../base/rng.js';
import type { DinoHeadConfig } from '../models/dino-head.js';
import { discover, trackMasks } from '../models/dora.js';
import type { ImportedViT } from '../models/import-vit.js';
import type { RgbLike } from '../models/preprocess.js';
import { patchRows } from '../models/vit.js';
import { buildViTOnnx } from '../models/vit-onnx.js';
import { ModelSession, ort, type RuntimeSettings } from '../runtime/session.js';
import {
  augmentInto,
  type CropOptions,
  colourJitter,
  cropResize,
  DINO_JITTER,
  gaussianBlur,
  hflip,
  normalizeInto,
  unitFloats,
} from './augment.js';

export interface DoraOptions {
  framesPerClip: number;
  /** Stride between a clip's frames, in sampled frames. */
  stride: number;
  objects: number;
  epsilon: number;
  iterations: number;
  /** Probabilities of grayscale and blur per frame (Dora: 0.2, 0.1). */
  grayscaleP: number;
  blurP: number;
}

export interface ClipSource {
  frames: number;
  read(idx: number): RgbLike;
}

/** Frame indices of a clip starting at `start`: start, start + s, …, clamped to the last frame. */
export function clipFrames(start: number, frames: number, perClip: number, stride: number): number[] {
  return Array.from({ length: perClip }, (_, t) => Math.min(frames - 1, start + t * stride));
}

/** A start frame drawn so the whole clip fits when the video is long enough. */
export function sampleClipStart(frames: number, perClip: number, stride: number, rng: Rng): number {
  const span = (perClip - 1) * stride;
  return rng.int(Math.max(1, frames - span));
}

/** What the teacher's pass over the unmasked views gives: last-block q, k (CLS dropped), CLS attention, logits. */
export interface TeacherPass {
  q: Float32Array;
  k: Float32Array;
  attention: Float32Array;
  n: number;
  d: number;
  /** [B, out] with a head (the Dora step's teacher output). */
  logits?: Float32Array;
}

export interface DoraBatch {
  /** [B, 3, S, S] unmasked views (B = clips × frames per clip). */
  teacherViews: Float32Array;
  /** The teacher's logits on them, when its pass has the head. */
  teacherLogits?: Float32Array;
  /** [k·B, 3, S, S] object-masked views, object-major. */
  masked: Float32Array;
  locals?: Float32Array;
  /** Object masks [B, k, n] on the patch grid (for previews and tests). */
  masks: Uint8Array;
  /** Share of patches inside the masks (a collapse monitor: 0 or 1 means no objects were separated). */
  maskCover: number;
}

/** Teacher parameters by name: host arrays, or tensors already on the device the pass runs on. */
export type TeacherWeights = ReadonlyMap<string, Float32Array | ort.Tensor>;

/**
 * Last-block attention of the current teacher (and, with its head, its logits: one pass serves the masks and the
 * Dora loss): one session whose weights are fed at every call.
 */
export class TeacherAttention {
  private constructor(
    private readonly config: ImportedViT['config'],
    private readonly size: number,
    private readonly session: ModelSession,
    private readonly withHead: boolean,
  ) {}

  static async create(
    config: ImportedViT['config'],
    size: number,
    runtime?: RuntimeSettings,
    head?: DinoHeadConfig,
    /** False: a GPU failure is thrown to the caller (the DINO trainer, whose teacher may live in GPU memory). */
    cpuFallback = true,
  ): Promise<TeacherAttention> {
    const onnx = buildViTOnnx(
      { config },
      {
        height: size,
        width: size,
        outputs: { lastQK: true, attention: true },
        fused: true,
        weightsAsInputs: true,
        ...(head ? { head } : {}),
      },
    );
    return new TeacherAttention(
      config,
      size,
      await ModelSession.create(onnx, runtime, { cpuFallback, memoryArena: false }),
      Boolean(head),
    );
  }

  /**
   * q, k [B, n, d] (CLS dropped), CLS attention [B, H, n] and, with the head, logits [B, out] of normalised views
   * [B, 3, S, S]. `shapes` may hold more parameters than the pass takes (e.g. the head's, for a pass without it).
   */
  async run(
    views: Float32Array,
    count: number,
    weights: TeacherWeights,
    shapes: ReadonlyMap<string, number[]>,
  ): Promise<TeacherPass> {
    const feeds: Record<string, ort.Tensor> = {
      pixels: new ort.Tensor('float32', views, [count, 3, this.size, this.size]),
    };
    const inputs = new Set(this.session.inputNames);
    for (const [name, shape] of shapes) {
      if (!inputs.has(`w/${name}`)) continue;
      const w = weights.get(name);
      if (!w) throw new Error(`teacher parameter ${name} is missing`);
      // A tensor already on the device (the trainer's teacher on a GPU) is fed as it is.
      feeds[`w/${name}`] = w instanceof Float32Array ? new ort.Tensor('float32', w, shape) : w;
    }
    const out = await this.session.run(feeds, ['q', 'k', 'attention', ...(this.withHead ? ['logits'] : [])]);
    const d = this.config.dim;
    const n = (this.size / this.config.patchSize) ** 2;
    const dropCls = (t: ort.Tensor | undefined) => {
      if (!t) throw new Error('the attention graph gave no output');
      return patchRows(t.data as Float32Array, count, n, d);
    };
    if (!out.attention) throw new Error('the attention graph gave no attention');
    const logits = out.logits ? (out.logits.data as Float32Array).slice() : undefined;
    return {
      q: dropCls(out.q),
      k: dropCls(out.k),
      attention: (out.attention.data as Float32Array).slice(),
      n,
      d,
      ...(logits ? { logits } : {}),
    };
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

/**
 * One frame's view of its clip: the clip's box and flip, then this frame's colour jitter, grayscale and blur,
 * normalised and written CHW into `out` at `at`. (Its own function, as `maskView`: V8 optimises a small function
 * called per frame sooner than the loops of a long async one called once per step.)
 */
function clipView(
  img: RgbLike,
  box: [number, number, number, number],
  flip: boolean,
  size: number,
  o: DoraOptions,
  norm: { mean: readonly number[]; std: readonly number[] },
  rng: Rng,
  out: Float32Array,
  at: number,
): void {
  let v = cropResize(img, box, size);
  if (flip) v = hflip(v);
  const px = unitFloats(v);
  colourJitter(px, DINO_JITTER, o.grayscaleP, rng);
  if (rng.next() < o.blurP) gaussianBlur(px, size, size, rng.uniform(0.1, 2));
  normalizeInto(px, norm.mean, norm.std, out, at);
}

/**
 * The view at `src` of `views` [3, S, S] with the patches outside `mask` (the grid's cells from `cell`) set to
 * `black` (per channel), written at `dst` of `out`: row by row, each patch's span copied or filled.
 */
function maskView(
  views: Float32Array,
  src: number,
  mask: Uint8Array,
  cell: number,
  out: Float32Array,
  dst: number,
  size: number,
  patch: number,
  black: readonly number[],
): void {
  const grid = Math.ceil(size / patch);
  for (let ch = 0; ch < 3; ch++) {
    const fill = black[ch] as number;
    for (let y = 0; y < size; y++) {
      const cells = cell + Math.floor(y / patch) * grid;
      const line = ch * size * size + y * size;
      for (let gx = 0; gx < grid; gx++) {
        const x0 = line + gx * patch;
        const x1 = line + Math.min(size, (gx + 1) * patch);
        if (mask[cells + gx]) for (let x = x0; x < x1; x++) out[dst + x] = views[src + x] as number;
        else for (let x = x0; x < x1; x++) out[dst + x] = fill;
      }
    }
  }
}

/**
 * Builds one Dora batch: `clips` clips drawn from `sources` (in proportion to their frames), views at `size`,
 * `locals` local crops per frame at `local.size`; `attend` runs the teacher on the unmasked views.
 */
export async function doraBatch(
  sources: readonly ClipSource[],
  clips: number,
  size: number,
  local: CropOptions & { count: number },
  o: DoraOptions,
  norm: { mean: readonly number[]; std: readonly number[]; patch: number; heads: number },
  rng: Rng,
  attend: (views: Float32Array, count: number) => Promise<TeacherPass>,
): Promise<DoraBatch> {
  const F = o.framesPerClip;
  const B = clips * F;
  const plane = 3 * size * size;
  const teacherViews = new Float32Array(B * plane);
  const lPlane = 3 * local.size * local.size;
  const locals = local.count > 0 ? new Float32Array(local.count * B * lPlane) : undefined;
  const total = sources.reduce((a, s) => a + s.frames, 0);
  const heads: number[][] = [];
  for (let c = 0; c < clips; c++) {
    // The source, by frames, then the clip.
    let pick = rng.int(total);
    let src = sources[0] as ClipSource;
    for (const s of sources) {
      if (pick < s.frames) {
        src = s;
        break;
      }
      pick -= s.frames;
    }
    const idx = clipFrames(sampleClipStart(src.frames, F, o.stride, rng), src.frames, F, o.stride);
    const first = src.read(idx[0] as number);
    const box = sampleCropBox(first.width, first.height, { scale: [0.4, 1] }, rng);
    const flip = rng.next() < 0.5;
    // Dora picks k random heads per clip.
    heads.push(rng.shuffle([...Array(norm.heads).keys()]).slice(0, Math.min(o.objects, norm.heads)));
    for (let t = 0; t < F; t++) {
      const img = t === 0 ? first : src.read(idx[t] as number);
      const b = c * F + t;
      clipView(img, box, flip, size, o, norm, rng, teacherViews, b * plane);
      for (let l = 0; l < local.count; l++)
        augmentInto(
          img,
          local,
          DINO_JITTER,
          o.grayscaleP,
          norm.mean,
          norm.std,
          rng,
          locals as Float32Array,
          (l * B + b) * lPlane,
        );
    }
  }

  // Discover on each clip's first frame, track through the clip, mask the views.
  const att = await attend(teacherViews, B);
  const { n, d } = att;
  const k = Math.min(o.objects, norm.heads);
  const masks = new Uint8Array(B * k * n);
  const masked = new Float32Array(k * B * plane);
  const black = [0, 1, 2].map((ch) => -(norm.mean[ch] as number) / (norm.std[ch] as number));
  let covered = 0;
  for (let c = 0; c < clips; c++) {
    const b0 = c * F;
    const protos = discover(
      att.q.subarray(b0 * n * d, (b0 + 1) * n * d),
      att.attention.subarray(b0 * norm.heads * n, (b0 + 1) * norm.heads * n),
      n,
      d,
      { heads: heads[c] as number[], epsilon: o.epsilon, iterations: o.iterations },
    );
    for (let t = 0; t < F; t++) {
      const b = b0 + t;
      const m = trackMasks(protos, att.k.subarray(b * n * d, (b + 1) * n * d), n, d);
      masks.set(m, b * k * n);
      for (let j = 0; j < k; j++) {
        maskView(teacherViews, b * plane, m, j * n, masked, (j * B + b) * plane, size, norm.patch, black);
        for (let i = 0; i < n; i++) covered += m[j * n + i] as number;
      }
    }
  }
  return {
    teacherViews,
    ...(att.logits ? { teacherLogits: att.logits } : {}),
    masked,
    ...(locals ? { locals } : {}),
    masks,
    maskCover: covered / (B * k * n),
  };
}
