/**
 * DINOv3 ViT weights: the official facebookresearch/dinov3 names (storage_tokens, rope_embed.periods, blocks.N with
 * attn.qkv + bias_mask, mlp.fc1/fc2 or mlp.w1/w2/w3) and Hugging Face DINOv3ViTModel names (embeddings.*,
 * layer.N.attention.q/k/v/o_proj, layer_scale1.lambda1, mlp.up/down(/gate)_proj). Mapped to Flaneur's canonical
 * names (those of vit.ts); the key bias is multiplied by its mask as the official model does.
 */
import os from 'node:os';
import { FlaneurError } from '../api/errors.js';
import { IMAGENET_MEAN, IMAGENET_STD } from './preprocess.js';
import type { WeightFile } from './safetensors.js';
import { type ViTConfig, vitParamCount, vitParamShapes } from './vit.js';

export type Dinov3Scheme = 'dinov3' | 'hf-dinov3';

export interface Dinov3Config {
  num_attention_heads?: number;
  layer_norm_eps?: number;
  rope_theta?: number;
}

/** Largest model whose f32 weights fit inline in one ONNX protobuf (2 GiB, with room for the graph). */
const MAX_WEIGHT_BYTES = 1.9 * 2 ** 30;

export function isDinov3(has: (n: string) => boolean): Dinov3Scheme | null {
  if (has('embeddings.cls_token') && has('layer.0.attention.q_proj.weight')) return 'hf-dinov3';
  if (has('cls_token') && has('blocks.0.attn.qkv.weight') && !has('pos_embed')) {
    if (has('storage_tokens') || has('rope_embed.periods') || has('register_tokens')) return 'dinov3';
  }
  return null;
}

function invalid(message: string): FlaneurError {
  return new FlaneurError('INVALID_MODEL', message);
}

/** Refuses an architecture too large to run here, before any weight is read. */
export function checkModelFits(c: ViTConfig, source: string, totalMemory = os.totalmem()): void {
  const params = vitParamCount(c);
  const bytes = params * 4;
  const gb = (n: number) => `${(n / 2 ** 30).toFixed(1)} GB`;
  if (bytes > MAX_WEIGHT_BYTES) {
    throw new FlaneurError(
      'UNSUPPORTED_MODEL',
      `${source} is too large for Flaneur: ${(params / 1e6).toFixed(0)}M parameters (${gb(bytes)} as float32), and its ONNX graphs hold weights inline, at most about 1.9 GB (ViT-L/16, 300M parameters, is the largest that fits). Use a smaller model of the family (S/16, S+/16, B/16 or L/16).`,
    );
  }
  if (bytes * 3 > totalMemory) {
    throw new FlaneurError(
      'UNSUPPORTED_MODEL',
      `${source} needs about ${gb(bytes * 3)} of memory to import and run (${gb(bytes)} of weights); this machine has ${gb(totalMemory)}. Use a smaller model.`,
    );
  }
}

/**
 * The number of attention heads: as given, else config.json's, else the file's `heads` metadata, else width / 64;
 * refused unless it splits the width into heads of a multiple of `headMultiple` channels.
 */
export function attentionHeads(
  file: WeightFile,
  options: { heads?: number; hfConfig?: { num_attention_heads?: number } | null },
  dim: number,
  source: string,
  headMultiple = 1,
): number {
  const metaHeads = Number(file.metadata.heads ?? Number.NaN);
  const heads =
    options.heads ?? options.hfConfig?.num_attention_heads ?? (Number.isFinite(metaHeads) ? metaHeads : dim / 64);
  if (!Number.isInteger(heads) || heads <= 0 || dim % (headMultiple * heads) !== 0) {
    throw new FlaneurError(
      'UNSUPPORTED_MODEL',
      `${source}: cannot tell the number of attention heads for width ${dim}; give it in the Attention heads field of the Models view, under Import a file (flaneur models import --heads N on the command line; ViT-S has 6, ViT-B 12), or place the model's config.json beside the file.`,
    );
  }
  return heads;
}

