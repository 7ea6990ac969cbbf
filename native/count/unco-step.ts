/**
 * UnCo's counting decoder (lukasknobel/SelfCollages UnCounTRModel.py with its default arguments) and one training
 * step of it as one ONNX graph: the frozen backbone's patch features of the query [B, N, Denc] and the exemplars'
 * features [B, S, Denc] come in as data (S = 0: the reference-less mode, the learned shot token instead); fim_embed
 * on both (shared feature space), the fixed 2-D sin-cos position embedding, `depth` CrossAttentionBlocks
 * (self-attention, cross-attention to the exemplars, MLP), fim_norm, then DensityMapDecoder: log2(patch) stages of
 * Conv3x3 + GroupNorm(8) + ReLU (the last + Conv1x1 to one channel), each followed by bilinear x2 upsampling
 * (align_corners=False). Loss: DensityMSELoss, mean((pred - gt)^2 * mask) with the mask drawn on the host
 * (`lossMask`); count = sum / scaling, clipped at 0. Our autodiff, AdamW with decay on every counting parameter (the
 * official optimiser); the shot token, which has no gradient when exemplars are given, is left alone as torch does.
 * Parameters carry the official state_dict names and shapes (torch layouts; convolutions as MatMuls over
 * channels-last shifted copies, since the autodiff has no Conv rule). Parity: tests/unit/count/unco-parity.test.ts
 * against tools/unco_reference.py.
 */
import { FlaneurError } from '../api/errors.js';
import type { Rng } from '../base/rng.js';
import { gradients } from '../graph/autodiff/grad.js';
import { GraphBuilder } from '../graph/builder.js';
import type { Value } from '../graph/ir.js';
import { toOnnx } from '../graph/onnx.js';
import { adamW, globalNorm, type ParamGroupEntry } from '../graph/optim.js';
import { ModelSession, ort, type RuntimeSettings } from '../runtime/session.js';
import { DeviceState, type StepTransfer } from '../train/device-state.js';
import { loseSimulatedGpu, type TrainState } from '../train/step-runner.js';

export interface UncoConfig {
  /** Feature size of the frozen backbone (ViT-B: 768). */
  encoderDim: number;
  /** Patches per side of the query (224 / 16 = 14). */
  grid: number;
  /** Backbone patch size: the decoder upsamples by it (a power of two). */
  patch: number;
  /** Official defaults: 512, 2, 16, 4, 256. */
  embed: number;
  depth: number;
  heads: number;
  mlpRatio: number;
  upsamplingDim: number;
  /** GroupNorm groups (8). */
  groups?: number;
  /** Exemplars per query; 0 is the reference-less mode. */
  shots: number;
  batch: number;
  /** Density of one object (official density_scaling; collage.ts `scaling`). */
  scaling: number;
  adam?: { beta1?: number; beta2?: number; eps?: number };
}

export const UNCO_DEFAULTS = { embed: 512, depth: 2, heads: 16, mlpRatio: 4, upsamplingDim: 256, groups: 8 } as const;

const SHOT_TOKEN = 'shot_token';

function stages(c: UncoConfig): number {
  const n = Math.log2(c.patch);
  if (!Number.isInteger(n) || n < 1)
    throw new FlaneurError(
      'INVALID_ARGUMENT',
      `The UnCo decoder needs a patch size that is a power of two, not ${c.patch}.`,
    );
  return n;
}

/** The trainable parameters with their official names and torch shapes, in state_dict order. */
export function uncoParamShapes(c: UncoConfig): Map<string, number[]> {
  const d = c.embed;
  const m = new Map<string, number[]>();
  const lin = (name: string, out: number, inp: number) => {
    m.set(`${name}.weight`, [out, inp]);
    m.set(`${name}.bias`, [out]);
  };
  const norm = (name: string, n: number) => {
    m.set(`${name}.weight`, [n]);
    m.set(`${name}.bias`, [n]);
  };
  m.set(SHOT_TOKEN, [c.encoderDim]);
  lin('fim_embed', d, c.encoderDim);
  for (let i = 0; i < c.depth; i++) {
    const p = `fim_blocks.${i}`;
    norm(`${p}.norm0`, d);
    lin(`${p}.selfattn.qkv`, 3 * d, d);
    lin(`${p}.selfattn.proj`, d, d);
    norm(`${p}.norm1`, d);
    for (const w of ['wq', 'wk', 'wv', 'proj']) lin(`${p}.attn.${w}`, d, d);
    norm(`${p}.norm2`, d);
    const hidden = Math.floor(d * c.mlpRatio);
    lin(`${p}.mlp.fc1`, hidden, d);
    lin(`${p}.mlp.fc2`, d, hidden);
  }
  norm('fim_norm', d);
  const n = stages(c);
  let cin = d;
  for (let i = 0; i < n; i++) {
    const p = `pred_head.pred_head.${i}`;
    m.set(`${p}.0.weight`, [c.upsamplingDim, cin, 3, 3]);
    m.set(`${p}.0.bias`, [c.upsamplingDim]);
    norm(`${p}.1`, c.upsamplingDim);
    if (i === n - 1) {
      m.set(`${p}.3.weight`, [1, c.upsamplingDim, 1, 1]);
      m.set(`${p}.3.bias`, [1]);
    }
    cin = c.upsamplingDim;
  }
  return m;
}

