/**
 * Label propagation through a video on patch features, the protocol of DINO's video object segmentation
 * evaluation (eval_video_segmentation.py; Dora and NeCo reuse it): each target frame's patches take the labels of
 * their most similar patches among a context of the first frame and the `context` most recent predicted frames,
 * restricted to a square neighbourhood of `radius` patches, the top `topk` affinities exp(cos / temperature)
 * normalised to weights; labels are carried as soft probabilities (what the queue keeps), upsampled bilinearly,
 * min-max normalised per object and taken as the argmax.
 *
 * Pure: features in, soft labels and masks out. The job (propagate-job.ts) decodes frames and extracts features.
 */

export interface PropagateOptions {
  /** Most recent predicted frames kept as context beside the first frame (DINO: n_last_frames = 7). */
  context: number;
  /** Context patches whose labels a target patch takes (DINO: 5). */
  topk: number;
  /** Neighbourhood half-size in patches (Chebyshev distance; DINO: size_mask_neighborhood = 12; 0 = no limit). */
  radius: number;
  /** Affinity exp(cos / temperature) (DINO: 0.1). */
  temperature: number;
  /**
   * Neighbourhood half-size for the first frame's patches (0 = the whole frame; absent = `radius`, DINO's): an object
   * that left the frame and comes back elsewhere finds its first-frame patches again, when the recent frames have lost it.
   */
  firstRadius?: number;
  /**
   * Weight β of a first-frame prior (0 = none, DINO's): each target patch's labels become (1 − β) × the propagated
   * ones + β × those of its top-k most similar patches anywhere in the first frame (the same affinity, k and τ), so
   * an object that comes back or was lost by the recent frames is found again.
   */
  firstPrior?: number;
  /**
   * Re-identification of lost objects, with this cosine margin δ (absent or null = off, DINO's): an object is lost when its
   * soft mass in the newest frame of the context has fallen below `REID_LOST` of its mass in the first frame (it left
   * the frame or was hidden); a target patch the propagation gives to the background (share ≥ `REID_BACKGROUND`) whose best cosine to that object's first-frame patches (anywhere in the
   * first frame) beats its best cosine to the recent frames' candidates (its neighbourhood) by more than δ takes that
   * object's label outright. The recent frames explain what stayed in view; a patch they do not explain and that
   * looks like a lost object is that object coming back, even far from where it left.
   */
  reidentify?: number | null;
}

/** A `reidentify` object is lost when its mass has fallen below this fraction of its first-frame mass. */
export const REID_LOST = 0.25;
/** `reidentify` looks only at patches whose propagated background share is at least this. */
export const REID_BACKGROUND = 0.5;

/** DINO's protocol exactly (eval_video_segmentation.py): the parity tests and `--dino`. */
export const DINO_PROTOCOL: PropagateOptions = { context: 7, topk: 5, radius: 12, temperature: 0.1 };

/**
 * The product default: DINO's with 3 recent frames instead of 7 and lost objects re-identified at margin -0.05
 * (chosen on the bench's tuning seeds 11-14, bench/README.md).
 */
export const PROPAGATE_DEFAULTS: PropagateOptions = { ...DINO_PROTOCOL, context: 3, reidentify: -0.05 };

export interface Grid {
  gridH: number;
  gridW: number;
}

/** L2-normalised copy of row-major vectors [n, dim]. */
export function normalizedRows(v: Float32Array, dim: number): Float32Array {
  const out = new Float32Array(v.length);
  for (let i = 0; i < v.length; i += dim) {
    let s = 0;
    for (let j = 0; j < dim; j++) s += (v[i + j] as number) ** 2;
    // F.normalize's eps (1e-12 on the norm).
    const inv = 1 / Math.max(Math.sqrt(s), 1e-12);
    for (let j = 0; j < dim; j++) out[i + j] = (v[i + j] as number) * inv;
  }
  return out;
}

/**
 * One-hot labels [classes, n] of an id mask (width × height) seen through the grid by nearest-neighbour sampling at
 * cell centres (DINO reads the first mask resized to the grid with PIL's NEAREST). Ids ≥ classes are background.
 */
