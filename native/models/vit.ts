/**
 * The ViT family (DINO ViT-S/16, B/16, S/8; DINOv2 S/14, B/14, with layer scale and register tokens; DINOv3 with
 * axial 2-D RoPE instead of position embeddings, registers, layer scale, GELU MLP or SwiGLU) built with the graph
 * builder. Parameters use the official DINO / timm names; importers map other naming schemes to them.
 * One definition serves inference (parameters as initializers), training (parameters as graph inputs) and export.
 */
import type { GraphBuilder } from '../graph/builder.js';
import type { Dim, Value } from '../graph/ir.js';
import { type PosInterpolation, posEmbedMatrix } from './interpolate.js';
import { IMAGENET_MEAN, IMAGENET_STD } from './preprocess.js';

export interface ViTConfig {
  family: 'dino' | 'dinov2' | 'dinov3';
  patchSize: number;
  dim: number;
  depth: number;
  heads: number;
  mlpHidden: number;
  /** Register tokens (DINOv2 with registers); 0 for none. */
  registers: number;
  layerScale: boolean;
  lnEps: number;
  /** Side of the square grid the position embeddings were trained on (224/16 = 14, 518/14 = 37). */
  posGrid: number;
  /**
   * DINOv3: the RoPE periods (head_dim / 4 of them, the checkpoint's rope_embed.periods); present means rotary
   * position encoding on the patch tokens' queries and keys, and no learned position embeddings.
   */
  ropePeriods?: readonly number[];
  /** Feed-forward layer: 'gelu' (fc1, GELU, fc2; the default) or 'swiglu' (w3(silu(w1 x) * w2 x)). */
  mlp?: 'gelu' | 'swiglu';
  posInterpolation: PosInterpolation;
  /** Normalisation of input pixels (ImageNet by default). */
  mean: readonly [number, number, number];
  std: readonly [number, number, number];
}

/** Named presets for the published architectures. */
export const VIT_PRESETS = {
  vit_s16: {
    family: 'dino',
    patchSize: 16,
    dim: 384,
    depth: 12,
    heads: 6,
    mlpHidden: 1536,
    registers: 0,
    layerScale: false,
    lnEps: 1e-6,
    posGrid: 14,
  },
  vit_b16: {
    family: 'dino',
    patchSize: 16,
    dim: 768,
    depth: 12,
    heads: 12,
    mlpHidden: 3072,
    registers: 0,
    layerScale: false,
    lnEps: 1e-6,
    posGrid: 14,
  },
  vit_s8: {
    family: 'dino',
    patchSize: 8,
    dim: 384,
    depth: 12,
    heads: 6,
    mlpHidden: 1536,
    registers: 0,
    layerScale: false,
    lnEps: 1e-6,
    posGrid: 28,
  },
  vit_ti16: {
    family: 'dino',
    patchSize: 16,
    dim: 192,
    depth: 12,
    heads: 3,
    mlpHidden: 768,
    registers: 0,
    layerScale: false,
    lnEps: 1e-6,
    posGrid: 14,
  },
  dinov2_s14: {
    family: 'dinov2',
    patchSize: 14,
    dim: 384,
    depth: 12,
    heads: 6,
    mlpHidden: 1536,
    registers: 0,
    layerScale: true,
    lnEps: 1e-6,
    posGrid: 37,
  },
  dinov2_b14: {
    family: 'dinov2',
    patchSize: 14,
    dim: 768,
    depth: 12,
    heads: 12,
    mlpHidden: 3072,
    registers: 0,
    layerScale: true,
    lnEps: 1e-6,
    posGrid: 37,
  },
  dinov2_s14_reg: {
    family: 'dinov2',
    patchSize: 14,
    dim: 384,
    depth: 12,
    heads: 6,
    mlpHidden: 1536,
    registers: 4,
    layerScale: true,
    lnEps: 1e-6,
    posGrid: 37,
  },
  dinov2_b14_reg: {
    family: 'dinov2',
    patchSize: 14,
    dim: 768,
    depth: 12,
    heads: 12,
    mlpHidden: 3072,
    registers: 4,
    layerScale: true,
    lnEps: 1e-6,
    posGrid: 37,
  },
} as const satisfies Record<string, Omit<ViTConfig, 'mean' | 'std' | 'posInterpolation'>>;