/** MAE's get_2d_sincos_pos_embed (float64, then float32): [grid * grid, dim]. */
export function sincosPosEmbed(dim: number, grid: number): Float32Array {
  const out = new Float32Array(grid * grid * dim);
  const half = dim / 2;
  const quarter = half / 2;
  for (let y = 0; y < grid; y++) {
    for (let x = 0; x < grid; x++) {
      const row = (y * grid + x) * dim;
      // The first half encodes the column (meshgrid puts w first), the second the row.
      for (const [offset, pos] of [
        [0, x],
        [half, y],
      ] as const) {
        for (let i = 0; i < quarter; i++) {
          const omega = 1 / 10000 ** (i / quarter);
          out[row + offset + i] = Math.sin(pos * omega);
          out[row + offset + quarter + i] = Math.cos(pos * omega);
        }
      }
    }
  }
  return out;
}

/** Bilinear x2 upsampling (align_corners=False, as F.interpolate) of n samples as a matrix [2n, n]. */
export function upsampleMatrix(n: number): Float32Array {
  const u = new Float32Array(2 * n * n);
  for (let i = 0; i < 2 * n; i++) {
    const src = Math.max((i + 0.5) / 2 - 0.5, 0);
    const i0 = Math.min(Math.floor(src), n - 1);
    const i1 = Math.min(i0 + 1, n - 1);
    const f = src - i0;
    u[i * n + i0] = (u[i * n + i0] as number) + (1 - f);
    u[i * n + i1] = (u[i * n + i1] as number) + f;
  }
  return u;
}

/**
 * The decoder's density map [B, S, S] (S = grid * patch) from query features [B, N, Denc] and exemplar features
 * [B, shots, Denc] (null: the shot token).
 */