export function gridLabels(ids: Uint8Array, width: number, height: number, grid: Grid, classes: number): Float32Array {
  const { gridH, gridW } = grid;
  const n = gridH * gridW;
  const out = new Float32Array(classes * n);
  for (let gy = 0; gy < gridH; gy++) {
    const y = Math.min(height - 1, Math.floor(((gy + 0.5) * height) / gridH));
    for (let gx = 0; gx < gridW; gx++) {
      const x = Math.min(width - 1, Math.floor(((gx + 0.5) * width) / gridW));
      const c = ids[y * width + x] as number;
      out[(c < classes ? c : 0) * n + gy * gridW + gx] = 1;
    }
  }
  return out;
}

export interface ContextFrame {
  /** Normalised patch features [n, dim]. */
  feats: Float32Array;
  /** Soft labels [classes, n]. */
  labels: Float32Array;
}

/**
 * Propagates labels frame after frame. The first frame (its features and labels) stays in the context; the queue
 * keeps the `context` most recent predictions, so memory is bounded by (context + 1) frames of features and labels.
 */
export class LabelPropagator {
  private readonly first: ContextFrame;
  private readonly queue: ContextFrame[] = [];
  readonly n: number;
  /** Per target patch, the context patches of its neighbourhood (indices into a frame), built once. */
  private readonly neighbours: Int32Array[];
  /** The same for the first frame (its own radius). */
  private readonly firstNeighbours: Int32Array[];
  /** Per object, the first frame's soft label mass (`reidentify`). */
  private readonly firstMass: Float64Array;

  constructor(
    readonly grid: Grid,
    readonly dim: number,
    readonly classes: number,
    firstFeatures: Float32Array,
    firstLabels: Float32Array,
    readonly options: PropagateOptions = PROPAGATE_DEFAULTS,
  ) {
    this.n = grid.gridH * grid.gridW;
    if (firstFeatures.length !== this.n * dim) throw new Error('first-frame features do not match the grid');
    if (firstLabels.length !== this.n * classes) throw new Error('first-frame labels do not match the grid');
    if (options.topk < 1 || options.context < 0 || options.temperature <= 0)
      throw new Error('topk ≥ 1, context ≥ 0 and temperature > 0 are needed');
    this.first = { feats: normalizedRows(firstFeatures, dim), labels: firstLabels };
    this.firstMass = labelMass(firstLabels, classes, this.n);
    this.neighbours = neighbourhoods(grid, options.radius);
    this.firstNeighbours =
      options.firstRadius === undefined || options.firstRadius === options.radius
        ? this.neighbours
        : neighbourhoods(grid, options.firstRadius);
  }

  /** The context (first frame, then the queue oldest first), to checkpoint a run. */
  snapshot(): { first: ContextFrame; queue: ContextFrame[] } {
    return { first: this.first, queue: [...this.queue] };
  }

  /** A propagator that goes on from a snapshot (features already normalised). */
  static restore(
    grid: Grid,
    dim: number,
    classes: number,
    snap: { first: ContextFrame; queue: ContextFrame[] },
    options: PropagateOptions = PROPAGATE_DEFAULTS,
  ): LabelPropagator {
    const p = new LabelPropagator(grid, dim, classes, snap.first.feats, snap.first.labels, options);
    p.queue.push(...snap.queue.slice(-options.context || snap.queue.length));
    if (options.context === 0) p.queue.length = 0;
    return p;
  }

  /** Frames in the context now (the first frame included). */
  get contextSize(): number {
    return 1 + this.queue.length;
  }

  /**
   * Soft labels [classes, n] of the next frame from its patch features [n, dim]; the prediction then joins the
   * context (the oldest leaves when the queue is full). Cosines computed here (exact, in JS).
   */
  step(features: Float32Array): Float32Array {
    const { n, dim } = this;
    if (features.length !== n * dim) throw new Error('frame features do not match the grid');
    const feats = normalizedRows(features, dim);
    const ctx = [this.first, ...this.queue];
    return this.finish(
      feats,
      this.propagate(ctx, (t, c, s) => {
        const src = (ctx[c] as ContextFrame).feats;
        const tOff = t * dim;
        const sOff = s * dim;
        let dot = 0;
        for (let d = 0; d < dim; d++) dot += (feats[tOff + d] as number) * (src[sOff + d] as number);
        return dot;
      }),
    );
  }

