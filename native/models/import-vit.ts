/**
 * Imports ViT weights from .safetensors: the official DINO / DINOv2 / timm names, or Hugging Face transformers
 * (ViTModel for DINO, Dinov2Model with or without registers). The architecture is read from the tensors; every
 * missing, unexpected or mis-shaped tensor is an error that names it.
 */
import fs from 'node:fs';
import path from 'node:path';
import { FlaneurError } from '../api/errors.js';
import { IMAGENET_MEAN, IMAGENET_STD } from './preprocess.js';
import { type CheckpointSelection, parsePytorchCheckpoint } from './pytorch.js';
import { encodeSafetensors, parseSafetensors, type TensorToWrite, type WeightFile } from './safetensors.js';
import { type ViTConfig, vitParamShapes } from './vit.js';

export type NamingScheme = 'official' | 'hf-vit' | 'hf-dinov2';

export interface ImportedViT {
  config: ViTConfig;
  /** Canonical (official) name -> float32 data. */
  weights: Map<string, Float32Array>;
  scheme: NamingScheme;
  /** dtype of the file's weights (F32, F16 or BF16). */
  sourceDtype: string;
  /** Tensors present in the file that inference does not use (mask token, pooler, classification head). */
  ignored: string[];
  /** For a PyTorch checkpoint: which state dict was taken, the prefix removed and the heads dropped. */
  checkpoint?: CheckpointSelection;
}

export interface ImportOptions {
  heads?: number;
  lnEps?: number;
  posInterpolation?: ViTConfig['posInterpolation'];
}

const PREFIXES = [
  'module.',
  'teacher.backbone.',
  'student.backbone.',
  'backbone.',
  'model.',
  'vit.',
  'dinov2.',
  'encoder.model.',
];
const IGNORABLE = [/^mask_token$/, /^embeddings\.mask_token$/, /^pooler\./, /^heads?\./, /^classifier\./, /^fc_norm\./];

function invalid(message: string): FlaneurError {
  return new FlaneurError('INVALID_MODEL', message);
}

function stripPrefix(names: string[]): { prefix: string; names: string[] } {
  for (const p of PREFIXES) {
    const core = names.filter((n) => !IGNORABLE.some((r) => r.test(n)));
    if (core.length > 0 && core.every((n) => n.startsWith(p))) {
      return { prefix: p, names: names.map((n) => (n.startsWith(p) ? n.slice(p.length) : n)) };
    }
  }
  return { prefix: '', names };
}

interface HfConfig {
  num_attention_heads?: number;
  layer_norm_eps?: number;
}

function readSiblingConfig(file: string): HfConfig | null {
  const cfg = path.join(path.dirname(file), 'config.json');
  if (!fs.existsSync(cfg)) return null;
  try {
    return JSON.parse(fs.readFileSync(cfg, 'utf8')) as HfConfig;
  } catch {
    return null;
  }
}

/** canonical name -> (file name, how to get it). */
function mapNames(scheme: NamingScheme, depth: number, registers: boolean): Map<string, string | string[]> {
  const m = new Map<string, string | string[]>();
  if (scheme === 'official') return m; // identity, filled by the caller
  const e = 'embeddings.';
  m.set('cls_token', `${e}cls_token`);
  m.set('pos_embed', `${e}position_embeddings`);
  m.set('patch_embed.proj.weight', `${e}patch_embeddings.projection.weight`);
  m.set('patch_embed.proj.bias', `${e}patch_embeddings.projection.bias`);
  if (registers) m.set('register_tokens', `${e}register_tokens`);
  m.set('norm.weight', 'layernorm.weight');
  m.set('norm.bias', 'layernorm.bias');
  for (let i = 0; i < depth; i++) {
    const s = `encoder.layer.${i}.`;
    const d = `blocks.${i}.`;
    for (const kind of ['weight', 'bias']) {
      m.set(
        `${d}attn.qkv.${kind}`,
        ['query', 'key', 'value'].map((n) => `${s}attention.attention.${n}.${kind}`),
      );
      m.set(`${d}attn.proj.${kind}`, `${s}attention.output.dense.${kind}`);
      if (scheme === 'hf-vit') {
        m.set(`${d}norm1.${kind}`, `${s}layernorm_before.${kind}`);
        m.set(`${d}norm2.${kind}`, `${s}layernorm_after.${kind}`);
        m.set(`${d}mlp.fc1.${kind}`, `${s}intermediate.dense.${kind}`);
        m.set(`${d}mlp.fc2.${kind}`, `${s}output.dense.${kind}`);
      } else {
        m.set(`${d}norm1.${kind}`, `${s}norm1.${kind}`);
        m.set(`${d}norm2.${kind}`, `${s}norm2.${kind}`);
        m.set(`${d}mlp.fc1.${kind}`, `${s}mlp.fc1.${kind}`);
        m.set(`${d}mlp.fc2.${kind}`, `${s}mlp.fc2.${kind}`);
      }
    }
    if (scheme === 'hf-dinov2') {
      m.set(`${d}ls1.gamma`, `${s}layer_scale1.lambda1`);
      m.set(`${d}ls2.gamma`, `${s}layer_scale2.lambda1`);
    }
  }
  return m;
}