export function buildUncoDecoder(
  b: GraphBuilder,
  c: UncoConfig,
  param: (name: string) => Value,
  latent: Value,
  exemplars: Value | null,
): Value {
  const B = c.batch;
  const D = c.embed;
  const H = c.heads;
  const dh = D / H;
  const N = c.grid * c.grid;
  const groups = c.groups ?? UNCO_DEFAULTS.groups;
  const lin = (x: Value, name: string) =>
    b.linear(x, b.transpose(param(`${name}.weight`), [1, 0]), param(`${name}.bias`), name);
  const ln = (x: Value, name: string) => b.layerNorm(x, param(`${name}.weight`), param(`${name}.bias`), 1e-5, name);
  const heads = (x: Value, n: number) => b.transpose(b.reshape(x, [B, n, H, dh]), [0, 2, 1, 3]);
  const attend = (q: Value, k: Value, v: Value, n: number) => {
    const logits = b.mul(b.matmul(q, b.transpose(k, [0, 1, 3, 2])), b.constFloat(dh ** -0.5));
    return b.reshape(b.transpose(b.matmul(b.softmax(logits, -1), v), [0, 2, 1, 3]), [B, n, D]);
  };
  const e0 = exemplars ?? b.expand(b.reshape(param(SHOT_TOKEN), [1, 1, c.encoderDim]), [B, 1, c.encoderDim]);
  const Ne = exemplars ? c.shots : 1;
  let x = b.scope('fim', () => {
    const e = lin(e0, 'fim_embed');
    let h = b.add(lin(latent, 'fim_embed'), b.constFloat([...sincosPosEmbed(D, c.grid)], [1, N, D]));
    for (let i = 0; i < c.depth; i++) {
      const p = `fim_blocks.${i}`;
      h = b.scope(`block${i}`, () => {
        const qkv = b.transpose(
          b.reshape(lin(ln(h, `${p}.norm0`), `${p}.selfattn.qkv`), [B, N, 3, H, dh]),
          [2, 0, 3, 1, 4],
        );
        const part = (j: number) => b.reshape(b.slice(qkv, [j], [j + 1], [0]), [B, H, N, dh]);
        let y = b.add(h, lin(attend(part(0), part(1), part(2), N), `${p}.selfattn.proj`));
        const xn = ln(y, `${p}.norm1`);
        const cross = attend(
          heads(lin(xn, `${p}.attn.wq`), N),
          heads(lin(e, `${p}.attn.wk`), Ne),
          heads(lin(e, `${p}.attn.wv`), Ne),
          N,
        );
        y = b.add(y, lin(cross, `${p}.attn.proj`));
        return b.add(y, lin(b.gelu(lin(ln(y, `${p}.norm2`), `${p}.mlp.fc1`)), `${p}.mlp.fc2`));
      });
    }
    return ln(h, 'fim_norm');
  });
  // Density decoder, channels last: [B, h, w, C].
  return b.scope('decoder', () => {
    let side = c.grid;
    let ch = D;
    x = b.reshape(x, [B, side, side, D]);
    const n = stages(c);
    for (let i = 0; i < n; i++) {
      const p = `pred_head.pred_head.${i}`;
      const co = c.upsamplingDim;
      // Conv3x3, padding 1: the 9 shifted copies of the zero-padded map side by side, times the weight.
      const zr = b.expand(b.constFloat(0), [B, 1, side, ch]);
      const zc = b.expand(b.constFloat(0), [B, side + 2, 1, ch]);
      const padded = b.concat([zc, b.concat([zr, x, zr], 1), zc], 2);
      const shifted: Value[] = [];
      for (let ky = 0; ky < 3; ky++)
        for (let kx = 0; kx < 3; kx++) shifted.push(b.slice(padded, [ky, kx], [ky + side, kx + side], [1, 2]));
      const w = b.reshape(b.transpose(param(`${p}.0.weight`), [2, 3, 1, 0]), [9 * ch, co]);
      x = b.add(b.matmul(b.concat(shifted, 3), w), param(`${p}.0.bias`));
      // GroupNorm: each group's channels over the whole map normalised together.
      const g = b.reshape(b.transpose(b.reshape(x, [B, side * side, groups, co / groups]), [0, 2, 1, 3]), [
        B,
        groups,
        (side * side * co) / groups,
      ]);
      const len = (side * side * co) / groups;
      const normed = b.layerNorm(g, b.expand(b.constFloat(1), [len]), b.expand(b.constFloat(0), [len]), 1e-5);
      x = b.reshape(b.transpose(b.reshape(normed, [B, groups, side * side, co / groups]), [0, 2, 1, 3]), [
        B,
        side,
        side,
        co,
      ]);
      x = b.relu(b.add(b.mul(x, param(`${p}.1.weight`)), param(`${p}.1.bias`)));
      ch = co;
      if (i === n - 1) {
        x = b.add(b.matmul(x, b.reshape(param(`${p}.3.weight`), [co, 1])), param(`${p}.3.bias`));
        ch = 1;
      }
      // Bilinear x2 along rows, then along columns.
      const u = b.constFloat([...upsampleMatrix(side)], [2 * side, side]);
      x = b.reshape(b.matmul(u, b.reshape(x, [B, side, side * ch])), [B * 2 * side, side, ch]);
      x = b.reshape(b.matmul(u, x), [B, 2 * side, 2 * side, ch]);
      side *= 2;
    }
    return b.reshape(x, [B, side, side]);
  });
}

export interface UncoStepGraph {
  onnx: Uint8Array;
  params: Map<string, number[]>;
  /** Parameters this graph updates (every one but the shot token when exemplars are given). */
  trainable: string[];
  /** Side of the density map. */
  size: number;
}

export const UNCO_SCALARS = ['lr', 'wd', 'bc1', 'bc2'] as const;

