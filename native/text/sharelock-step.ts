/**
 * One ShareLock training step as one ONNX graph, on precomputed features: language projector (training-mode
 * BatchNorm, dropout masks fed by the host), normalised vision features, ShareLock's loss, our autodiff,
 * the gradients and their global norm; parameters and BatchNorm running statistics are inputs, the next running
 * statistics outputs. `ShareLockStepRunner` keeps the state on the host between steps and applies clip_grad_norm_
 * to `max_norm` (Lightning's gradient_clip_val, before the step), then torch.optim.Adam with its (coupled) weight
 * decay added to the clipped gradient, on every parameter, in place (`adamInPlace`).
 */
import { GraphBuilder } from '../graph/builder.js';
import type { Value } from '../graph/ir.js';
import { toOnnx } from '../graph/onnx.js';
import { globalNorm } from '../graph/optim.js';
import { ModelSession, ort, type RuntimeSettings } from '../runtime/session.js';
import { type GemmRowOptions, splitGemmRows } from './gemm-rows.js';
import {
  l2Normalize,
  type ShareLockConfig,
  shareLockBufferShapes,
  shareLockLoss,
  shareLockParamShapes,
} from './sharelock.js';
import { projectorStep } from './sharelock-projector-step.js';

export interface ShareLockStepConfig {
  head: ShareLockConfig;
  /** Micro-batch size. */
  batch: number;
  /**
   * Micro-batches per optimizer step (Lightning's accumulate_grad_batches; official 16 × 1024): each micro-batch's
   * loss is divided by it and the gradients summed; BatchNorm uses each micro-batch's statistics and updates its
   * running statistics per micro-batch, as in PyTorch. Default 1.
   */
  accumulation?: number;
  /** Output every parameter's raw gradient (of the micro-batch's scaled loss, before clipping and decay). */
  emitGradients?: boolean;
  /**
   * Large Gemms run as row slices (gemm-rows.ts: MLAS's C panel stays in L2), inner dimensions of 4096 padded
   * with 16 zero columns (A's rows no longer 16 KB apart); default 512 rows a slice from 2^27 multiply-adds,
   * `false` for one Gemm each. The same products either way.
   */
  gemmRows?: GemmRowOptions | false;
}

const GEMM_ROWS: GemmRowOptions = { rows: 512, padK: 16 };

function finish(b: GraphBuilder, cfg: ShareLockStepConfig): Uint8Array {
  const rows = cfg.gemmRows ?? GEMM_ROWS;
  return toOnnx(rows ? splitGemmRows(b.build(), rows) : b.build());
}

export interface ShareLockStepGraph {
  config: ShareLockStepConfig;
  /** The step: (accumulated gradients +) this micro-batch's, and their global norm (clipping and Adam: the host). */
  onnx: Uint8Array;
  /** With accumulation > 1: the gradients of one micro-batch added to `acc/…` (no update). */
  accumulateOnnx: Uint8Array | null;
  params: Map<string, number[]>;
  buffers: Map<string, number[]>;
}