  /**
   * The same step with the cosines of the target's patches to the whole context from `similarities` (a matrix
   * product [n, dim] × [dim, contexts·n] → [n, contexts·n], e.g. on the execution provider): far faster at 480 px.
   */
  async stepWith(
    features: Float32Array,
    similarities: (target: Float32Array, contextT: Float32Array, m: number) => Promise<Float32Array>,
  ): Promise<Float32Array> {
    const { n, dim } = this;
    if (features.length !== n * dim) throw new Error('frame features do not match the grid');
    const feats = normalizedRows(features, dim);
    const ctx = [this.first, ...this.queue];
    const m = ctx.length * n;
    // The context transposed: [dim, contexts·n].
    const ctxT = new Float32Array(dim * m);
    ctx.forEach((f, c) => {
      for (let s = 0; s < n; s++)
        for (let d = 0; d < dim; d++) ctxT[d * m + c * n + s] = f.feats[s * dim + d] as number;
    });
    const sims = await similarities(feats, ctxT, m);
    return this.finish(
      feats,
      this.propagate(ctx, (t, c, s) => sims[t * m + c * n + s] as number),
    );
  }

  private finish(feats: Float32Array, out: Float32Array): Float32Array {
    if (this.options.context > 0) {
      if (this.queue.length === this.options.context) this.queue.shift();
      this.queue.push({ feats, labels: out });
    }
    return out;
  }

  /** Labels of every target patch from the top-k affinities exp(cos / τ) of its neighbourhood in the context. */
  private propagate(ctx: ContextFrame[], cosine: (t: number, c: number, s: number) => number): Float32Array {
    const { n, classes } = this;
    const { topk: k, temperature } = this.options;
    const out = new Float32Array(classes * n);
    // Every candidate's affinity (context frames × neighbourhood), then the k-th largest as the threshold: like
    // DINO, every candidate at or above it counts (ties at the threshold included).
    const maxNb = (nbs: Int32Array[]) => nbs.reduce((m, nb) => Math.max(m, nb.length), 0);
    const size = maxNb(this.firstNeighbours) + (ctx.length - 1) * maxNb(this.neighbours);
    const cand = new Float64Array(size);
    const candFrame = new Int32Array(size);
    const candPatch = new Int32Array(size);
    const best = new Float64Array(k);
    // `reidentify`: per target patch, its best cosine to the recent frames' candidates (all of them, the first frame's
    // included, when the context holds the first frame only).
    const reid = this.options.reidentify ?? null;
    const recentBest = reid === null ? null : new Float64Array(n).fill(Number.NEGATIVE_INFINITY);
    const recentFrom = ctx.length > 1 ? 1 : 0;
    for (let t = 0; t < n; t++) {
      best.fill(Number.NEGATIVE_INFINITY);
      let m = 0;
      for (let c = 0; c < ctx.length; c++) {
        const nb = (c === 0 ? this.firstNeighbours[t] : this.neighbours[t]) as Int32Array;
        for (let j = 0; j < nb.length; j++) {
          const s = nb[j] as number;
          const cos = cosine(t, c, s);
          if (recentBest && c >= recentFrom && cos > (recentBest[t] as number)) recentBest[t] = cos;
          const v = Math.exp(cos / temperature);
          cand[m] = v;
          candFrame[m] = c;
          candPatch[m++] = s;
          keepLargest(best, v);
        }
      }
      // Fewer candidates than k: all of them.
      const threshold = m < k ? Number.NEGATIVE_INFINITY : (best[k - 1] as number);
      let sum = 0;
      for (let i = 0; i < m; i++) if ((cand[i] as number) >= threshold) sum += cand[i] as number;
      if (!(sum > 0)) continue;
      for (let i = 0; i < m; i++) {
        const v = cand[i] as number;
        if (v < threshold) continue;
        const w = v / sum;
        const lab = (ctx[candFrame[i] as number] as ContextFrame).labels;
        const s = candPatch[i] as number;
        for (let cl = 0; cl < classes; cl++)
          out[cl * n + t] = (out[cl * n + t] as number) + w * (lab[cl * n + s] as number);
      }
    }
    const beta = this.options.firstPrior ?? 0;
    if (beta > 0) {
      const prior = this.firstFramePrior(cosine);
      for (let i = 0; i < out.length; i++) out[i] = (1 - beta) * (out[i] as number) + beta * (prior[i] as number);
    }
    if (reid !== null && recentBest) this.reidentifyLost(out, ctx, recentBest, reid, cosine);
    return out;
  }

