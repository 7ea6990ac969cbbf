/**
 * One ShareLock training step as one ONNX graph, on precomputed features: language projector (training-mode
 * BatchNorm, dropout masks fed by the host), normalised vision features, ShareLock's loss, our autodiff,
 * clip_grad_norm_ to `max_norm` (Lightning's gradient_clip_val, before the step), then torch.optim.Adam with its
 * (coupled) weight decay added to the clipped gradient, on every parameter. Parameters, Adam moments and the
 * BatchNorm running statistics are inputs and outputs; the learning rate and bias corrections are scalar inputs.
 * `ShareLockStepRunner` keeps that state on the host between steps.
 */
import { gradients } from '../graph/autodiff/grad.js';
import { GraphBuilder } from '../graph/builder.js';
import type { Value } from '../graph/ir.js';
import { toOnnx } from '../graph/onnx.js';
import { adamW, clipByGlobalNorm, globalNorm } from '../graph/optim.js';
import { ModelSession, ort, type RuntimeSettings } from '../runtime/session.js';
import {
  l2Normalize,
  languageProjector,
  type ShareLockConfig,
  shareLockBufferShapes,
  shareLockLoss,
  shareLockParamShapes,
} from './sharelock.js';

export interface ShareLockStepConfig {
  head: ShareLockConfig;
  batch: number;
  /** Output every parameter's raw gradient (before clipping and decay), for parity tests. */
  emitGradients?: boolean;
}

export interface ShareLockStepGraph {
  config: ShareLockStepConfig;
  onnx: Uint8Array;
  params: Map<string, number[]>;
  buffers: Map<string, number[]>;
}

