/**
 * The ShareLock head (JonaRuthardt/ShareLock, MIT): what is trained on precomputed features.
 * - Language projector (sharelock/models/projection.py): (Linear, BatchNorm1d, ReLU, Dropout 0.2) × (layers − 1),
 *   then Linear to the embedding size, L2-normalised. Parameter names are the official state dict's
 *   (`language_projector.projection.{4i}.weight` for Linear i, `{4i+1}` for its BatchNorm).
 * - Vision projector with 0 layers (the default): the vision feature L2-normalised, so the embedding size is the
 *   vision width (model.py: embedding_space_dim = image_feature_size when the vision side has no layers).
 * - Loss (utils/misc.py): transformers' clip_loss of exp(2.6592) · image @ text.T, the mean of the cross-entropy
 *   over rows and over columns with the diagonal as targets. Written without a [B, B] identity:
 *   loss = (mean_i LSE(row i) + mean_j LSE(column j)) / 2 − mean_i s_ii.
 * - Schedule: transformers' get_cosine_schedule_with_warmup (linear from 0, then half a cosine to 0).
 */
import { FlaneurError } from '../api/errors.js';
import type { Rng } from '../base/rng.js';
import { GraphBuilder } from '../graph/builder.js';
import type { Value } from '../graph/ir.js';
import { toOnnx } from '../graph/onnx.js';
import { encodeSafetensors, type WeightFile } from '../models/safetensors.js';

/** exp(2.6592) = 14.285…: CLIP's initial temperature, fixed in ShareLock. */
export const SHARELOCK_LOGIT_SCALE = Math.exp(2.6592);

export interface ShareLockConfig {
  /** Width of the LLM's text features (Meta-Llama-3-8B: 4096). */
  textDim: number;
  /** Width of the vision features (DINOv2 ViT-S/14: 384); also the embedding size. */
  visionDim: number;
  /** Hidden width of the language projector (official default 4096). */
  hidden: number;
  /** Linear layers of the language projector (official default 4). */
  layers: number;
  dropout: number;
  bnEps: number;
  bnMomentum: number;
}

export const SHARELOCK_DEFAULTS = { hidden: 4096, layers: 4, dropout: 0.2, bnEps: 1e-5, bnMomentum: 0.1 } as const;

export function shareLockConfig(textDim: number, visionDim: number, o: Partial<ShareLockConfig> = {}): ShareLockConfig {
  const c = { ...SHARELOCK_DEFAULTS, textDim, visionDim, ...o };
  if (!Number.isInteger(c.layers) || c.layers < 1) throw new Error('the language projector needs at least 1 layer');
  return c;
}

const P = 'language_projector.projection';

/** Trainable parameters with their shapes, in the official state dict's names and order. */
export function shareLockParamShapes(c: ShareLockConfig): Map<string, number[]> {
  const m = new Map<string, number[]>();
  let inp = c.textDim;
  for (let i = 0; i < c.layers - 1; i++) {
    m.set(`${P}.${4 * i}.weight`, [c.hidden, inp]);
    m.set(`${P}.${4 * i}.bias`, [c.hidden]);
    m.set(`${P}.${4 * i + 1}.weight`, [c.hidden]);
    m.set(`${P}.${4 * i + 1}.bias`, [c.hidden]);
    inp = c.hidden;
  }
  m.set(`${P}.${4 * (c.layers - 1)}.weight`, [c.visionDim, inp]);
  m.set(`${P}.${4 * (c.layers - 1)}.bias`, [c.visionDim]);
  return m;
}

/** BatchNorm running statistics (buffers, not trained): running_mean and running_var per hidden layer. */
export function shareLockBufferShapes(c: ShareLockConfig): Map<string, number[]> {
  const m = new Map<string, number[]>();
  for (let i = 0; i < c.layers - 1; i++) {
    m.set(`${P}.${4 * i + 1}.running_mean`, [c.hidden]);
    m.set(`${P}.${4 * i + 1}.running_var`, [c.hidden]);
  }
  return m;
}