export type ViTPreset = keyof typeof VIT_PRESETS;

export function presetConfig(name: ViTPreset): ViTConfig {
  return { ...VIT_PRESETS[name], mean: IMAGENET_MEAN, std: IMAGENET_STD, posInterpolation: 'offset' };
}

/** How many parameters (weights, not bytes) a ViT of this configuration has. */
export function vitParamCount(c: ViTConfig): number {
  let n = 0;
  for (const s of vitParamShapes(c).values()) n += s.reduce((a, d) => a * d, 1);
  return n;
}

/** Every parameter of a ViT with its shape, in the canonical (official DINO / timm) names. */
export function vitParamShapes(c: ViTConfig): Map<string, number[]> {
  const D = c.dim;
  const m = new Map<string, number[]>([['cls_token', [1, 1, D]]]);
  if (!c.ropePeriods) m.set('pos_embed', [1, 1 + c.posGrid * c.posGrid, D]);
  m.set('patch_embed.proj.weight', [D, 3, c.patchSize, c.patchSize]);
  m.set('patch_embed.proj.bias', [D]);
  if (c.registers > 0) m.set('register_tokens', [1, c.registers, D]);
  for (let i = 0; i < c.depth; i++) {
    const p = `blocks.${i}.`;
    m.set(`${p}norm1.weight`, [D]);
    m.set(`${p}norm1.bias`, [D]);
    m.set(`${p}attn.qkv.weight`, [3 * D, D]);
    m.set(`${p}attn.qkv.bias`, [3 * D]);
    m.set(`${p}attn.proj.weight`, [D, D]);
    m.set(`${p}attn.proj.bias`, [D]);
    if (c.layerScale) m.set(`${p}ls1.gamma`, [D]);
    m.set(`${p}norm2.weight`, [D]);
    m.set(`${p}norm2.bias`, [D]);
    if (c.mlp === 'swiglu') {
      for (const w of ['w1', 'w2']) {
        m.set(`${p}mlp.${w}.weight`, [c.mlpHidden, D]);
        m.set(`${p}mlp.${w}.bias`, [c.mlpHidden]);
      }
      m.set(`${p}mlp.w3.weight`, [D, c.mlpHidden]);
      m.set(`${p}mlp.w3.bias`, [D]);
    } else {
      m.set(`${p}mlp.fc1.weight`, [c.mlpHidden, D]);
      m.set(`${p}mlp.fc1.bias`, [c.mlpHidden]);
      m.set(`${p}mlp.fc2.weight`, [D, c.mlpHidden]);
      m.set(`${p}mlp.fc2.bias`, [D]);
    }
    if (c.layerScale) m.set(`${p}ls2.gamma`, [D]);
  }
  m.set('norm.weight', [D]);
  m.set('norm.bias', [D]);
  return m;
}

/**
 * DINOv3's rotary tables for a gh x gw patch grid after `prefix` unrotated tokens (CLS, registers): cos and sin
 * [prefix + gh*gw, head_dim], the prefix rows 1 and 0. A patch centre's coordinates are normalised per axis to
 * [-1, 1] ((i + 0.5) / n * 2 - 1); the angles are 2*pi*coord/period for the row coordinate (head_dim/4 periods)
 * then the column coordinate, and that half-width vector is repeated twice, as rotate-half expects.
 */