export function buildShareLockStep(cfg: ShareLockStepConfig): ShareLockStepGraph {
  const c = cfg.head;
  const B = cfg.batch;
  const b = new GraphBuilder('sharelock_step');
  const text = b.input('text', 'float32', [B, c.textDim]);
  const vision = b.input('vision', 'float32', [B, c.visionDim]);
  const masks =
    c.dropout > 0
      ? Array.from({ length: c.layers - 1 }, (_, i) => b.input(`mask_${i}`, 'float32', [B, c.hidden]))
      : null;
  const lr = b.input('lr', 'float32', [1]);
  const wd = b.input('wd', 'float32', [1]);
  const maxNorm = b.input('max_norm', 'float32', [1]);
  const bc1 = b.input('bias_correction1', 'float32', [1]);
  const bc2 = b.input('bias_correction2', 'float32', [1]);
  const params = shareLockParamShapes(c);
  const buffers = shareLockBufferShapes(c);
  const p = new Map<string, Value>();
  for (const [name, shape] of params) p.set(name, b.input(`p/${name}`, 'float32', shape));
  for (const [name, shape] of buffers) p.set(name, b.input(`b/${name}`, 'float32', shape));
  const state = new Map<string, [Value, Value]>();
  for (const [name, shape] of params)
    state.set(name, [b.input(`m/${name}`, 'float32', shape), b.input(`v/${name}`, 'float32', shape)]);

  const param = (name: string) => {
    const v = p.get(name);
    if (!v) throw new Error(`no ShareLock parameter ${name}`);
    return v;
  };
  const { out: textEmb, running } = b.scope('language_projector', () =>
    languageProjector(b, c, text, param, { masks, batch: B }),
  );
  const image = b.scope('vision_projector', () => l2Normalize(b, vision));
  const { loss, shifts } = shareLockLoss(b, image, textEmb);
  const wrt = [...params.keys()].map(param);
  const grads = gradients(b, loss, wrt, shifts);
  const raw = [...params.keys()].map((n) => grads.get(param(n).name) as Value);
  const norm = globalNorm(b, raw);
  const clipped = clipByGlobalNorm(b, raw, maxNorm, norm);
  // torch.optim.Adam's weight_decay: g + wd * p after clipping, then plain Adam (no decoupled decay).
  const entries = [...params.keys()].map((name, i) => ({
    name,
    param: param(name),
    grad: b.add(clipped[i] as Value, b.mul(param(name), wd)),
    decay: false,
  }));
  const updated = adamW(b, entries, state, { lr, weightDecay: wd, biasCorrection1: bc1, biasCorrection2: bc2 });
  b.output(loss, 'loss');
  b.output(b.reshape(norm, [1]), 'grad_norm');
  for (const u of updated) {
    b.output(u.param, `p_next/${u.name}`);
    b.output(u.state[0] as Value, `m_next/${u.name}`);
    b.output(u.state[1] as Value, `v_next/${u.name}`);
  }
  for (const [name, v] of running) b.output(v, `b_next/${name}`);
  if (cfg.emitGradients) {
    [...params.keys()].forEach((n, i) => {
      b.output(b.identity(raw[i] as Value), `grad/${n}`);
    });
  }
  return { config: cfg, onnx: toOnnx(b.build()), params, buffers };
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
    private readonly betas: [number, number],
  ) {}

  static async create(
    graph: ShareLockStepGraph,
    settings?: RuntimeSettings,
    betas: [number, number] = [0.9, 0.999],
  ): Promise<ShareLockStepRunner> {
    return new ShareLockStepRunner(graph, await ModelSession.create(graph.onnx, settings), betas);
  }

  get provider(): string {
    return this.session.info.provider;
  }

  /** Runs one step: `state` becomes the next state (step + 1). */
  async step(state: ShareLockState, batch: ShareLockBatch, s: ShareLockScalars): Promise<ShareLockMetrics> {
    const { head: c, batch: B } = this.graph.config;
    const t = (data: Float32Array, dims: readonly number[]) => new ort.Tensor('float32', data, dims as number[]);
    const scalar = (x: number) => t(Float32Array.of(x), [1]);
    const k = state.step + 1;
    const feeds: Record<string, ort.Tensor> = {
      text: t(batch.text, [B, c.textDim]),
      vision: t(batch.vision, [B, c.visionDim]),
      lr: scalar(s.lr),
      wd: scalar(s.weightDecay),
      max_norm: scalar(s.maxNorm),
      bias_correction1: scalar(1 - this.betas[0] ** k),
      bias_correction2: scalar(1 - this.betas[1] ** k),
    };
    if (c.dropout > 0) {
      if (!batch.masks || batch.masks.length !== c.layers - 1)
        throw new Error(`a ShareLock step needs ${c.layers - 1} dropout masks`);
      batch.masks.forEach((m, i) => {
        feeds[`mask_${i}`] = t(m, [B, c.hidden]);
      });
    }
    for (const [name, shape] of this.graph.params) {
      feeds[`p/${name}`] = t(state.params.get(name) as Float32Array, shape);
      feeds[`m/${name}`] = t(state.m.get(name) as Float32Array, shape);
      feeds[`v/${name}`] = t(state.v.get(name) as Float32Array, shape);
    }
    for (const [name, shape] of this.graph.buffers)
      feeds[`b/${name}`] = t(state.buffers.get(name) as Float32Array, shape);
    const out = await this.session.run(feeds);
    const get = (n: string) => (out[n] as ort.Tensor).data as Float32Array;
    for (const name of this.graph.params.keys()) {
      state.params.set(name, get(`p_next/${name}`));
      state.m.set(name, get(`m_next/${name}`));
      state.v.set(name, get(`v_next/${name}`));
    }
    for (const name of this.graph.buffers.keys()) state.buffers.set(name, get(`b_next/${name}`));
    state.step = k;
    const metrics: ShareLockMetrics = { loss: get('loss')[0] as number, gradNorm: get('grad_norm')[0] as number };
    if (this.graph.config.emitGradients)
      metrics.gradients = new Map([...this.graph.params.keys()].map((n) => [n, get(`grad/${n}`)]));
    return metrics;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