/** The forward pass, loss and gradients of one micro-batch; what both graphs share. */
function microBatch(b: GraphBuilder, cfg: ShareLockStepConfig, accumulated: boolean) {
  const c = cfg.head;
  const B = cfg.batch;
  const k = cfg.accumulation ?? 1;
  const text = b.input('text', 'float32', [B, c.textDim]);
  const vision = b.input('vision', 'float32', [B, c.visionDim]);
  const masks =
    c.dropout > 0
      ? Array.from({ length: c.layers - 1 }, (_, i) => b.input(`mask_${i}`, 'float32', [B, c.hidden]))
      : null;
  const params = shareLockParamShapes(c);
  const buffers = shareLockBufferShapes(c);
  const p = new Map<string, Value>();
  for (const [name, shape] of params) p.set(name, b.input(`p/${name}`, 'float32', shape));
  for (const [name, shape] of buffers) p.set(name, b.input(`b/${name}`, 'float32', shape));
  const param = (name: string) => {
    const v = p.get(name);
    if (!v) throw new Error(`no ShareLock parameter ${name}`);
    return v;
  };
  const image = b.scope('vision_projector', () => l2Normalize(b, vision));
  // BatchNorm's backward by hand (sharelock-projector-step.ts); the loss and the last Linear by the autodiff
  // (each micro-batch's loss / k differentiated)
  const { loss, running, grads } = projectorStep(b, c, text, param, { masks, batch: B, lossScale: 1 / k }, (t) => {
    const out = shareLockLoss(b, image, t);
    return { loss: out.loss, stop: out.shifts };
  });
  const own = [...params.keys()].map((n) => grads.get(param(n).name) as Value);
  // Gradients of the earlier micro-batches of this step, summed (inputs), plus this one's.
  const total = accumulated
    ? [...params].map(([n, shape], i) => b.add(b.input(`acc/${n}`, 'float32', shape), own[i] as Value))
    : own;
  b.output(loss, 'loss');
  for (const [name, v] of running) b.output(v, `b_next/${name}`);
  // a step without accumulation outputs its gradients anyway (`g/…`)
  if (cfg.emitGradients && accumulated) {
    [...params.keys()].forEach((n, i) => {
      b.output(b.identity(own[i] as Value), `grad/${n}`);
    });
  }
  return { params, buffers, param, total };
}

export function buildShareLockStep(cfg: ShareLockStepConfig): ShareLockStepGraph {
  const k = cfg.accumulation ?? 1;
  if (!Number.isInteger(k) || k < 1) throw new Error(`accumulation must be a whole number ≥ 1, not ${k}`);
  const b = new GraphBuilder('sharelock_step');
  const { params, buffers, total } = microBatch(b, cfg, k > 1);
  // The step's gradients (of every micro-batch) and their global norm; clipping and Adam run on the host
  // (`adamInPlace`): one pass over each parameter and its moments, written in place, where the graph took ~18
  // element-wise passes and new arrays for the parameters and moments every step.
  b.output(b.reshape(globalNorm(b, total), [1]), 'grad_norm');
  [...params.keys()].forEach((n, i) => {
    b.output(total[i] as Value, `g/${n}`);
  });
  let accumulateOnnx: Uint8Array | null = null;
  if (k > 1) {
    const a = new GraphBuilder('sharelock_accumulate');
    const m = microBatch(a, cfg, true);
    [...m.params.keys()].forEach((n, i) => {
      a.output(m.total[i] as Value, `acc_next/${n}`);
    });
    accumulateOnnx = finish(a, cfg);
  }
  return { config: cfg, onnx: finish(b, cfg), accumulateOnnx, params, buffers };
}

/**
 * clip_grad_norm_ then torch.optim.Adam (1.13's single-tensor update, weight decay added to the clipped gradient)
 * on one parameter, in place: p, m and v are updated in one pass over g.
 */
export function adamInPlace(
  p: Float32Array,
  m: Float32Array,
  v: Float32Array,
  g: Float32Array,
  o: { clip: number; lr: number; weightDecay: number; step: number; betas: readonly [number, number]; eps?: number },
): void {
  const [b1, b2] = o.betas;
  const eps = o.eps ?? 1e-8;
  const stepSize = o.lr / (1 - b1 ** o.step);
  const sqrtBc2 = Math.sqrt(1 - b2 ** o.step);
  const { clip, weightDecay: wd } = o;
  const c1 = 1 - b1;
  const c2 = 1 - b2;
  for (let i = 0; i < p.length; i++) {
    const pi = p[i] as number;
    const gi = Math.fround(Math.fround((g[i] as number) * clip) + Math.fround(wd * pi));
    const mi = Math.fround(b1 * (m[i] as number) + c1 * gi);
    const vi = Math.fround(b2 * (v[i] as number) + c2 * gi * gi);
    m[i] = mi;
    v[i] = vi;
    p[i] = pi - (stepSize * mi) / (Math.sqrt(vi) / sqrtBc2 + eps);
  }
}