  /**
   * `reidentify`: the objects lost in the newest context frame; every target patch whose best cosine to a lost
   * object's first-frame patches beats `recentBest` by more than `margin` becomes that object (the best one).
   */
  private reidentifyLost(
    out: Float32Array,
    ctx: ContextFrame[],
    recentBest: Float64Array,
    margin: number,
    cosine: (t: number, c: number, s: number) => number,
  ): void {
    const { n, classes } = this;
    const newest = (ctx[ctx.length - 1] as ContextFrame).labels;
    const mass = labelMass(newest, classes, n);
    const lost: number[] = [];
    for (let cl = 1; cl < classes; cl++)
      if ((this.firstMass[cl] as number) > 0 && (mass[cl] as number) < REID_LOST * (this.firstMass[cl] as number))
        lost.push(cl);
    if (!lost.length) return;
    // Each lost object's first-frame patches (label ≥ 0.5).
    const lab = this.first.labels;
    const patches = lost.map((cl) => {
      const at: number[] = [];
      for (let s = 0; s < n; s++) if ((lab[cl * n + s] as number) >= 0.5) at.push(s);
      return at;
    });
    for (let t = 0; t < n; t++) {
      // Only patches the propagation gives to the background: an object in view keeps its patches.
      if ((out[t] as number) < REID_BACKGROUND) continue;
      let bestCl = -1;
      let bestCos = (recentBest[t] as number) + margin;
      lost.forEach((cl, i) => {
        for (const s of patches[i] as number[]) {
          const cos = cosine(t, 0, s);
          if (cos > bestCos) {
            bestCos = cos;
            bestCl = cl;
          }
        }
      });
      if (bestCl < 0) continue;
      for (let cl = 0; cl < classes; cl++) out[cl * n + t] = cl === bestCl ? 1 : 0;
    }
  }

  /** Labels of every target patch from its top-k affinities to the whole first frame (the prior of `firstPrior`). */
  private firstFramePrior(cosine: (t: number, c: number, s: number) => number): Float32Array {
    const { n, classes } = this;
    const { topk, temperature } = this.options;
    const k = Math.min(topk, n);
    const out = new Float32Array(classes * n);
    const aff = new Float64Array(n);
    const best = new Float64Array(k);
    const lab = this.first.labels;
    for (let t = 0; t < n; t++) {
      best.fill(Number.NEGATIVE_INFINITY);
      for (let s = 0; s < n; s++) {
        const v = Math.exp(cosine(t, 0, s) / temperature);
        aff[s] = v;
        keepLargest(best, v);
      }
      const threshold = best[k - 1] as number;
      let sum = 0;
      for (let s = 0; s < n; s++) if ((aff[s] as number) >= threshold) sum += aff[s] as number;
      if (!(sum > 0)) continue;
      for (let s = 0; s < n; s++) {
        const v = aff[s] as number;
        if (v < threshold) continue;
        for (let cl = 0; cl < classes; cl++)
          out[cl * n + t] = (out[cl * n + t] as number) + (v / sum) * (lab[cl * n + s] as number);
      }
    }
    return out;
  }
}

/** Per class, the sum of its soft labels [classes, n] over the patches. */
function labelMass(labels: Float32Array, classes: number, n: number): Float64Array {
  const mass = new Float64Array(classes);
  for (let cl = 0; cl < classes; cl++) {
    let s = 0;
    for (let t = 0; t < n; t++) s += labels[cl * n + t] as number;
    mass[cl] = s;
  }
  return mass;
}

/** Keeps the `best.length` largest values seen in `best`, in descending order. */
function keepLargest(best: Float64Array, v: number): void {
  const k = best.length;
  if (!(v > (best[k - 1] as number))) return;
  let i = k - 1;
  while (i > 0 && (best[i - 1] as number) < v) {
    best[i] = best[i - 1] as number;
    i--;
  }
  best[i] = v;
}

/** For each patch of the grid, the patches within `radius` rows and columns (all of them when radius is 0). */
export function neighbourhoods(grid: Grid, radius: number): Int32Array[] {
  const { gridH, gridW } = grid;
  const out: Int32Array[] = [];
  for (let y = 0; y < gridH; y++) {
    for (let x = 0; x < gridW; x++) {
      const y0 = radius > 0 ? Math.max(0, y - radius) : 0;
      const y1 = radius > 0 ? Math.min(gridH - 1, y + radius) : gridH - 1;
      const x0 = radius > 0 ? Math.max(0, x - radius) : 0;
      const x1 = radius > 0 ? Math.min(gridW - 1, x + radius) : gridW - 1;
      const nb = new Int32Array((y1 - y0 + 1) * (x1 - x0 + 1));
      let i = 0;
      for (let yy = y0; yy <= y1; yy++) for (let xx = x0; xx <= x1; xx++) nb[i++] = yy * gridW + xx;
      out.push(nb);
    }
  }
  return out;
}