export function ropeTables(
  periods: readonly number[],
  gh: number,
  gw: number,
  prefix: number,
): { cos: Float32Array; sin: Float32Array; headDim: number } {
  const q = periods.length;
  const hd = 4 * q;
  const T = prefix + gh * gw;
  const cos = new Float32Array(T * hd);
  const sin = new Float32Array(T * hd);
  for (let t = 0; t < prefix; t++) cos.fill(1, t * hd, (t + 1) * hd);
  const f = Math.fround;
  for (let y = 0; y < gh; y++) {
    for (let x = 0; x < gw; x++) {
      const row = (prefix + y * gw + x) * hd;
      // float32 arithmetic as the reference computes it, so the tables agree to the last bit or two
      const cy = f(f(2 * f(f(y + 0.5) / gh)) - 1);
      const cx = f(f(2 * f(f(x + 0.5) / gw)) - 1);
      for (let i = 0; i < q; i++) {
        const p = periods[i] as number;
        const ay = f(f(f(2 * Math.PI) * cy) / p);
        const ax = f(f(f(2 * Math.PI) * cx) / p);
        for (const [j, a] of [
          [i, ay],
          [q + i, ax],
          [2 * q + i, ay],
          [3 * q + i, ax],
        ] as const) {
          cos[row + j] = Math.cos(a);
          sin[row + j] = Math.sin(a);
        }
      }
    }
  }
  return { cos, sin, headDim: hd };
}

/** rotate_half as a matrix on the last axis: x @ R = [-x[h:], x[:h]] for head_dim 2h. */
export function rotateHalfMatrix(hd: number): Float32Array {
  const h = hd / 2;
  const r = new Float32Array(hd * hd);
  for (let j = 0; j < h; j++) r[(j + h) * hd + j] = -1;
  for (let j = h; j < hd; j++) r[(j - h) * hd + j] = 1;
  return r;
}

export interface ViTOutputsWanted {
  cls?: boolean;
  patches?: boolean;
  /** Last block queries and keys, heads concatenated, for CLS + patch tokens: [B, 1+N, D]. */
  lastQK?: boolean;
  /** CLS-to-patch attention of the last block per head: [B, H, N]. */
  attention?: boolean;
  /** Raw outputs of these blocks (0-based) for CLS + patch tokens: [B, 1+N, D]. */
  blocks?: readonly number[];
}

export interface ViTGraphOutputs {
  cls?: Value;
  patches?: Value;
  q?: Value;
  k?: Value;
  attention?: Value;
  blocks: Map<number, Value>;
  /** Patch grid of the input. */
  grid: { h: number; w: number };
}

/** A parameter by canonical name: an initializer (inference) or a graph input (training). */
export type ParamSource = (name: string) => Value;

export function gridOf(c: ViTConfig, height: number, width: number): { h: number; w: number } {
  if (height % c.patchSize !== 0 || width % c.patchSize !== 0) {
    throw new Error(`input ${height}x${width} is not a multiple of the patch size ${c.patchSize}`);
  }
  return { h: height / c.patchSize, w: width / c.patchSize };
}

/**
 * Builds the forward pass on `pixels` [B, 3, H, W] (already normalised). Attention is computed explicitly
 * (MatMul, Softmax, MatMul) so queries, keys and attention maps can be taken out, or (`fused`) by ONNX Runtime's
 * fused kernels where they are not.
 */