function shapeStr(s: readonly number[]): string {
  return `[${s.join(',')}]`;
}

export function importViT(
  file: WeightFile,
  source: string,
  options: ImportOptions & { hfConfig?: HfConfig | null } = {},
): ImportedViT {
  const original = [...file.tensors.keys()];
  const { prefix, names } = stripPrefix(original);
  const byName = new Map(names.map((n, i) => [n, original[i] as string]));
  const has = (n: string) => byName.has(n);
  const shapeOf = (n: string) => file.tensors.get(byName.get(n) as string)?.shape ?? [];

  if (names.some((n) => /^blocks\.\d+\.mlp\.w12\./.test(n) || /\.mlp\.weights_in\./.test(n))) {
    throw new FlaneurError(
      'UNSUPPORTED_MODEL',
      `${source} uses a SwiGLU MLP (DINOv2 giant); Flaneur supports the ViT-S/B/L style MLP.`,
    );
  }
  let scheme: NamingScheme;
  if (has('cls_token') && has('blocks.0.attn.qkv.weight')) scheme = 'official';
  else if (has('embeddings.cls_token') && has('encoder.layer.0.norm1.weight')) scheme = 'hf-dinov2';
  else if (has('embeddings.cls_token') && has('encoder.layer.0.layernorm_before.weight')) scheme = 'hf-vit';
  else {
    throw new FlaneurError(
      'UNSUPPORTED_MODEL',
      `${source}: unknown architecture. Expected a DINO/DINOv2 ViT in official names (cls_token, blocks.N.attn.qkv.weight) or Hugging Face names (embeddings.cls_token, encoder.layer.N.*); found e.g. ${names.slice(0, 3).join(', ')}.`,
    );
  }

  const blockRe = scheme === 'official' ? /^blocks\.(\d+)\./ : /^encoder\.layer\.(\d+)\./;
  const depth = 1 + Math.max(...names.map((n) => Number(blockRe.exec(n)?.[1] ?? -1)));
  const clsName = scheme === 'official' ? 'cls_token' : 'embeddings.cls_token';
  const dim = shapeOf(clsName).at(-1) ?? 0;
  const regName =
    scheme === 'official' ? (has('register_tokens') ? 'register_tokens' : 'reg_token') : 'embeddings.register_tokens';
  const registers = has(regName) ? (shapeOf(regName)[1] ?? 0) : 0;
  const patchName = scheme === 'official' ? 'patch_embed.proj.weight' : 'embeddings.patch_embeddings.projection.weight';
  const patchSize = shapeOf(patchName)[2] ?? 0;
  const fc1 =
    scheme === 'official'
      ? 'blocks.0.mlp.fc1.weight'
      : scheme === 'hf-vit'
        ? 'encoder.layer.0.intermediate.dense.weight'
        : 'encoder.layer.0.mlp.fc1.weight';
  const mlpHidden = shapeOf(fc1)[0] ?? 0;
  const posName = scheme === 'official' ? 'pos_embed' : 'embeddings.position_embeddings';
  const posTokens = (shapeOf(posName)[1] ?? 1) - 1;
  const posGrid = Math.round(Math.sqrt(posTokens));
  if (posGrid * posGrid !== posTokens) {
    throw invalid(`Tensor "${byName.get(posName)}" has ${posTokens} patch positions, not a square grid.`);
  }
  const layerScale = scheme === 'hf-dinov2' ? has('encoder.layer.0.layer_scale1.lambda1') : has('blocks.0.ls1.gamma');
  const metaHeads = Number(file.metadata.heads ?? Number.NaN);
  const heads =
    options.heads ?? options.hfConfig?.num_attention_heads ?? (Number.isFinite(metaHeads) ? metaHeads : dim / 64);
  if (!Number.isInteger(heads) || heads <= 0 || dim % heads !== 0) {
    throw new FlaneurError(
      'UNSUPPORTED_MODEL',
      `${source}: cannot tell the number of attention heads for width ${dim}; give it explicitly (heads option) or place the model's config.json beside the file.`,
    );
  }
  const family: ViTConfig['family'] =
    scheme === 'hf-dinov2' || layerScale || registers > 0 || patchSize === 14 ? 'dinov2' : 'dino';
  const lnEps = options.lnEps ?? options.hfConfig?.layer_norm_eps ?? (scheme === 'hf-vit' ? 1e-12 : 1e-6);
  const config: ViTConfig = {
    family,
    patchSize,
    dim,
    depth,
    heads,
    mlpHidden,
    registers,
    layerScale,
    lnEps,
    posGrid,
    posInterpolation: options.posInterpolation ?? 'offset',
    mean: IMAGENET_MEAN,
    std: IMAGENET_STD,
  };

  const expected = vitParamShapes(config);
  const mapping = mapNames(scheme, depth, registers > 0);
  if (scheme === 'official') {
    for (const k of expected.keys()) mapping.set(k, k === 'register_tokens' ? regName : k);
  }
  const used = new Set<string>();
  const weights = new Map<string, Float32Array>();
  for (const [canonical, shape] of expected) {
    const src = mapping.get(canonical);
    const parts = Array.isArray(src) ? src : [src as string];
    const datas: Float32Array[] = [];
    for (const part of parts) {
      const fileName = byName.get(part);
      if (!fileName)
        throw invalid(
          `${source}: missing tensor "${prefix}${part}" (needed for ${canonical}, shape ${shapeStr(parts.length > 1 ? [(shape[0] as number) / 3, ...shape.slice(1)] : shape)}).`,
        );
      used.add(part);
      const t = file.tensors.get(fileName);
      if (t && !['F32', 'F16', 'BF16', 'F64'].includes(t.dtype)) {
        throw invalid(`${source}: tensor "${fileName}" is ${t.dtype}; weights must be F32, F16 or BF16.`);
      }
      datas.push(file.float32(fileName));
    }
    const data =
      datas.length === 1 ? (datas[0] as Float32Array) : Float32Array.from(datas.flatMap((d) => Array.from(d)));
    const n = shape.reduce((a, d) => a * d, 1);
    if (data.length !== n) {
      const got =
        parts.length === 1 ? shapeStr(shapeOf(parts[0] as string)) : parts.map((p) => shapeStr(shapeOf(p))).join(' + ');
      throw invalid(
        `${source}: tensor "${prefix}${parts.join('", "')}" has shape ${got}; expected ${shapeStr(shape)} for ${canonical} of this architecture (dim ${dim}, depth ${depth}).`,
      );
    }
    weights.set(canonical, data);
  }
  const ignored: string[] = [];
  for (const n of names) {
    if (used.has(n)) continue;
    if (IGNORABLE.some((r) => r.test(n))) {
      ignored.push(n);
      continue;
    }
    throw invalid(
      `${source}: unexpected tensor "${byName.get(n)}" for a ${family} ViT in ${scheme} names (dim ${dim}, depth ${depth}).`,
    );
  }
  const dtypes = new Set(original.map((n) => file.tensors.get(n)?.dtype));
  return { config, weights, scheme, sourceDtype: [...dtypes].join('+'), ignored };
}