export interface ShareLockState {
  /** Optimizer steps taken. */
  step: number;
  params: Map<string, Float32Array>;
  buffers: Map<string, Float32Array>;
  m: Map<string, Float32Array>;
  v: Map<string, Float32Array>;
}

export function initialShareLockState(
  graph: ShareLockStepGraph,
  params: ReadonlyMap<string, Float32Array>,
  buffers: ReadonlyMap<string, Float32Array>,
): ShareLockState {
  const copy = (shapes: Map<string, number[]>, from: ReadonlyMap<string, Float32Array>, what: string) =>
    new Map(
      [...shapes].map(([name, shape]) => {
        const data = from.get(name);
        const n = shape.reduce((a, d) => a * d, 1);
        if (!data || data.length !== n)
          throw new Error(`initial ${what} ${name} is missing or has ${data?.length} values, not ${n}`);
        return [name, data.slice()] as const;
      }),
    );
  const zeros = () => new Map([...graph.params].map(([n, s]) => [n, new Float32Array(s.reduce((a, d) => a * d, 1))]));
  return {
    step: 0,
    params: copy(graph.params, params, 'parameter'),
    buffers: copy(graph.buffers, buffers, 'buffer'),
    m: zeros(),
    v: zeros(),
  };
}

export interface ShareLockBatch {
  text: Float32Array;
  vision: Float32Array;
  /** Per hidden layer, [B, hidden] of 0 or 1/(1-p) (drawn by the caller's seeded generator). */
  masks?: readonly Float32Array[];
}

export interface ShareLockScalars {
  lr: number;
  weightDecay: number;
  maxNorm: number;
}

export interface ShareLockMetrics {
  loss: number;
  gradNorm: number;
  gradients?: Map<string, Float32Array>;
}

/** Dropout masks of nn.Dropout(p) in training mode: 0 with probability p, else 1 / (1 − p). */
export function dropoutMasks(c: ShareLockConfig, batch: number, next: () => number): Float32Array[] {
  const keep = 1 / (1 - c.dropout);
  return Array.from({ length: c.layers - 1 }, () =>
    Float32Array.from({ length: batch * c.hidden }, () => (next() >= c.dropout ? keep : 0)),
  );
}

export class ShareLockStepRunner {
  private constructor(
    private readonly graph: ShareLockStepGraph,
    private readonly session: ModelSession,
    private readonly accumulate: ModelSession | null,
    private readonly betas: [number, number],
  ) {}

  static async create(
    graph: ShareLockStepGraph,
    settings?: RuntimeSettings,
    betas: [number, number] = [0.9, 0.999],
  ): Promise<ShareLockStepRunner> {
    // A step is ~13 large matmuls with element-wise passes between them: threads that spin between those cost a
    // quarter of the step's CPU time at 2 threads on a loaded machine and slow it (ModelSession's `spinning`).
    const quiet = { spinning: false };
    const session = await ModelSession.create(graph.onnx, settings, quiet);
    const accumulate = graph.accumulateOnnx ? await ModelSession.create(graph.accumulateOnnx, settings, quiet) : null;
    return new ShareLockStepRunner(graph, session, accumulate, betas);
  }

  get provider(): string {
    return this.session.info.provider;
  }

  private batchFeeds(state: ShareLockState, batch: ShareLockBatch): Record<string, ort.Tensor> {
    const { head: c, batch: B } = this.graph.config;
    const feeds: Record<string, ort.Tensor> = {
      text: tensor(batch.text, [B, c.textDim]),
      vision: tensor(batch.vision, [B, c.visionDim]),
    };
    if (c.dropout > 0) {
      if (!batch.masks || batch.masks.length !== c.layers - 1)
        throw new Error(`a ShareLock step needs ${c.layers - 1} dropout masks`);
      batch.masks.forEach((m, i) => {
        feeds[`mask_${i}`] = tensor(m, [B, c.hidden]);
      });
    }
    for (const [name, shape] of this.graph.params)
      feeds[`p/${name}`] = tensor(state.params.get(name) as Float32Array, shape);
    for (const [name, shape] of this.graph.buffers)
      feeds[`b/${name}`] = tensor(state.buffers.get(name) as Float32Array, shape);
    return feeds;
  }

