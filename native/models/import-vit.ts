/**
 * Imports ViT weights from .safetensors: the official DINO / DINOv2 / timm names, or Hugging Face transformers
 * (ViTModel for DINO, Dinov2Model with or without registers). The architecture is read from the tensors; every
 * missing, unexpected or mis-shaped tensor is an error that names it.
 */
import fs from 'node:fs';
import path from 'node:path';
import { FlaneurError } from '../api/errors.js';
import { attentionHeads, checkModelFits, type Dinov3Scheme, importDinov3, isDinov3 } from './import-dinov3.js';
import { IMAGENET_MEAN, IMAGENET_STD } from './preprocess.js';
import { type CheckpointSelection, parsePytorchCheckpoint } from './pytorch.js';
import {
  encodeSafetensors,
  modelFileSource,
  parseSafetensors,
  readModelFileStart,
  readSafetensors,
  type TensorToWrite,
  type WeightFile,
} from './safetensors.js';
import { type ViTConfig, vitParamShapes } from './vit.js';

export type NamingScheme = 'official' | 'hf-vit' | 'hf-dinov2' | Dinov3Scheme;

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
  'dinov3_vit.',
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

export interface HfConfig {
  num_attention_heads?: number;
  layer_norm_eps?: number;
  /** DINOv3: base of the RoPE periods. */
  rope_theta?: number;
}

const MAX_CONFIG_BYTES = 1024 * 1024;

/**
 * The Hugging Face config.json beside a model file, with the two values Flaneur reads checked: the head count a
 * positive whole number, layer_norm_eps a finite positive number below 1 (`"banana"` gave NaN embeddings). A config
 * that is not a regular file, too large, or not JSON is refused with what to do, never silently half-used.
 */