/** One UnCo training step: forward, masked density MSE, gradients, AdamW. `emitGradients` for the parity test. */
export function buildUncoStep(c: UncoConfig, o: { emitGradients?: boolean } = {}): UncoStepGraph {
  const b = new GraphBuilder('unco_step');
  const shapes = uncoParamShapes(c);
  const S = c.grid * c.patch;
  const B = c.batch;
  const latent = b.input('latent', 'float32', [B, c.grid * c.grid, c.encoderDim]);
  const exemplars = c.shots > 0 ? b.input('exemplars', 'float32', [B, c.shots, c.encoderDim]) : null;
  const gt = b.input('density', 'float32', [B, S, S]);
  const mask = b.input('mask', 'float32', [B, S, S]);
  const params = new Map<string, Value>();
  const state = new Map<string, [Value, Value]>();
  for (const [name, shape] of shapes) {
    // The shot token is no input of a graph with exemplars (unused; its state stays on the host as it is).
    if (name === SHOT_TOKEN && exemplars) continue;
    params.set(name, b.input(`p/${name}`, 'float32', shape));
    state.set(name, [b.input(`m/${name}`, 'float32', shape), b.input(`v/${name}`, 'float32', shape)]);
  }
  const s = Object.fromEntries(UNCO_SCALARS.map((n) => [n, b.input(n, 'float32', [])])) as Record<
    (typeof UNCO_SCALARS)[number],
    Value
  >;
  const param = (name: string) => {
    const v = params.get(name);
    if (!v) throw new Error(`no UnCo parameter ${name}`);
    return v;
  };
  const pred = buildUncoDecoder(b, c, param, latent, exemplars);
  const diff = b.sub(pred, gt);
  const loss = b.reduceMean(b.mul(b.mul(diff, diff), mask), [0, 1, 2], false);
  const count = b.max(b.div(b.reduceSum(pred, [1, 2], false), b.constFloat(c.scaling)), b.constFloat(0));

  const trainable = [...shapes.keys()].filter((n) => n !== SHOT_TOKEN || !exemplars);
  const grads = gradients(
    b,
    loss,
    trainable.map((n) => param(n)),
  );
  const raw = trainable.map((n) => {
    const g = grads.get(`p/${n}`);
    if (!g) throw new Error(`no gradient for ${n}`);
    return g;
  });
  const entries: ParamGroupEntry[] = trainable.map((name, i) => ({
    name,
    param: param(name),
    grad: raw[i] as Value,
    decay: true,
  }));
  const updated = adamW(b, entries, state, {
    lr: s.lr,
    weightDecay: s.wd,
    biasCorrection1: s.bc1,
    biasCorrection2: s.bc2,
    ...c.adam,
  });
  b.output(loss, 'loss');
  b.output(pred, 'pred');
  b.output(count, 'count');
  b.output(globalNorm(b, raw), 'grad_norm');
  for (const u of updated) {
    b.output(u.param, `p_next/${u.name}`);
    b.output(u.state[0] as Value, `m_next/${u.name}`);
    b.output(u.state[1] as Value, `v_next/${u.name}`);
  }
  if (o.emitGradients) for (const [i, n] of trainable.entries()) b.output(raw[i] as Value, `grad/${n}`);
  return { onnx: toOnnx(b.build()), params: shapes, trainable, size: S };
}

/** The forward pass alone (counting with a trained decoder): outputs `pred` [B, S, S] and `count` [B]. */
export function buildUncoForward(c: UncoConfig): { onnx: Uint8Array; params: Map<string, number[]>; size: number } {
  const b = new GraphBuilder('unco_forward');
  const shapes = uncoParamShapes(c);
  const latent = b.input('latent', 'float32', [c.batch, c.grid * c.grid, c.encoderDim]);
  const exemplars = c.shots > 0 ? b.input('exemplars', 'float32', [c.batch, c.shots, c.encoderDim]) : null;
  const params = new Map([...shapes].map(([n, s]) => [n, b.input(`p/${n}`, 'float32', s)]));
  const pred = buildUncoDecoder(b, c, (n) => params.get(n) as Value, latent, exemplars);
  b.output(pred, 'pred');
  b.output(b.max(b.div(b.reduceSum(pred, [1, 2], false), b.constFloat(c.scaling)), b.constFloat(0)), 'count');
  return { onnx: toOnnx(b.build()), params: shapes, size: c.grid * c.patch };
}

/**
 * Initial parameters as the official initialize_weights: Linear xavier-uniform with zero bias, LayerNorm and
 * GroupNorm ones and zeros, the shot token N(0, 0.02), convolutions torch's default (uniform ±1/sqrt(fan_in)).
 */