export function importDinov3(
  file: WeightFile,
  names: string[],
  byName: Map<string, string>,
  scheme: Dinov3Scheme,
  source: string,
  options: { heads?: number; lnEps?: number; hfConfig?: Dinov3Config | null },
): { config: ViTConfig; weights: Map<string, Float32Array>; ignored: string[] } {
  const has = (n: string) => byName.has(n);
  const shapeOf = (n: string) => file.tensors.get(byName.get(n) as string)?.shape ?? [];
  const hf = scheme === 'hf-dinov3';
  const blockRe = hf ? /^layer\.(\d+)\./ : /^blocks\.(\d+)\./;
  const depth = 1 + Math.max(...names.map((n) => Number(blockRe.exec(n)?.[1] ?? -1)));
  const clsName = hf ? 'embeddings.cls_token' : 'cls_token';
  const dim = shapeOf(clsName).at(-1) ?? 0;
  const regName = hf ? 'embeddings.register_tokens' : has('storage_tokens') ? 'storage_tokens' : 'register_tokens';
  const registers = has(regName) ? (shapeOf(regName)[1] ?? 0) : 0;
  const patchName = hf ? 'embeddings.patch_embeddings.weight' : 'patch_embed.proj.weight';
  const patchSize = shapeOf(patchName)[2] ?? 0;
  const swiglu = hf ? has('layer.0.mlp.gate_proj.weight') : has('blocks.0.mlp.w1.weight');
  const fc1 = hf ? 'layer.0.mlp.up_proj.weight' : swiglu ? 'blocks.0.mlp.w1.weight' : 'blocks.0.mlp.fc1.weight';
  const mlpHidden = shapeOf(fc1)[0] ?? 0;
  const layerScale = hf ? has('layer.0.layer_scale1.lambda1') : has('blocks.0.ls1.gamma');
  if (!hf && (has('cls_norm.weight') || has('cls_norm.bias'))) {
    throw new FlaneurError(
      'UNSUPPORTED_MODEL',
      `${source} has a separate CLS norm (untie_cls_and_patch_norms); Flaneur supports the published DINOv3 S/16, S+/16, B/16 and L/16 layouts.`,
    );
  }
  // RoPE rotates pairs along two axes: each head's width is a multiple of 4.
  const heads = attentionHeads(file, options, dim, source, 4);
  const hd = dim / heads;
  const used0: string[] = [];
  let ropePeriods: number[];
  const periodsName = 'rope_embed.periods';
  if (has(periodsName)) {
    ropePeriods = Array.from(file.float32(byName.get(periodsName) as string));
    used0.push(periodsName);
    if (ropePeriods.length !== hd / 4 || !ropePeriods.every((p) => Number.isFinite(p) && p > 0)) {
      throw invalid(
        `${source}: tensor "${byName.get(periodsName)}" has ${ropePeriods.length} RoPE periods; expected ${hd / 4} positive numbers for ${heads} heads of width ${hd}.`,
      );
    }
  } else {
    // Hugging Face keeps no periods: inv_freq = 1 / theta^(4i/head_dim), i.e. periods theta^(4i/head_dim).
    const theta = options.hfConfig?.rope_theta ?? 100;
    ropePeriods = Array.from({ length: hd / 4 }, (_, i) => Math.fround(theta ** ((4 * i) / hd)));
  }
  const config: ViTConfig = {
    family: 'dinov3',
    patchSize,
    dim,
    depth,
    heads,
    mlpHidden,
    registers,
    layerScale,
    lnEps: options.lnEps ?? options.hfConfig?.layer_norm_eps ?? 1e-5,
    posGrid: 224 / patchSize,
    posInterpolation: 'offset',
    ropePeriods,
    mlp: swiglu ? 'swiglu' : 'gelu',
    mean: IMAGENET_MEAN,
    std: IMAGENET_STD,
  };
  checkModelFits(config, source);

  // canonical name -> source names (several are concatenated) or a zero fill of the given length.
  const sources = new Map<string, Array<string | number>>();
  const one = (canonical: string, name: string) => sources.set(canonical, [name]);
  if (hf) {
    one('cls_token', 'embeddings.cls_token');
    if (registers > 0) one('register_tokens', 'embeddings.register_tokens');
    one('patch_embed.proj.weight', 'embeddings.patch_embeddings.weight');
    one('patch_embed.proj.bias', 'embeddings.patch_embeddings.bias');
  } else {
    for (const n of ['cls_token', 'patch_embed.proj.weight', 'patch_embed.proj.bias']) one(n, n);
    if (registers > 0) one('register_tokens', regName);
  }
  one('norm.weight', 'norm.weight');
  one('norm.bias', 'norm.bias');
  for (let i = 0; i < depth; i++) {
    const d = `blocks.${i}.`;
    if (hf) {
      const s = `layer.${i}.`;
      const a = `${s}attention.`;
      sources.set(
        `${d}attn.qkv.weight`,
        ['q', 'k', 'v'].map((n) => `${a}${n}_proj.weight`),
      );
      sources.set(
        `${d}attn.qkv.bias`,
        ['q', 'k', 'v'].map((n) => (has(`${a}${n}_proj.bias`) ? `${a}${n}_proj.bias` : dim)),
      );
      one(`${d}attn.proj.weight`, `${a}o_proj.weight`);
      one(`${d}attn.proj.bias`, `${a}o_proj.bias`);
      for (const k of ['weight', 'bias']) {
        one(`${d}norm1.${k}`, `${s}norm1.${k}`);
        one(`${d}norm2.${k}`, `${s}norm2.${k}`);
        if (swiglu) {
          one(`${d}mlp.w1.${k}`, `${s}mlp.gate_proj.${k}`);
          one(`${d}mlp.w2.${k}`, `${s}mlp.up_proj.${k}`);
          one(`${d}mlp.w3.${k}`, `${s}mlp.down_proj.${k}`);
        } else {
          one(`${d}mlp.fc1.${k}`, `${s}mlp.up_proj.${k}`);
          one(`${d}mlp.fc2.${k}`, `${s}mlp.down_proj.${k}`);
        }
      }
      if (layerScale) {
        one(`${d}ls1.gamma`, `${s}layer_scale1.lambda1`);
        one(`${d}ls2.gamma`, `${s}layer_scale2.lambda1`);
      }
    }
  }
  const expected = vitParamShapes(config);
  if (!hf) for (const k of expected.keys()) if (!sources.has(k)) one(k, k);

  const used = new Set<string>(used0);
  const weights = new Map<string, Float32Array>();
  for (const [canonical, shape] of expected) {
    const parts = sources.get(canonical) ?? [canonical];
    const datas: Float32Array[] = [];
    for (const part of parts) {
      if (typeof part === 'number') {
        datas.push(new Float32Array(part));
        continue;
      }
      const fileName = byName.get(part);
      if (!fileName) throw invalid(`${source}: missing tensor "${part}" (needed for ${canonical} of a DINOv3 ViT).`);
      used.add(part);
      datas.push(file.float32(fileName));
    }
    let data = datas.length === 1 ? (datas[0] as Float32Array) : concat(datas);
    const n = shape.reduce((a, x) => a * x, 1);
    if (data.length !== n) {
      throw invalid(
        `${source}: "${parts.join('", "')}" has ${data.length} values; expected shape [${shape.join(',')}] for ${canonical} of this architecture (dim ${dim}, depth ${depth}).`,
      );
    }
    const maskName = canonical.replace(/\.attn\.qkv\.bias$/, '.attn.qkv.bias_mask');
    if (!hf && maskName !== canonical && has(maskName)) {
      // The official LinearKMaskedBias: the key part of the bias is multiplied by 0 (and NaN means untrained).
      const mask = file.float32(byName.get(maskName) as string);
      if (mask.length !== n || mask.some((v) => Number.isNaN(v))) {
        throw invalid(`${source}: tensor "${maskName}" is not a 0/1 mask of the qkv bias (uninitialised weights?).`);
      }
      data = data.map((v, j) => v * (mask[j] as number));
      used.add(maskName);
    }
    weights.set(canonical, data);
  }
  // local_cls_norm is only used in training (untie_global_and_local_cls_norm).
  const ignorable = [/^mask_token$/, /^embeddings\.mask_token$/, /^local_cls_norm\./, /^head\./];
  const ignored: string[] = [];
  for (const n of names) {
    if (used.has(n)) continue;
    if (ignorable.some((r) => r.test(n))) {
      ignored.push(n);
      continue;
    }
    throw invalid(`${source}: unexpected tensor "${byName.get(n)}" for a DINOv3 ViT (dim ${dim}, depth ${depth}).`);
  }
  return { config, weights, ignored };
}

function concat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