/** PyTorch's default initialisation: Linear U(±1/√in) for weight and bias, BatchNorm γ 1 β 0, running 0 / 1. */
export function initShareLock(
  c: ShareLockConfig,
  rng: Rng,
): { params: Map<string, Float32Array>; buffers: Map<string, Float32Array> } {
  const params = new Map<string, Float32Array>();
  for (const [name, shape] of shareLockParamShapes(c)) {
    const n = shape.reduce((a, d) => a * d, 1);
    const index = Number(name.split('.')[2]);
    if (index % 4 === 1) params.set(name, new Float32Array(n).fill(name.endsWith('weight') ? 1 : 0));
    else {
      const fanIn = (shareLockParamShapes(c).get(`${P}.${index}.weight`) as number[])[1] as number;
      const bound = 1 / Math.sqrt(fanIn);
      params.set(
        name,
        Float32Array.from({ length: n }, () => rng.uniform(-bound, bound)),
      );
    }
  }
  const buffers = new Map<string, Float32Array>();
  for (const [name, shape] of shareLockBufferShapes(c)) {
    buffers.set(name, new Float32Array(shape[0] as number).fill(name.endsWith('running_var') ? 1 : 0));
  }
  return { params, buffers };
}

/** get_cosine_schedule_with_warmup's multiplier at optimizer step `step` (0-based; the first step's lr is 0). */
export function shareLockLrFactor(step: number, warmup: number, total: number): number {
  if (step < warmup) return step / Math.max(1, warmup);
  const progress = (step - warmup) / Math.max(1, total - warmup);
  return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * progress)));
}

/** x / ‖x‖ per row. */
export function l2Normalize(b: GraphBuilder, x: Value): Value {
  return b.div(x, b.sqrt(b.reduceSum(b.mul(x, x), [-1], true)));
}

/**
 * The language projector in evaluation: BatchNorm with the running statistics folded to one scale and shift, no
 * dropout. Training (batch statistics, running-statistics updates, masks, and BatchNorm's backward by hand) is
 * sharelock-projector-step.ts's `projectorStep`.
 */
export function languageProjector(
  b: GraphBuilder,
  c: ShareLockConfig,
  x: Value,
  param: (name: string) => Value,
  /** A Linear weight already transposed to [in, out] (inference graphs store them so); default: `param`'s [out, in]. */
  weightT?: (name: string) => Value,
): Value {
  // One Gemm per Linear, bias included; an [out, in] weight is read transposed by Gemm (transB).
  const linear = (h: Value, i: number) =>
    weightT
      ? b.gemm(h, weightT(`${P}.${i}.weight`), param(`${P}.${i}.bias`), {}, 'linear')
      : b.gemm(h, param(`${P}.${i}.weight`), param(`${P}.${i}.bias`), { transB: true }, 'linear');
  let h = x;
  for (let i = 0; i < c.layers - 1; i++) {
    h = b.scope(`layer ${i}`, () => {
      const lin = linear(h, 4 * i);
      const bn = `${P}.${4 * i + 1}`;
      const eps = b.constFloat(c.bnEps);
      const scale = b.div(param(`${bn}.weight`), b.sqrt(b.add(param(`${bn}.running_var`), eps)));
      const shift = b.sub(param(`${bn}.bias`), b.mul(param(`${bn}.running_mean`), scale));
      return b.relu(b.add(b.mul(lin, scale), shift));
    });
  }
  return l2Normalize(b, linear(h, 4 * (c.layers - 1)));
}

/**
 * ShareLock's loss of normalised image and text embeddings [B, E]. Returns the loss and the max shifts of the
 * log-sum-exps (pass them to `gradients(..., stop)`: the shift does not change the value).
 */
export function shareLockLoss(b: GraphBuilder, image: Value, text: Value): { loss: Value; shifts: Value[] } {
  return b.scope('clip_loss', () => {
    const scale = b.constFloat(SHARELOCK_LOGIT_SCALE);
    const sim = b.mul(b.matmul(image, b.transpose(text, [1, 0])), scale);
    const lse = (axis: number) => {
      const shift = b.reduceMax(sim, [axis], true);
      const v = b.add(b.log(b.reduceSum(b.exp(b.sub(sim, shift)), [axis], true)), shift);
      return { v: b.reduceMean(v, [0, 1], false), shift };
    };
    const rows = lse(1);
    const cols = lse(0);
    const diag = b.reduceMean(b.mul(b.reduceSum(b.mul(image, text), [1], false), scale), [0], false);
    const loss = b.sub(b.mul(b.add(rows.v, cols.v), b.constFloat(0.5)), diag);
    return { loss: b.reshape(loss, [1]), shifts: [rows.shift, cols.shift] };
  });
}