export function initUncoParams(c: UncoConfig, rng: Rng, o: { meanCount?: number } = {}): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  const shapes = uncoParamShapes(c);
  // The last layer: the 1x1 convolution to one channel (its bias is the map's level everywhere).
  const last = [...shapes.keys()].filter((n) => n.startsWith('pred_head.') && n.endsWith('.3.bias')).pop();
  for (const [name, shape] of shapes) {
    const n = shape.reduce((a, d) => a * d, 1);
    const t = new Float32Array(n);
    const conv = name.startsWith('pred_head.') && /\.(0|3)\.(weight|bias)$/.test(name);
    const norm = !conv && (name.startsWith('pred_head.') || /norm\d?\.|fim_norm/.test(name));
    if (name === SHOT_TOKEN) for (let i = 0; i < n; i++) t[i] = 0.02 * rng.normal();
    else if (conv) {
      const w = shapes.get(name.replace(/bias$/, 'weight')) as number[];
      const fanIn = (w[1] as number) * (w[2] as number) * (w[3] as number);
      const bound = 1 / Math.sqrt(fanIn);
      for (let i = 0; i < n; i++) t[i] = rng.uniform(-bound, bound);
    } else if (norm) {
      if (name.endsWith('.weight')) t.fill(1);
    } else if (name.endsWith('.weight')) {
      const [fo, fi] = shape as [number, number];
      const bound = Math.sqrt(6 / (fi + fo));
      for (let i = 0; i < n; i++) t[i] = rng.uniform(-bound, bound);
    }
    // Started at the collages' mean density per cell (ours, not the official init): a map that starts at the
    // right level has only the spatial pattern to learn, instead of first growing the bias from 0 (which, with
    // the loss met by a flat map at the mean, held the counter at one answer for every input).
    if (name === last && o.meanCount !== undefined) t.fill((o.meanCount * c.scaling) / (c.grid * c.patch) ** 2);
    out.set(name, t);
  }
  return out;
}

/**
 * DensityMSELoss's mask (defaults: each pixel kept with probability 0.8, drawn per sample; pixels where the target
 * density is positive always kept).
 */
export function lossMask(density: Float32Array, rng: Rng, maskProb = 0.2): Float32Array {
  const m = new Float32Array(density.length);
  for (let i = 0; i < m.length; i++) m[i] = (density[i] as number) > 0 || rng.next() >= maskProb ? 1 : 0;
  return m;
}

/** UnCo's training state: the trainer's `TrainState` holds it (its teacher and centre unused). */
export type UncoState = Pick<TrainState, 'step' | 'params' | 'm' | 'v'>;

export function initialUncoState(
  graph: { params: Map<string, number[]> },
  params: Map<string, Float32Array>,
): UncoState {
  const zeros = (s: number[]) => new Float32Array(s.reduce((a, d) => a * d, 1));
  for (const [name, shape] of graph.params)
    if (params.get(name)?.length !== shape.reduce((a, d) => a * d, 1))
      throw new Error(`initial UnCo parameter ${name} is missing or has the wrong size`);
  return {
    step: 0,
    params: new Map([...params].map(([k, v]) => [k, v.slice()])),
    m: new Map([...graph.params].map(([k, s]) => [k, zeros(s)])),
    v: new Map([...graph.params].map(([k, s]) => [k, zeros(s)])),
  };
}

export interface UncoBatch {
  latent: Float32Array;
  /** [B, shots, Denc]; absent in the reference-less mode. */
  exemplars?: Float32Array;
  density: Float32Array;
  mask: Float32Array;
}

export interface UncoMetrics {
  loss: number;
  gradNorm: number;
  pred: Float32Array;
  count: Float32Array;
  gradients?: Map<string, Float32Array>;
}

/** Feeds the state and a batch to the UnCo step graph and takes the next state from its outputs. */
export class UncoStepRunner {
  private constructor(
    private readonly graph: UncoStepGraph,
    private readonly config: UncoConfig,
    private readonly session: ModelSession,
    private readonly state: DeviceState,
  ) {}

