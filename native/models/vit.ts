/**
 * The ViT family (DINO ViT-S/16, B/16, S/8; DINOv2 S/14, B/14, with layer scale and register tokens) built with
 * the graph builder. Parameters use the official DINO / timm names; importers map other naming schemes to them.
 * One definition serves inference (parameters as initializers), training (parameters as graph inputs) and export.
 */
import type { GraphBuilder } from '../graph/builder.js';
import type { Dim, Value } from '../graph/ir.js';
import { type PosInterpolation, posEmbedMatrix } from './interpolate.js';
import { IMAGENET_MEAN, IMAGENET_STD } from './preprocess.js';

export interface ViTConfig {
  family: 'dino' | 'dinov2';
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

/** Every parameter of a ViT with its shape, in the canonical (official DINO / timm) names. */
export function vitParamShapes(c: ViTConfig): Map<string, number[]> {
  const D = c.dim;
  const m = new Map<string, number[]>([
    ['cls_token', [1, 1, D]],
    ['pos_embed', [1, 1 + c.posGrid * c.posGrid, D]],
    ['patch_embed.proj.weight', [D, 3, c.patchSize, c.patchSize]],
    ['patch_embed.proj.bias', [D]],
  ]);
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
    m.set(`${p}mlp.fc1.weight`, [c.mlpHidden, D]);
    m.set(`${p}mlp.fc1.bias`, [c.mlpHidden]);
    m.set(`${p}mlp.fc2.weight`, [D, c.mlpHidden]);
    m.set(`${p}mlp.fc2.bias`, [D]);
    if (c.layerScale) m.set(`${p}ls2.gamma`, [D]);
  }
  m.set('norm.weight', [D]);
  m.set('norm.bias', [D]);
  return m;
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
 * (MatMul, Softmax, MatMul) so queries, keys and attention maps can be taken out.
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
    const batch = pixels.shape[0] as Dim;
    const batchOf = b.gather(b.shapeOf(pixels), b.constInt64([0]), 0);
    const expand = (v: Value, rows: number) =>
      b.expandTo(v, b.concat([batchOf, b.constInt64([rows, D])], 0), [batch, rows, D]);
    const tokens = [expand(b.add(param('cls_token'), clsPos), 1)];
    if (R > 0) tokens.push(expand(param('register_tokens'), R));
    tokens.push(b.add(x, patchPos));
    return b.concat(tokens, 1, 'tokens');
  });

  const keep = (v: Value) =>
    R > 0 ? b.concat([b.slice(v, [0], [1], [1]), b.slice(v, [1 + R], [1 + R + N], [1])], 1) : v;

  for (let i = 0; i < c.depth; i++) {
    const last = i === c.depth - 1;
    x = b.scope(`block ${i}`, () => {
      const p = `blocks.${i}.`;
      const h = b.layerNorm(x, param(`${p}norm1.weight`), param(`${p}norm1.bias`), c.lnEps, 'norm1');
      const qkv = b.linear(h, transposed(param(`${p}attn.qkv.weight`)), param(`${p}attn.qkv.bias`), 'attn.qkv');
      const part = (j: number) => b.slice(qkv, [j * D], [(j + 1) * D], [2]);
      const q = part(0);
      const k = part(1);
      const v = part(2);
      if (last && want.lastQK) {
        out.q = keep(q);
        out.k = keep(k);
      }
      const heads = (t: Value) => b.transpose(b.reshape(t, [0, 0, c.heads, hd]), [0, 2, 1, 3]);
      const qh = b.mul(heads(q), b.constFloat(hd ** -0.5));
      const kh = b.transpose(b.reshape(k, [0, 0, c.heads, hd]), [0, 2, 3, 1]);
      const attn = b.softmax(b.matmul(qh, kh, 'attn.scores'), -1);
      if (last && want.attention) {
        const row = b.slice(attn, [0, 1 + R], [1, 1 + R + N], [2, 3]); // [B,H,1,N]
        out.attention = b.reshape(row, [0, c.heads, N]);
      }
      const ctx = b.reshape(b.transpose(b.matmul(attn, heads(v), 'attn.context'), [0, 2, 1, 3]), [0, 0, D]);
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
      const f1 = b.gelu(b.linear(h2, transposed(param(`${p}mlp.fc1.weight`)), param(`${p}mlp.fc1.bias`), 'mlp.fc1'));
      let f2 = b.linear(f1, transposed(param(`${p}mlp.fc2.weight`)), param(`${p}mlp.fc2.bias`), 'mlp.fc2');
      if (c.layerScale) f2 = b.mul(f2, param(`${p}ls2.gamma`), 'ls2');
      if (keepRow) f2 = b.mul(f2, keepRow, 'drop_path');
      return b.add(x1, f2);
    });
    if (want.blocks?.includes(i)) out.blocks.set(i, keep(x));
  }

  const normed = b.layerNorm(x, param('norm.weight'), param('norm.bias'), c.lnEps, 'norm');
  if (want.cls) out.cls = b.reshape(b.slice(normed, [0], [1], [1]), [0, D]);
  if (want.patches) out.patches = b.slice(normed, [1 + R], [1 + R + N], [1]);
  return out;
}