/**
 * Inference: text features [n, textDim] → normalised embeddings [n, visionDim] with the running statistics
 * (for zero-shot class prototypes and text queries); parameters and buffers as initializers.
 */
export function buildTextProjector(c: ShareLockConfig, weights: ReadonlyMap<string, Float32Array>): Uint8Array {
  const b = new GraphBuilder('sharelock_text');
  const x = b.input('text', 'float32', ['n', c.textDim]);
  const shapes = new Map([...shareLockParamShapes(c), ...shareLockBufferShapes(c)]);
  const param = (name: string) => {
    const shape = shapes.get(name);
    const data = weights.get(name);
    if (!shape || !data) throw new Error(`ShareLock weights lack ${name}`);
    return b.value(name) ?? b.initializer(name, data, shape);
  };
  const weightT = (name: string) => {
    const [out, inp] = shapes.get(name) as [number, number];
    const w = weights.get(name) as Float32Array;
    const t = new Float32Array(w.length);
    for (let r = 0; r < out; r++) for (let k = 0; k < inp; k++) t[k * out + r] = w[r * inp + k] as number;
    return b.initializer(`${name}.T`, t, [inp, out]);
  };
  b.output(languageProjector(b, c, x, param, weightT), 'embedding');
  return toOnnx(b.build());
}

/** Metadata key of a ShareLock head's configuration in its .safetensors file. */
export const SHARELOCK_META_KEY = 'flaneur.sharelock';

export interface ShareLockWeights {
  config: ShareLockConfig;
  /** Parameters and BatchNorm running statistics in the official state dict's names and layouts. */
  tensors: Map<string, Float32Array>;
}

/**
 * A trained head as .safetensors: every parameter and running statistic under its official name (what an official
 * Lightning checkpoint's state_dict holds, so the two read alike), the configuration in the metadata with
 * whatever provenance the caller adds (the language model and vision encoder it was trained for).
 */
export function encodeShareLockWeights(w: ShareLockWeights, metadata: Record<string, string> = {}): Buffer {
  const shapes = new Map([...shareLockParamShapes(w.config), ...shareLockBufferShapes(w.config)]);
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [name, shape] of shapes) {
    const data = w.tensors.get(name);
    if (!data || data.length !== shape.reduce((a, d) => a * d, 1)) throw new Error(`ShareLock weights lack ${name}`);
    tensors.set(name, { shape, data });
  }
  return encodeSafetensors(tensors, { ...metadata, [SHARELOCK_META_KEY]: JSON.stringify(w.config) });
}

/** Reads a head written by `encodeShareLockWeights`; a file without its configuration or tensors is refused. */
export function readShareLockWeights(file: WeightFile, source: string): ShareLockWeights {
  const raw = file.metadata[SHARELOCK_META_KEY];
  let config: ShareLockConfig;
  try {
    const c = JSON.parse(raw ?? '') as Partial<ShareLockConfig>;
    const ok = ['textDim', 'visionDim', 'hidden', 'layers', 'dropout', 'bnEps', 'bnMomentum'].every(
      (k) => typeof c[k as keyof ShareLockConfig] === 'number',
    );
    if (!ok) throw new Error('fields');
    config = shareLockConfig(c.textDim as number, c.visionDim as number, c);
  } catch {
    throw new FlaneurError(
      'INVALID_MODEL',
      `${source} is not a ShareLock head saved by Flaneur: it has no valid configuration.`,
    );
  }
  const tensors = new Map<string, Float32Array>();
  for (const [name, shape] of [...shareLockParamShapes(config), ...shareLockBufferShapes(config)]) {
    const t = file.tensors.get(name);
    if (!t || t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new FlaneurError('INVALID_MODEL', `${source} lacks ${name} of shape [${shape.join(', ')}].`);
    }
    tensors.set(name, file.float32(name));
  }
  return { config, tensors };
}