  /**
   * One optimizer step over `accumulation` micro-batches (one batch when there is no accumulation): `state`
   * becomes the next state (step + 1). The loss is the micro-batches' mean.
   */
  async step(
    state: ShareLockState,
    batches: ShareLockBatch | readonly ShareLockBatch[],
    s: ShareLockScalars,
  ): Promise<ShareLockMetrics> {
    const list = Array.isArray(batches) ? (batches as readonly ShareLockBatch[]) : [batches as ShareLockBatch];
    const k = this.graph.config.accumulation ?? 1;
    if (list.length !== k) throw new Error(`a ShareLock step takes ${k} micro-batch(es), not ${list.length}`);
    const gradients = new Map<string, Float32Array>();
    const keepGradients = (out: Record<string, ort.Tensor>, i: number) => {
      if (!this.graph.config.emitGradients) return;
      for (const n of this.graph.params.keys()) {
        const g = (out[`grad/${n}`] as ort.Tensor).data as Float32Array;
        const prev = gradients.get(n);
        gradients.set(n, i === 0 || !prev ? g : prev.map((x, j) => x + (g[j] as number)));
      }
    };
    const takeBuffers = (out: Record<string, ort.Tensor>) => {
      for (const name of this.graph.buffers.keys())
        state.buffers.set(name, (out[`b_next/${name}`] as ort.Tensor).data as Float32Array);
    };
    let lossSum = 0;
    let acc: Map<string, Float32Array> | null = null;
    for (let i = 0; i < k - 1; i++) {
      const feeds = this.batchFeeds(state, list[i] as ShareLockBatch);
      for (const [name, shape] of this.graph.params)
        feeds[`acc/${name}`] = tensor(acc?.get(name) ?? new Float32Array(shape.reduce((a, d) => a * d, 1)), shape);
      const out = await (this.accumulate as ModelSession).run(feeds);
      acc = new Map(
        [...this.graph.params.keys()].map((n) => [n, (out[`acc_next/${n}`] as ort.Tensor).data as Float32Array]),
      );
      lossSum += ((out.loss as ort.Tensor).data as Float32Array)[0] as number;
      takeBuffers(out);
      keepGradients(out, i);
    }
    const next = state.step + 1;
    const feeds = this.batchFeeds(state, list[k - 1] as ShareLockBatch);
    if (k > 1)
      for (const [name, shape] of this.graph.params)
        feeds[`acc/${name}`] = tensor(acc?.get(name) as Float32Array, shape);
    const out = await this.session.run(feeds);
    const get = (n: string) => (out[n] as ort.Tensor).data as Float32Array;
    const gradNorm = get('grad_norm')[0] as number;
    // torch's clip_grad_norm_: the gradients times min(1, max_norm / (norm + 1e-6)), in float32
    const clip = Math.min(Math.fround(s.maxNorm / Math.fround(gradNorm + 1e-6)), 1);
    const adam = { clip, lr: s.lr, weightDecay: s.weightDecay, step: next, betas: this.betas };
    for (const name of this.graph.params.keys()) {
      const own = (m: Map<string, Float32Array>) => m.get(name) as Float32Array;
      adamInPlace(own(state.params), own(state.m), own(state.v), get(`g/${name}`), adam);
    }
    takeBuffers(out);
    if (this.graph.config.emitGradients) {
      if (k === 1) for (const n of this.graph.params.keys()) gradients.set(n, get(`g/${n}`));
      else keepGradients(out, k - 1);
    }
    state.step = next;
    lossSum += get('loss')[0] as number;
    const metrics: ShareLockMetrics = { loss: lossSum / k, gradNorm };
    if (this.graph.config.emitGradients) metrics.gradients = gradients;
    return metrics;
  }

  async release(): Promise<void> {
    await this.session.release();
    await this.accumulate?.release();
  }
}

function tensor(data: Float32Array, dims: readonly number[]): ort.Tensor {
  return new ort.Tensor('float32', data, dims as number[]);
}