export function buildViT(
  b: GraphBuilder,
  c: ViTConfig,
  param: ParamSource,
  pixels: Value,
  want: ViTOutputsWanted,
  /** 'conv' for inference (one fused kernel); 'matmul' where gradients are needed (MatMul/Reshape rules). */
  patchEmbed: 'conv' | 'matmul' = 'conv',
  /**
   * Stochastic depth: [depth, B] keep masks already divided by the keep probability, drawn by the trainer from its
   * seeded generator (so a resumed run draws the same ones). Each block's residual branches are scaled by its row.
   */
  dropPath?: Value,
  /**
   * The last block's attention output projection with one weight copy per sample (FUNGI's per-sample gradients):
   * weight [S, D, D] (out, in), bias [S, 1, D]; the batch holds S samples × V views, sample-major.
   */
  lastProj?: { weight: Value; bias: Value; samples: number },
  /**
   * Inference on ONNX Runtime: ONNX Runtime's fused com.microsoft kernels (Attention / MultiHeadAttention) where
   * no attention map, query or key is taken out (equal to the plain graph within float rounding; no gradient rules,
   * so never for training graphs).
   */
  fused = false,
): ViTGraphOutputs {
  const [, , H, W] = pixels.shape as [unknown, unknown, number, number];
  const grid = gridOf(c, H, W);
  const N = grid.h * grid.w;
  const D = c.dim;
  const P = c.patchSize;
  const R = c.registers;
  const hd = D / c.heads;
  const out: ViTGraphOutputs = { blocks: new Map(), grid };
  const transposed = (v: Value) => b.transpose(v, [1, 0]);

  let x = b.scope('patch_embed', () => {
    if (patchEmbed === 'conv') {
      const y = b.conv2d(pixels, param('patch_embed.proj.weight'), param('patch_embed.proj.bias'), P, 'proj');
      return b.transpose(b.reshape(y, [0, D, N]), [0, 2, 1]);
    }
    // Patchify as reshape + transpose + matmul: the same numbers as a stride-P convolution, differentiable with
    // the MatMul/Reshape/Transpose gradient rules.
    const r = b.reshape(pixels, [0, 3, grid.h, P, grid.w, P]);
    const t = b.transpose(r, [0, 2, 4, 1, 3, 5]);
    const flat = b.reshape(t, [0, N, 3 * P * P]);
    const w = b.reshape(param('patch_embed.proj.weight'), [D, 3 * P * P]);
    return b.linear(flat, transposed(w), param('patch_embed.proj.bias'), 'proj');
  });

  x = b.scope('embed', () => {
    const batch = pixels.shape[0] as Dim;
    const batchOf = b.gather(b.shapeOf(pixels), b.constInt64([0]), 0);
    const expand = (v: Value, rows: number) =>
      b.expandTo(v, b.concat([batchOf, b.constInt64([rows, D])], 0), [batch, rows, D]);
    if (c.ropePeriods) {
      // DINOv3: no position embeddings; positions enter through RoPE in every block.
      const tokens = [expand(param('cls_token'), 1)];
      if (R > 0) tokens.push(expand(param('register_tokens'), R));
      tokens.push(x);
      return b.concat(tokens, 1, 'tokens');
    }
    const pos = param('pos_embed');
    const clsPos = b.slice(pos, [0], [1], [1]);
    let patchPos = b.slice(pos, [1], [1 + c.posGrid * c.posGrid], [1]);
    if (grid.h !== c.posGrid || grid.w !== c.posGrid) {
      // One constant per output grid, shared by every forward pass of the graph (student, teacher).
      const name = `pos_interp_${grid.h}x${grid.w}`;
      const m =
        b.value(name) ??
        b.initializer(name, posEmbedMatrix(c.posGrid, grid.h, grid.w, c.posInterpolation), [N, c.posGrid * c.posGrid]);
      patchPos = b.matmul(m, patchPos, 'pos_embed interpolation');
    }
    // cls + pos[0] (and the registers, which get no position), expanded over the run-time batch.
    const tokens = [expand(b.add(param('cls_token'), clsPos), 1)];
    if (R > 0) tokens.push(expand(param('register_tokens'), R));
    tokens.push(b.add(x, patchPos));
    return b.concat(tokens, 1, 'tokens');
  });

  const keep = (v: Value) =>
    R > 0 ? b.concat([b.slice(v, [0], [1], [1]), b.slice(v, [1 + R], [1 + R + N], [1])], 1) : v;

  // DINOv3: rotate each head's queries and keys of the patch tokens (x*cos + rotate_half(x)*sin); the prefix
  // tokens' rows are cos 1, sin 0. Tables are constants of this input size, shared by every block.
  let rope: ((t: Value) => Value) | null = null;
  /** The same rotation of per-head queries or keys [B, H, T, hd] (the unfused blocks' layout). */
  let ropeHeads: ((t: Value) => Value) | null = null;
  if (c.ropePeriods) {
    const T = 1 + R + N;
    const tables = ropeTables(c.ropePeriods, grid.h, grid.w, 1 + R);
    if (tables.headDim !== hd) {
      throw new Error(`RoPE has ${c.ropePeriods.length} periods for head dim ${hd}; expected ${hd / 4}`);
    }
    const key = `${grid.h}x${grid.w}`;
    const table = (name: string, data: Float32Array) => b.value(name) ?? b.initializer(name, data, [T, 1, hd]);
    const cosV = table(`rope_cos_${key}`, tables.cos);
    const sinV = table(`rope_sin_${key}`, tables.sin);
    const rot = b.value('rope_rotate_half') ?? b.initializer('rope_rotate_half', rotateHalfMatrix(hd), [hd, hd]);
    const rotate = (x: Value, cos: Value, sin: Value) =>
      b.add(b.mul(x, cos), b.mul(b.matmul(x, rot, 'rope.rotate_half'), sin), 'rope');
    rope = (t: Value) => b.reshape(rotate(b.reshape(t, [0, 0, c.heads, hd]), cosV, sinV), [0, 0, D]);
    let headTables: [Value, Value] | null = null;
    ropeHeads = (t: Value) => {
      headTables ??= [b.reshape(cosV, [T, hd]), b.reshape(sinV, [T, hd])];
      return rotate(t, ...headTables);
    };
  }

  // Fused kernels (inference): blocks whose attention maps, queries and keys are not taken out and that have no
  // stochastic depth run ONNX Runtime's com.microsoft Attention / MultiHeadAttention; a fused block also computes
  // the next block's first norm (or the final norm) from its closing residual sum. The residual sums and norms are
  // plain Add + LayerNormalization, not com.microsoft SkipLayerNormalization: in onnxruntime 1.30's CPU provider
  // the fused kernel took about 5x their time (ORT profile of ViT-S/16 at batch 16: 933 ms vs 199 ms a run).
  const isFused = (i: number) =>
    fused && !dropPath && !(i === c.depth - 1 && (want.lastQK || want.attention || lastProj));
  /** The first norm of the next block (or the final norm), when the previous fused block computed it. */
  let normed: Value | null = null;
  /** The residual sum x + (y + bias) and its layer norm (the plain graph's order of additions). */
  const addNorm = (x: Value, y: Value, w: Value, shift: Value, bias: Value | null, label: string) => {
    const sum = b.add(x, bias ? b.add(y, bias) : y, label);
    return { out: b.layerNorm(sum, w, shift, c.lnEps, label), sum };
  };
  const closingNorm = (i: number) =>
    i + 1 < c.depth
      ? { w: param(`blocks.${i + 1}.norm1.weight`), b: param(`blocks.${i + 1}.norm1.bias`) }
      : { w: param('norm.weight'), b: param('norm.bias') };

  // Only the CLS token wanted out of the last block (embeddings, retrieval): its keys and values still come from
  // every token, but its query, attention output, MLP and final norm are computed for the CLS row alone (about
  // three quarters of a block less work; the same numbers for that row).
  const clsOnly = want.cls && !want.patches && !want.blocks?.includes(c.depth - 1);

  for (let i = 0; i < c.depth; i++) {
    if (isFused(i)) {
      x = b.scope(`block ${i}`, () => {
        const p = `blocks.${i}.`;
        const h = normed ?? b.layerNorm(x, param(`${p}norm1.weight`), param(`${p}norm1.bias`), c.lnEps, 'norm1');
        let ctx: Value;
        let residual = x;
        if (clsOnly && i === c.depth - 1) {
          const qkv = b.linear(h, transposed(param(`${p}attn.qkv.weight`)), param(`${p}attn.qkv.bias`), 'attn.qkv');
          const part = (j: number) => b.slice(qkv, [j * D], [(j + 1) * D], [2]);
          const q = b.slice(rope ? rope(part(0)) : part(0), [0], [1], [1], undefined, 'CLS query');
          ctx = b.fusedMultiHeadAttention(q, rope ? rope(part(1)) : part(1), part(2), c.heads, 'attn');
          residual = b.slice(x, [0], [1], [1], undefined, 'CLS row');
        } else if (rope) {
          const qkv = b.linear(h, transposed(param(`${p}attn.qkv.weight`)), param(`${p}attn.qkv.bias`), 'attn.qkv');
          const part = (j: number) => b.slice(qkv, [j * D], [(j + 1) * D], [2]);
          ctx = b.fusedMultiHeadAttention(rope(part(0)), rope(part(1)), part(2), c.heads, 'attn');
        } else {
          ctx = b.fusedAttention(
            h,
            transposed(param(`${p}attn.qkv.weight`)),
            param(`${p}attn.qkv.bias`),
            c.heads,
            'attn',
          );
        }
        // The branch's bias goes into the skip-layer-norm unless a layer scale comes after it.
        const branch = (y: Value, bias: Value, gamma: string) =>
          c.layerScale ? { y: b.mul(b.add(y, bias), param(`${p}${gamma}`), gamma), bias: null } : { y, bias };
        const a = branch(
          b.matmul(ctx, transposed(param(`${p}attn.proj.weight`)), 'attn.proj'),
          param(`${p}attn.proj.bias`),
          'ls1.gamma',
        );
        const n2 = addNorm(residual, a.y, param(`${p}norm2.weight`), param(`${p}norm2.bias`), a.bias, 'norm2');
        const lin = (t: Value, n: string) =>
          b.linear(t, transposed(param(`${p}mlp.${n}.weight`)), param(`${p}mlp.${n}.bias`), `mlp.${n}`);
        let hidden: Value;
        let outName: string;
        if (c.mlp === 'swiglu') {
          const g = lin(n2.out, 'w1');
          hidden = b.mul(b.mul(g, b.sigmoid(g), 'silu'), lin(n2.out, 'w2'));
          outName = 'w3';
        } else {
          hidden = b.gelu(lin(n2.out, 'fc1'));
          outName = 'fc2';
        }
        const f = branch(
          b.matmul(hidden, transposed(param(`${p}mlp.${outName}.weight`)), `mlp.${outName}`),
          param(`${p}mlp.${outName}.bias`),
          'ls2.gamma',
        );
        const next = closingNorm(i);
        const n1 = addNorm(n2.sum, f.y, next.w, next.b, f.bias, 'residual + next norm');
        normed = n1.out;
        return n1.sum;
      });
      if (want.blocks?.includes(i)) out.blocks.set(i, keep(x));
      continue;
    }
    const last = i === c.depth - 1;
    x = b.scope(`block ${i}`, () => {
      const p = `blocks.${i}.`;
      const h = normed ?? b.layerNorm(x, param(`${p}norm1.weight`), param(`${p}norm1.bias`), c.lnEps, 'norm1');
      normed = null;
      // 1/sqrt(hd) applied to the query rows of the qkv weight and bias ([3D, D] and [3D], constant-folded in an
      // inference graph) rather than to every query, unless the queries themselves are taken out.
      const takeQK = last && want.lastQK;
      const qkvParam = (n: 'weight' | 'bias') => {
        const v = param(`${p}attn.qkv.${n}`);
        if (takeQK) return v;
        const shape = n === 'weight' ? [3 * D, 1] : [3 * D];
        const name = `qkv_query_scale_${D}x${hd}_${n}`;
        const rows = () => Float32Array.from({ length: 3 * D }, (_, j) => (j < D ? hd ** -0.5 : 1));
        return b.mul(v, b.value(name) ?? b.initializer(name, rows(), shape), 'attn.qkv query scale');
      };
      const qkv = b.linear(h, transposed(qkvParam('weight')), qkvParam('bias'), 'attn.qkv');
      // [B, T, 3D] -> [3, B, H, T, hd] in one Transpose, then split into per-head q, k, v (their gradients come
      // back as one Concat and one Transpose, not three Pads, two Adds and three Transposes). The split is of a
      // flat [3, B, H·T·hd] view: ONNX Runtime's transpose optimizer cannot move the Transpose past that Reshape,
      // so q, k and v are kept for the backward pass in the per-head layout the products read (pushed past a
      // Split, the Transpose left them in token layout and the backward transposed each of them again).
      const seq = 1 + R + N;
      const [q0, k0, v] = b
        .split(
          b.reshape(b.transpose(b.reshape(qkv, [0, 0, 3, c.heads, hd]), [2, 0, 3, 1, 4]), [3, 0, -1]),
          [1, 1, 1],
          0,
        )
        .map((t) => b.reshape(t, [-1, c.heads, seq, hd])) as [Value, Value, Value];
      const q = ropeHeads ? ropeHeads(q0) : q0;
      const k = ropeHeads ? ropeHeads(k0) : k0;
      if (takeQK) {
        const tokens = (t: Value) => b.reshape(b.transpose(t, [0, 2, 1, 3]), [0, 0, D]);
        out.q = keep(tokens(q));
        out.k = keep(tokens(k));
      }
      const qh = takeQK ? b.mul(q, b.constFloat(hd ** -0.5)) : q;
      const attn = b.softmax(b.matmul(qh, b.transpose(k, [0, 1, 3, 2]), 'attn.scores'), -1);
      if (last && want.attention) {
        const row = b.slice(attn, [0, 1 + R], [1, 1 + R + N], [2, 3]); // [B,H,1,N]
        out.attention = b.reshape(row, [0, c.heads, N]);
      }
      const ctx = b.reshape(b.transpose(b.matmul(attn, v, 'attn.context'), [0, 2, 1, 3]), [0, 0, D]);
      let a: Value;
      if (last && lastProj) {
        // [S·V, T, D] -> [S, V·T, D]: every view of a sample goes through that sample's own copy of the weights.
        const T = 1 + R + N;
        const perSample = b.reshape(ctx, [lastProj.samples, -1, D]);
        const y = b.add(
          b.matmul(perSample, b.transpose(lastProj.weight, [0, 2, 1]), 'attn.proj'),
          lastProj.bias,
          'attn.proj.bias',
        );
        a = b.reshape(y, [-1, T, D]);
      } else {
        a = b.linear(ctx, transposed(param(`${p}attn.proj.weight`)), param(`${p}attn.proj.bias`), 'attn.proj');
      }
      if (c.layerScale) a = b.mul(a, param(`${p}ls1.gamma`), 'ls1');
      const keepRow = dropPath ? b.reshape(b.slice(dropPath, [i], [i + 1], [0]), [-1, 1, 1]) : null;
      if (keepRow) a = b.mul(a, keepRow, 'drop_path');
      const x1 = b.add(x, a);
      const h2 = b.layerNorm(x1, param(`${p}norm2.weight`), param(`${p}norm2.bias`), c.lnEps, 'norm2');
      const lin = (t: Value, n: string) =>
        b.linear(t, transposed(param(`${p}mlp.${n}.weight`)), param(`${p}mlp.${n}.bias`), `mlp.${n}`);
      let f2: Value;
      if (c.mlp === 'swiglu') {
        const g = lin(h2, 'w1');
        f2 = lin(b.mul(b.mul(g, b.sigmoid(g), 'silu'), lin(h2, 'w2')), 'w3');
      } else {
        f2 = lin(b.gelu(lin(h2, 'fc1')), 'fc2');
      }
      if (c.layerScale) f2 = b.mul(f2, param(`${p}ls2.gamma`), 'ls2');
      if (keepRow) f2 = b.mul(f2, keepRow, 'drop_path');
      return b.add(x1, f2);
    });
    if (want.blocks?.includes(i)) out.blocks.set(i, keep(x));
  }

  const final = normed ?? b.layerNorm(x, param('norm.weight'), param('norm.bias'), c.lnEps, 'norm');
  if (want.cls) out.cls = b.reshape(b.slice(final, [0], [1], [1]), [0, D]);
  if (want.patches) out.patches = b.slice(final, [1 + R], [1 + R + N], [1]);
  return out;
}

/** The patch rows of per-image token rows [count, 1 + n, d] (the CLS row of each image dropped): [count, n, d]. */
export function patchRows(tokens: Float32Array, count: number, n: number, d: number): Float32Array {
  const out = new Float32Array(count * n * d);
  for (let b = 0; b < count; b++) out.set(tokens.subarray((b * (n + 1) + 1) * d, (b + 1) * (n + 1) * d), b * n * d);
  return out;
}