  static async create(graph: UncoStepGraph, config: UncoConfig, settings?: RuntimeSettings): Promise<UncoStepRunner> {
    const pairs = graph.trainable.flatMap((n) =>
      (['p', 'm', 'v'] as const).map((k) => [`${k}/${n}`, `${k}_next/${n}`] as const),
    );
    // A GPU failure is the trainer's to handle (it goes on on the CPU from its checkpoint).
    const session = await ModelSession.create(graph.onnx, settings, {
      keepOnDevice: DeviceState.outputs(pairs),
      cpuFallback: false,
      memoryArena: false,
    });
    const { provider } = session.info;
    const state = new DeviceState(pairs, provider === 'webgpu', provider, settings);
    return new UncoStepRunner(graph, config, session, state);
  }

  get provider(): string {
    return this.session.info.provider;
  }

  get lastTransfer(): StepTransfer | null {
    return this.state.lastTransfer;
  }

  private hostStateFeeds(state: UncoState): Map<string, ort.Tensor> {
    const feeds = new Map<string, ort.Tensor>();
    for (const name of this.graph.trainable) {
      const shape = this.graph.params.get(name) as number[];
      for (const [k, m] of [
        ['p', state.params],
        ['m', state.m],
        ['v', state.v],
      ] as const)
        feeds.set(`${k}/${name}`, new ort.Tensor('float32', m.get(name) as Float32Array, shape));
    }
    return feeds;
  }

  async step(state: UncoState, batch: UncoBatch, s: { lr: number; wd: number }): Promise<UncoMetrics> {
    const c = this.config;
    const t = state.step + 1;
    const [beta1, beta2] = [c.adam?.beta1 ?? 0.9, c.adam?.beta2 ?? 0.999];
    const S = this.graph.size;
    const tensor = (data: Float32Array, shape: number[]) => new ort.Tensor('float32', data, shape);
    const scalar = (x: number) => new ort.Tensor('float32', Float32Array.of(x), []);
    const feeds: Record<string, ort.Tensor> = {
      latent: tensor(batch.latent, [c.batch, c.grid * c.grid, c.encoderDim]),
      density: tensor(batch.density, [c.batch, S, S]),
      mask: tensor(batch.mask, [c.batch, S, S]),
      lr: scalar(s.lr),
      wd: scalar(s.wd),
      bc1: scalar(1 - beta1 ** t),
      bc2: scalar(1 - beta2 ** t),
    };
    if (c.shots > 0) {
      if (!batch.exemplars)
        throw new FlaneurError('INVALID_ARGUMENT', 'This UnCo step counts with exemplars: give them.');
      feeds.exemplars = tensor(batch.exemplars, [c.batch, c.shots, c.encoderDim]);
    }
    await loseSimulatedGpu(this.provider, t, () => this.release());
    // The shot token is a parameter the exemplar graph does not take: it stays in the host state as it is.
    const stateFeeds = this.state.feeds(() => this.hostStateFeeds(state));
    for (const [name, v] of stateFeeds) feeds[name] = v;
    const out = await this.session.run(feeds);
    const get = (n: string) => {
      const v = out[n];
      if (!v) throw new Error(`the UnCo step graph has no output ${n}`);
      if (v.location === 'gpu-buffer') throw new Error(`output ${n} is on the device`);
      return v.data as Float32Array;
    };
    if (!this.state.absorb(feeds, stateFeeds, out))
      for (const name of this.graph.trainable) {
        state.params.set(name, get(`p_next/${name}`));
        state.m.set(name, get(`m_next/${name}`));
        state.v.set(name, get(`v_next/${name}`));
      }
    state.step = t;
    const metrics: UncoMetrics = {
      loss: get('loss')[0] as number,
      gradNorm: get('grad_norm')[0] as number,
      pred: get('pred'),
      count: get('count'),
    };
    if (out[`grad/${this.graph.trainable[0]}`])
      metrics.gradients = new Map(this.graph.trainable.map((n) => [n, get(`grad/${n}`)]));
    return metrics;
  }

  /** Copies the state kept on the device into `state` (no-op when the host copy is current). */
  async sync(state: UncoState): Promise<void> {
    await this.state.readInto({ p: state.params, m: state.m, v: state.v });
  }

  /** The parameters as a forward pass on the same device takes them (GPU tensors while the state lives there). */
  weights(state: UncoState): Map<string, Float32Array | ort.Tensor> {
    return new Map(
      [...this.graph.params.keys()].map((n) => [n, this.state.get(`p/${n}`) ?? (state.params.get(n) as Float32Array)]),
    );
  }

  async release(): Promise<void> {
    await this.state.release();
    await this.session.release();
  }
}