/**
 * A weight file by its content: a PyTorch checkpoint (zip archive, legacy pickle or pre-0.4 tar) or .safetensors.
 */
export function parseWeightFile(buf: Buffer, source: string): WeightFile & { checkpoint?: CheckpointSelection } {
  const safetensors = buf.length > 8 && buf[8] === 0x7b; // the JSON header after the 8-byte length
  const zip = buf.length >= 4 && buf.readUInt32LE(0) === 0x04034b50;
  const pickle = !safetensors && buf.length >= 2 && buf[0] === 0x80 && (buf[1] as number) <= 5;
  const tar = buf.length > 262 && buf.subarray(257, 262).toString('latin1') === 'ustar';
  if (zip || pickle || tar) {
    const ckpt = parsePytorchCheckpoint(buf, source);
    return Object.assign(ckpt, { checkpoint: ckpt.selection });
  }
  return parseSafetensors(buf, source);
}

export function importViTFile(file: string, options: ImportOptions = {}): ImportedViT {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (err) {
    throw new FlaneurError('IO_ERROR', `Cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
  const weights = parseWeightFile(buf, path.basename(file));
  const imported = importViT(weights, path.basename(file), { ...options, hfConfig: readSiblingConfig(file) });
  return weights.checkpoint ? { ...imported, checkpoint: weights.checkpoint } : imported;
}

/**
 * The imported weights as a .safetensors file in canonical (official) names, with the head count in its metadata:
 * what the registry stores for a PyTorch checkpoint, so that every later load reads one format.
 */
export function canonicalSafetensors(m: ImportedViT): Buffer {
  const shapes = vitParamShapes(m.config);
  const tensors = new Map<string, TensorToWrite>();
  for (const [name, data] of m.weights) tensors.set(name, { shape: shapes.get(name) ?? [data.length], data });
  return encodeSafetensors(tensors, { heads: String(m.config.heads), format: 'flaneur-canonical' });
}