export function readSiblingConfig(file: string): HfConfig | null {
  const cfg = path.join(path.dirname(file), 'config.json');
  let st: fs.Stats;
  try {
    st = fs.statSync(cfg);
  } catch {
    return null;
  }
  const fix = 'Fix it or remove it (then give the head count explicitly if it is not width/64).';
  if (!st.isFile() || st.size > MAX_CONFIG_BYTES) {
    throw invalid(`The config.json beside ${path.basename(file)} is not a small regular file. ${fix}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(cfg, 'utf8'));
  } catch (err) {
    throw invalid(
      `The config.json beside ${path.basename(file)} is not valid JSON (${(err as Error).message}). ${fix}`,
    );
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw invalid(`The config.json beside ${path.basename(file)} is not a JSON object. ${fix}`);
  }
  const { num_attention_heads: heads, layer_norm_eps: eps } = raw as Record<string, unknown>;
  const out: HfConfig = {};
  if (heads !== undefined) {
    if (typeof heads !== 'number' || !Number.isSafeInteger(heads) || heads <= 0) {
      throw invalid(
        `The config.json beside ${path.basename(file)} says num_attention_heads is ${JSON.stringify(heads)}; it must be a whole number above 0. ${fix}`,
      );
    }
    out.num_attention_heads = heads;
  }
  if (eps !== undefined) {
    if (typeof eps !== 'number' || !Number.isFinite(eps) || eps <= 0 || eps >= 1) {
      throw invalid(
        `The config.json beside ${path.basename(file)} says layer_norm_eps is ${JSON.stringify(eps)}; it must be a small positive number such as 1e-6. ${fix}`,
      );
    }
    out.layer_norm_eps = eps;
  }
  return out;
}

/** Upper bounds on what an imported ViT may be (ViT-g/14 is 40 blocks of width 1536). */
const MAX_DEPTH = 256;
const MAX_DIM = 16_384;
const MAX_PATCH = 1024;
const MAX_POS_GRID = 1024;

/** The block indices named by the file's tensors, checked to be exactly 0…depth-1 (no `blocks.1000000.x`). */
function blockDepth(names: string[], blockRe: RegExp, source: string, original: Map<string, string>): number {
  const seen = new Set<number>();
  let max = -1;
  let maxName = '';
  for (const n of names) {
    const m = blockRe.exec(n);
    if (!m) continue;
    const i = Number(m[1]);
    seen.add(i);
    if (i > max) {
      max = i;
      maxName = n;
    }
  }
  if (max >= MAX_DEPTH || seen.size !== max + 1) {
    let run = 0;
    while (seen.has(run)) run++;
    const have = run === 0 ? 'no block 0' : `tensors for ${run} block${run === 1 ? '' : 's'} (0 to ${run - 1})`;
    throw invalid(
      `${source} is not a valid model: tensor "${original.get(maxName) ?? maxName}" names block ${max}, but the file has ${have}${max >= MAX_DEPTH ? `; at most ${MAX_DEPTH} blocks are read` : ''}.`,
    );
  }
  return max + 1;
}

function checkDimension(source: string, what: string, value: number, max: number): void {
  if (!Number.isSafeInteger(value) || value <= 0 || value > max) {
    throw invalid(
      `${source} is not a valid model: its ${what} is ${value}, where a ViT has a whole number from 1 to ${max}.`,
    );
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
  if (original.length === 0) {
    throw invalid(`${source} is not a valid model: it holds no tensors. Choose the model's .safetensors weights file.`);
  }
  const { prefix, names } = stripPrefix(original);
  const byName = new Map(names.map((n, i) => [n, original[i] as string]));
  const has = (n: string) => byName.has(n);
  const shapeOf = (n: string) => file.tensors.get(byName.get(n) as string)?.shape ?? [];

  const dtypeOf = () => [...new Set(original.map((n) => file.tensors.get(n)?.dtype))].join('+');
  const v3 = isDinov3(has);
  if (v3) {
    const { heads, lnEps } = options;
    const r = importDinov3(file, names, byName, v3, source, {
      ...(heads !== undefined ? { heads } : {}),
      ...(lnEps !== undefined ? { lnEps } : {}),
      hfConfig: options.hfConfig ?? null,
    });
    return { config: r.config, weights: r.weights, scheme: v3, sourceDtype: dtypeOf(), ignored: r.ignored };
  }
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
  const depth = blockDepth(names, blockRe, source, byName);
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
  // Plausible sizes, checked against the tensors before anything is built from them.
  checkDimension(source, 'width (last dimension of the class token)', dim, MAX_DIM);
  checkDimension(source, 'patch size', patchSize, MAX_PATCH);
  checkDimension(source, 'MLP width', mlpHidden, 16 * MAX_DIM);
  checkDimension(source, 'position grid', posGrid, MAX_POS_GRID);
  if (!Number.isSafeInteger(registers) || registers < 0 || registers > 1024) {
    throw invalid(`${source} is not a valid model: it has ${registers} register tokens.`);
  }
  const layerScale = scheme === 'hf-dinov2' ? has('encoder.layer.0.layer_scale1.lambda1') : has('blocks.0.ls1.gamma');
  const heads = attentionHeads(file, options, dim, source);
  const family: ViTConfig['family'] =
    scheme === 'hf-dinov2' || layerScale || registers > 0 || patchSize === 14 ? 'dinov2' : 'dino';
  const lnEps = options.lnEps ?? options.hfConfig?.layer_norm_eps ?? (scheme === 'hf-vit' ? 1e-12 : 1e-6);
  if (!Number.isFinite(lnEps) || lnEps <= 0 || lnEps >= 1) {
    throw invalid(`${source}: layer-norm epsilon ${lnEps} is not a small positive number such as 1e-6.`);
  }
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

  checkModelFits(config, source);
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
    const n = shape.reduce((a, d) => a * d, 1);
    let present = 0;
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
      present += (t?.shape ?? []).reduce((a, d) => a * d, 1);
    }
    // Sizes are compared before any data is read, so a mis-shaped file costs nothing to refuse.
    if (present !== n) {
      const got =
        parts.length === 1 ? shapeStr(shapeOf(parts[0] as string)) : parts.map((p) => shapeStr(shapeOf(p))).join(' + ');
      throw invalid(
        `${source}: tensor "${prefix}${parts.join('", "')}" has shape ${got}; expected ${shapeStr(shape)} for ${canonical} of this architecture (dim ${dim}, depth ${depth}).`,
      );
    }
    const datas = parts.map((part) => file.float32(byName.get(part) as string));
    let data = datas[0] as Float32Array;
    if (datas.length > 1) {
      data = new Float32Array(n);
      let at = 0;
      for (const d of datas) {
        data.set(d, at);
        at += d.length;
      }
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
  return { config, weights, scheme, sourceDtype: dtypeOf(), ignored };
}

/** Whether a file's first bytes are a PyTorch checkpoint's (zip archive, legacy pickle or pre-0.4 tar). */
function isPytorchCheckpoint(start: Buffer): boolean {
  const safetensors = start.length > 8 && start[8] === 0x7b; // the JSON header after the 8-byte length
  const zip = start.length >= 4 && start.readUInt32LE(0) === 0x04034b50;
  const pickle = !safetensors && start.length >= 2 && start[0] === 0x80 && (start[1] as number) <= 5;
  const tar = start.length > 262 && start.subarray(257, 262).toString('latin1') === 'ustar';
  return zip || pickle || tar;
}

/**
 * A weight file by its content: a PyTorch checkpoint (zip archive, legacy pickle or pre-0.4 tar) or .safetensors.
 */
export function parseWeightFile(buf: Buffer, source: string): WeightFile & { checkpoint?: CheckpointSelection } {
  if (isPytorchCheckpoint(buf)) {
    const ckpt = parsePytorchCheckpoint(buf, source);
    return Object.assign(ckpt, { checkpoint: ckpt.selection });
  }
  return parseSafetensors(buf, source);
}

/**
 * Imports a model file. Only regular files are read (a named pipe, a device or a folder is refused before any read).
 * A .safetensors file's header is read and checked first (bounded work, whatever the file's size), then each tensor
 * is read from the file on its own; a PyTorch checkpoint's pickle is read (bounded) and parsed by the restricted
 * unpickler, and each tensor's bytes are read from the file when asked.
 */
export function importViTFile(file: string, options: ImportOptions = {}): ImportedViT {
  const source = path.basename(file);
  const hfConfig = readSiblingConfig(file);
  if (isPytorchCheckpoint(readModelFileStart(file, source, 512))) {
    const ckpt = parsePytorchCheckpoint(modelFileSource(file, source), source);
    const imported = importViT(ckpt, source, { ...options, hfConfig });
    return { ...imported, checkpoint: ckpt.selection };
  }
  return importViT(readSafetensors(file, source), source, { ...options, hfConfig });
}

/**
 * The imported weights as a .safetensors file in canonical (official) names, with the head count in its metadata:
 * what the registry stores for a PyTorch checkpoint, so that every later load reads one format.
 */
export function canonicalSafetensors(m: ImportedViT): Buffer {
  const shapes = vitParamShapes(m.config);
  const tensors = new Map<string, TensorToWrite>();
  for (const [name, data] of m.weights) tensors.set(name, { shape: shapes.get(name) ?? [data.length], data });
  const periods = m.config.ropePeriods;
  if (periods) tensors.set('rope_embed.periods', { shape: [periods.length], data: Float32Array.from(periods) });
  return encodeSafetensors(tensors, { heads: String(m.config.heads), format: 'flaneur-canonical' });
}