export interface UpsampleTarget {
  /** The network input the grid came from (grid × patch size): DINO upsamples there first. */
  inputWidth: number;
  inputHeight: number;
  /** The mask's size (the source frame's). */
  width: number;
  height: number;
}

/**
 * Instance ids (width × height) from soft labels [classes, n] on the grid: bilinear upsampling to the network
 * input (half-pixel centres, as F.interpolate with align_corners=False), each object's map min-max normalised
 * when its maximum is positive (DINO's norm_mask), argmax, then nearest-neighbour sampling to the mask's size
 * (PIL's NEAREST). With `direct`, the bilinear step goes straight to the mask's size instead.
 */
export function labelsToMask(
  labels: Float32Array,
  grid: Grid,
  classes: number,
  target: UpsampleTarget,
  direct = false,
): Uint8Array {
  const W = direct ? target.width : target.inputWidth;
  const H = direct ? target.height : target.inputHeight;
  const { gridH, gridW } = grid;
  const n = gridH * gridW;
  const up = new Float32Array(classes * W * H);
  const xs = axisWeights(W, gridW);
  const ys = axisWeights(H, gridH);
  for (let c = 0; c < classes; c++) {
    const plane = c * n;
    const outPlane = c * W * H;
    let lo = Number.POSITIVE_INFINITY;
    let hi = Number.NEGATIVE_INFINITY;
    for (let y = 0; y < H; y++) {
      const r0 = plane + (ys.i0[y] as number) * gridW;
      const r1 = plane + (ys.i1[y] as number) * gridW;
      const fy = ys.f[y] as number;
      for (let x = 0; x < W; x++) {
        const x0 = xs.i0[x] as number;
        const x1 = xs.i1[x] as number;
        const fx = xs.f[x] as number;
        const top = (1 - fx) * (labels[r0 + x0] as number) + fx * (labels[r0 + x1] as number);
        const bottom = (1 - fx) * (labels[r1 + x0] as number) + fx * (labels[r1 + x1] as number);
        const v = (1 - fy) * top + fy * bottom;
        up[outPlane + y * W + x] = v;
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
    }
    if (hi > 0) {
      const range = hi - lo;
      for (let i = outPlane; i < outPlane + W * H; i++) up[i] = ((up[i] as number) - lo) / (range > 0 ? range : 1);
    }
  }
  const ids = new Uint8Array(W * H);
  for (let i = 0; i < W * H; i++) {
    let best = 0;
    let bestV = up[i] as number;
    for (let c = 1; c < classes; c++) {
      const v = up[c * W * H + i] as number;
      if (v > bestV) {
        bestV = v;
        best = c;
      }
    }
    ids[i] = best;
  }
  if (direct || (W === target.width && H === target.height)) return ids;
  return nearestResize(ids, W, H, target.width, target.height);
}

/** Source positions of bilinear interpolation with half-pixel centres, clamped at the borders. */
function axisWeights(out: number, src: number): { i0: Int32Array; i1: Int32Array; f: Float32Array } {
  const i0 = new Int32Array(out);
  const i1 = new Int32Array(out);
  const f = new Float32Array(out);
  const scale = src / out;
  for (let o = 0; o < out; o++) {
    const s = Math.max((o + 0.5) * scale - 0.5, 0);
    const a = Math.min(Math.floor(s), src - 1);
    i0[o] = a;
    i1[o] = Math.min(a + 1, src - 1);
    f[o] = a === src - 1 ? 0 : s - a;
  }
  return { i0, i1, f };
}

/** Nearest-neighbour resize at pixel centres (PIL's NEAREST): source index floor((o + 0.5) × in / out). */
export function nearestResize(ids: Uint8Array, w: number, h: number, W: number, H: number): Uint8Array {
  const out = new Uint8Array(W * H);
  const xs = new Int32Array(W);
  for (let x = 0; x < W; x++) xs[x] = Math.min(w - 1, Math.floor(((x + 0.5) * w) / W));
  for (let y = 0; y < H; y++) {
    const sy = Math.min(h - 1, Math.floor(((y + 0.5) * h) / H));
    for (let x = 0; x < W; x++) out[y * W + x] = ids[sy * w + (xs[x] as number)] as number;
  }
  return out;
}
