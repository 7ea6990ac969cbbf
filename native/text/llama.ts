/**
 * Decoder LLMs of the Llama family (Llama 2/3, SmolLM, Mistral-style, Qwen2 with its q/k/v biases) run with the
 * project's own ONNX graph: RMSNorm, rotary embeddings (rotate-half, as Hugging Face's LlamaModel), grouped-query
 * attention with a causal and padding mask, SwiGLU. One graph serves every layer (the layer's weights are inputs,
 * so an 8B model needs no 2 GB protobuf and no copy of its weights); the embedding lookup and the final RMSNorm of
 * the last token are done on the host. The text feature is ShareLock's: the final-norm hidden state of the last
 * token (sharelock/models/language_encoder.py, `last_hidden_state[:, -1]`), texts left-padded in a batch.
 *
 * Weights come from GGUF files (llama.cpp's convert permutes the rows of attn_q/attn_k of 'llama' models for its
 * interleaved rotary layout; they are put back in Hugging Face order here) or from .safetensors in Hugging Face
 * names with their config.json beside them. Quantised GGUF weights (Q8_0, Q4_0/1, Q5_0/1, Q4_K, Q5_K, Q6_K) stay
 * quantised, as com.microsoft MatMulNBits codes (gguf-quant.ts: an exact mapping, nothing requantised), and the
 * embedding table stays as the file stores it, the rows a batch needs widened on lookup; the rest runs in float32.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FlaneurError } from '../api/errors.js';
import { GraphBuilder } from '../graph/builder.js';
import { attr, type Value } from '../graph/ir.js';
import { toOnnx } from '../graph/onnx.js';
import { bytesText, readSafetensors, type WeightFile, type WeightTensor } from '../models/safetensors.js';
import { rotateHalfMatrix } from '../models/vit.js';
import { DEFAULT_RUNTIME, type Feeds, ModelSession, ort, type RuntimeSettings } from '../runtime/session.js';
import { dequantize, type GgufFile, ggmlBytes, metaNumber, metaString, readGguf } from './gguf.js';
import { keepsQuantised, type QuantMatrix, quantMatrix, quantMatrixBytes } from './gguf-quant.js';
import { type Tokenizer, tokenizerFromGguf, tokenizerFromHfJson } from './tokenizer.js';

export type LlamaArch = 'llama' | 'qwen2';

export interface LlamaConfig {
  arch: LlamaArch;
  vocab: number;
  dim: number;
  ffn: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  eps: number;
  ropeTheta: number;
  contextLength: number;
  /** Qwen2: q, k and v projections have biases. */
  qkvBias: boolean;
  /**
   * Llama 3.1 / 3.2 rotary scaling: each of the head_dim / 2 frequencies divided by its factor (GGUF's
   * rope_freqs.weight; from config.json's rope_scaling 'llama3' as transformers computes it).
   */
  ropeFactors?: readonly number[];
}

/** A projection: float32 stored [in, out] (transposed from PyTorch's [out, in]) for x @ W, or kept quantised. */
export type LlamaMatrix = Float32Array | QuantMatrix;

export interface LlamaLayerWeights {
  attnNorm: Float32Array;
  wq: LlamaMatrix;
  wk: LlamaMatrix;
  wv: LlamaMatrix;
  wo: LlamaMatrix;
  bq?: Float32Array;
  bk?: Float32Array;
  bv?: Float32Array;
  ffnNorm: Float32Array;
  wGate: LlamaMatrix;
  wUp: LlamaMatrix;
  wDown: LlamaMatrix;
}

/** An embedding table as its file stores it (ggml blocks, one row per token), rows widened when looked up. */
export interface StoredRows {
  raw: Buffer;
  type: number;
  rowBytes: number;
}

export interface LlamaWeights {
  /** [vocab, dim] in float32, or as stored. */
  embed: Float32Array | StoredRows;
  layers: LlamaLayerWeights[];
  norm: Float32Array;
}

/** What a model file is, before anything heavy is read. */
export interface LlamaModelInfo {
  file: string;
  format: 'gguf' | 'safetensors';
  config: LlamaConfig;
  /** Parameters Flaneur loads (the output head is not needed for features). */
  params: number;
  fileBytes: number;
  /** Bytes of the weights as held (quantised ones kept quantised, the rest in float32). */
  weightBytes: number;
  /** Memory to load and run it: the weights as held plus working memory for a batch. */
  memoryBytes: number;
  /** A sentence for people: size, layers, width, the memory it needs. */
  summary: string;
}

const FINFO_MIN = -3.4028234663852886e38;

export function llamaParamCount(c: LlamaConfig): number {
  const q = c.heads * c.headDim;
  const kv = c.kvHeads * c.headDim;
  const perLayer =
    2 * c.dim + c.dim * q + 2 * c.dim * kv + q * c.dim + 3 * c.dim * c.ffn + (c.qkvBias ? q + 2 * kv : 0);
  return c.vocab * c.dim + c.layers * perLayer + c.dim;
}

/** Working memory of one batch of `batch` texts of `tokens` tokens (activations, attention scores), in bytes. */
function workingBytes(c: LlamaConfig, batch: number, tokens: number): number {
  const act = batch * tokens * (6 * c.dim + 3 * c.ffn) * 4;
  const scores = 3 * batch * c.heads * tokens * tokens * 4;
  return act + scores + 256 * 2 ** 20;
}

function gb(n: number): string {
  return `${(n / 2 ** 30).toFixed(1)} GB`;
}

/**
 * `held`: bytes of the weights as held and the quantisations kept (none: everything float32). Working memory adds
 * the largest projection in float32 (what a MatMulNBits fed its codes at run time may widen at once).
 */
function describe(
  file: string,
  format: LlamaModelInfo['format'],
  c: LlamaConfig,
  fileBytes: number,
  held?: { bytes: number; kept: string[] },
): LlamaModelInfo {
  const params = llamaParamCount(c);
  const weightBytes = held?.bytes ?? params * 4;
  const widest = held?.kept.length ? 4 * c.dim * Math.max(c.ffn, c.heads * c.headDim) : 0;
  const memoryBytes = weightBytes + widest + workingBytes(c, 32, Math.min(c.contextLength, 256));
  const count = params >= 1e9 ? `${(params / 1e9).toFixed(1)}B` : `${(params / 1e6).toFixed(params < 1e6 ? 2 : 0)}M`;
  const how = held?.kept.length
    ? `keeps its ${held.kept.join(', ')} weights quantised (${gb(weightBytes)})`
    : 'runs it in float32';
  const summary = `${path.basename(file)}: a ${c.arch} decoder of ${count} parameters (${c.layers} layers, width ${c.dim}, ${c.heads} heads sharing ${c.kvHeads} key/value heads), ${bytesText(fileBytes)} on disk; Flaneur ${how} and needs about ${gb(memoryBytes)} of memory.`;
  return { file, format, config: c, params, fileBytes, weightBytes, memoryBytes, summary };
}

/** Refuses a model that cannot fit in this machine's memory, with a sentence; call before loading. */
export function checkLlamaFits(info: LlamaModelInfo, totalMemory = os.totalmem()): void {
  if (info.memoryBytes > 0.8 * totalMemory) {
    throw new FlaneurError(
      'UNSUPPORTED_MODEL',
      `${info.summary} This machine has ${gb(totalMemory)}, so it cannot be loaded. Choose a smaller model (SmolLM, Qwen2.5-0.5B/1.5B, Llama-3.2-1B/3B).`,
    );
  }
}

function invalid(source: string, why: string): FlaneurError {
  return new FlaneurError('INVALID_MODEL', `${source} is not a usable language model: ${why}.`);
}

function positiveInt(v: number | undefined, what: string, source: string): number {
  if (v === undefined || !Number.isInteger(v) || v <= 0 || v > 2 ** 24)
    throw invalid(source, `${what} is missing or not a positive whole number`);
  return v;
}

function checkConfig(c: LlamaConfig, source: string): LlamaConfig {
  if (c.heads % c.kvHeads !== 0)
    throw invalid(source, `${c.heads} attention heads do not split into ${c.kvHeads} key/value groups`);
  if (c.headDim % 2 !== 0) throw invalid(source, `the head width ${c.headDim} is odd (rotary embeddings need pairs)`);
  if (!(c.eps > 0 && c.eps < 1)) throw invalid(source, `the RMSNorm epsilon ${c.eps} is not in (0, 1)`);
  if (!(c.ropeTheta > 0)) throw invalid(source, `the rotary base ${c.ropeTheta} is not positive`);
  return c;
}

type LlamaField = Exclude<keyof LlamaConfig, 'arch' | 'qkvBias' | 'ropeFactors'>;

function checkFactors(f: number[], source: string): number[] {
  if (f.some((x) => !(Number.isFinite(x) && x > 0)))
    throw invalid(source, 'its rotary frequency factors are not all positive');
  return f;
}

/**
 * config.json's rope_scaling of type 'llama3' (Llama 3.1 / 3.2) as transformers' _compute_llama3_parameters: long
 * wavelengths divided by `factor`, short ones kept, those between interpolated. Other scalings are refused.
 */
function llama3RopeFactors(c: LlamaConfig, scaling: unknown, source: string): number[] {
  const s = scaling as Record<string, unknown>;
  const type = s.rope_type ?? s.type;
  const num = (k: string) => (typeof s[k] === 'number' ? (s[k] as number) : Number.NaN);
  const [factor, low, high, original] = [
    'factor',
    'low_freq_factor',
    'high_freq_factor',
    'original_max_position_embeddings',
  ].map(num) as [number, number, number, number];
  if (type === 'default') return new Array(c.headDim / 2).fill(1);
  if (type !== 'llama3' || !(factor > 0 && low > 0 && high > low && original > 0)) {
    throw new FlaneurError(
      'UNSUPPORTED_MODEL',
      `${source} scales its rotary embeddings as "${String(type)}"; Flaneur knows Llama 3's scaling ("llama3") only.`,
    );
  }
  const out: number[] = [];
  const f = Math.fround;
  for (let i = 0; i < c.headDim / 2; i++) {
    const inv = f(1 / f(c.ropeTheta ** f((2 * i) / c.headDim)));
    const wavelen = f((2 * Math.PI) / inv);
    let scaled = wavelen > original / low ? f(inv / factor) : inv;
    if (!(wavelen < original / high) && !(wavelen > original / low)) {
      const smooth = f((f(original / wavelen) - low) / (high - low));
      scaled = f(f(f((1 - smooth) * scaled) / factor) + f(smooth * scaled));
    }
    out.push(inv / scaled);
  }
  return out;
}

/** A config from a file's settings (`read`), named by `key` in errors; defaults as transformers' LlamaConfig. */
function configFrom(
  arch: LlamaArch,
  read: (f: LlamaField) => number | undefined,
  key: (f: LlamaField) => string,
  o: { eps: number; qkvBias: boolean },
  source: string,
): LlamaConfig {
  const int = (f: LlamaField, fallback?: number) => positiveInt(read(f) ?? fallback, key(f), source);
  const dim = int('dim');
  const heads = int('heads');
  return checkConfig(
    {
      arch,
      vocab: int('vocab'),
      dim,
      ffn: int('ffn'),
      layers: int('layers'),
      heads,
      kvHeads: int('kvHeads', heads),
      headDim: int('headDim', dim / heads),
      eps: read('eps') ?? o.eps,
      ropeTheta: read('ropeTheta') ?? 10000,
      contextLength: int('contextLength', 2048),
      qkvBias: o.qkvBias,
    },
    source,
  );
}

// --- GGUF -----------------------------------------------------------------------------------------------------

function ggufConfig(g: GgufFile, source: string): LlamaConfig {
  const arch = metaString(g.metadata, 'general.architecture');
  if (arch !== 'llama' && arch !== 'qwen2') {
    throw new FlaneurError(
      'UNSUPPORTED_MODEL',
      `${source} is a "${arch ?? 'unknown'}" model; Flaneur runs Llama-architecture decoders ("llama": Llama 2/3, SmolLM, Mistral; "qwen2": Qwen2/2.5).`,
    );
  }
  const n = (k: string) => metaNumber(g.metadata, `${arch}.${k}`);
  const embd = g.tensors.get('token_embd.weight');
  const tokens = g.metadata.get('tokenizer.ggml.tokens');
  const vocab = embd?.dims[1] ?? (Array.isArray(tokens) ? tokens.length : undefined);
  const keys: Record<LlamaField, string> = {
    vocab: 'vocabulary size',
    dim: 'embedding_length',
    ffn: 'feed_forward_length',
    layers: 'block_count',
    heads: 'attention.head_count',
    kvHeads: 'attention.head_count_kv',
    headDim: 'attention.key_length',
    eps: 'attention.layer_norm_rms_epsilon',
    ropeTheta: 'rope.freq_base',
    contextLength: 'context_length',
  };
  const read = (f: LlamaField) => (f === 'vocab' ? vocab : n(keys[f]));
  const config = configFrom(
    arch,
    read,
    (f) => keys[f],
    { eps: 1e-5, qkvBias: g.tensors.has('blk.0.attn_q.bias') },
    source,
  );
  const freqs = g.tensors.get('rope_freqs.weight');
  if (freqs) {
    if (freqs.dims.length !== 1 || freqs.dims[0] !== config.headDim / 2) {
      throw invalid(source, `its rope_freqs.weight has ${freqs.dims.join(' x ')} values, not ${config.headDim / 2}`);
    }
    config.ropeFactors = checkFactors(Array.from(g.float32('rope_freqs.weight')), source);
  }
  return config;
}

/**
 * Undoes llama.cpp's convert permute of q/k rows (interleaved rotary pairs back to rotate-half halves); `cols` is a
 * row's length in elements of `w` (values, or bytes of a quantised row).
 */
function unpermuteRows<T extends Float32Array | Uint8Array>(w: T, heads: number, hd: number, cols: number): T {
  const out = (w instanceof Float32Array ? new Float32Array(w.length) : new Uint8Array(w.length)) as T;
  const half = hd / 2;
  for (let h = 0; h < heads; h++)
    for (let j = 0; j < half; j++)
      for (let s = 0; s < 2; s++) {
        const from = (h * hd + 2 * j + s) * cols;
        const to = (h * hd + s * half + j) * cols;
        out.set(w.subarray(from, from + cols), to);
      }
  return out;
}

/** [rows, cols] row-major -> [cols, rows]. */
function transposed(w: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(w.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = w[r * cols + c] as number;
  return out;
}

interface TensorReader {
  /** A tensor in PyTorch layout and its expected shape; a missing or mis-shaped tensor is refused. */
  get(name: string, shape: number[]): Float32Array;
  has(name: string): boolean;
  /** A tensor's stored bytes when its type is kept quantised (`keepsQuantised`), else null. */
  stored?(name: string, shape: number[]): { raw: Buffer; type: number } | null;
}

function loadWeights(
  c: LlamaConfig,
  r: TensorReader,
  names: (k: string, i?: number) => string,
  permuted: boolean,
): LlamaWeights {
  const q = c.heads * c.headDim;
  const kv = c.kvHeads * c.headDim;
  const lin = (name: string, out: number, inp: number, permuteHeads = 0): LlamaMatrix => {
    const stored = r.stored?.(name, [out, inp]);
    if (stored) {
      let raw: Uint8Array = stored.raw;
      if (permuted && permuteHeads) raw = unpermuteRows(raw, permuteHeads, c.headDim, raw.length / out);
      return quantMatrix(raw, stored.type, out, inp);
    }
    let w = r.get(name, [out, inp]);
    if (permuted && permuteHeads) w = unpermuteRows(w, permuteHeads, c.headDim, inp);
    return transposed(w, out, inp);
  };
  const layers: LlamaLayerWeights[] = [];
  for (let i = 0; i < c.layers; i++) {
    const n = (k: string) => names(k, i);
    const l: LlamaLayerWeights = {
      attnNorm: r.get(n('attn_norm'), [c.dim]),
      wq: lin(n('q'), q, c.dim, c.heads),
      wk: lin(n('k'), kv, c.dim, c.kvHeads),
      wv: lin(n('v'), kv, c.dim),
      wo: lin(n('o'), c.dim, q),
      ffnNorm: r.get(n('ffn_norm'), [c.dim]),
      wGate: lin(n('gate'), c.ffn, c.dim),
      wUp: lin(n('up'), c.ffn, c.dim),
      wDown: lin(n('down'), c.dim, c.ffn),
    };
    if (c.qkvBias) {
      l.bq = r.get(n('bq'), [q]);
      l.bk = r.get(n('bk'), [kv]);
      l.bv = r.get(n('bv'), [kv]);
      if (permuted) {
        l.bq = unpermuteRows(l.bq, c.heads, c.headDim, 1);
        l.bk = unpermuteRows(l.bk, c.kvHeads, c.headDim, 1);
      }
    }
    layers.push(l);
  }
  const embedStored = r.stored?.(names('embed'), [c.vocab, c.dim]);
  const embed = embedStored
    ? { ...embedStored, rowBytes: embedStored.raw.length / c.vocab }
    : r.get(names('embed'), [c.vocab, c.dim]);
  return { embed, layers, norm: r.get(names('norm'), [c.dim]) };
}

const GGUF_NAMES: Record<string, string> = {
  attn_norm: 'attn_norm.weight',
  q: 'attn_q.weight',
  k: 'attn_k.weight',
  v: 'attn_v.weight',
  o: 'attn_output.weight',
  bq: 'attn_q.bias',
  bk: 'attn_k.bias',
  bv: 'attn_v.bias',
  ffn_norm: 'ffn_norm.weight',
  gate: 'ffn_gate.weight',
  up: 'ffn_up.weight',
  down: 'ffn_down.weight',
};

const HF_NAMES: Record<string, string> = {
  attn_norm: 'input_layernorm.weight',
  q: 'self_attn.q_proj.weight',
  k: 'self_attn.k_proj.weight',
  v: 'self_attn.v_proj.weight',
  o: 'self_attn.o_proj.weight',
  bq: 'self_attn.q_proj.bias',
  bk: 'self_attn.k_proj.bias',
  bv: 'self_attn.v_proj.bias',
  ffn_norm: 'post_attention_layernorm.weight',
  gate: 'mlp.gate_proj.weight',
  up: 'mlp.up_proj.weight',
  down: 'mlp.down_proj.weight',
};

function shapeCheck(source: string, name: string, got: readonly number[] | undefined, want: number[]): void {
  if (!got) throw invalid(source, `it has no tensor "${name}"`);
  if (got.length !== want.length || got.some((d, i) => d !== want[i])) {
    throw invalid(source, `tensor "${name}" is [${got.join(', ')}], expected [${want.join(', ')}]`);
  }
}

/** A loadable language model: what it is (before loading), its tokenizer, and its weights on demand. */
export interface LlamaSource {
  info: LlamaModelInfo;
  tokenizer: Tokenizer | null;
  /** `dequantize`: every weight widened to float32 (the path before quantised weights were kept; for checks). */
  loadWeights(o?: { dequantize?: boolean }): LlamaWeights;
}

export function openGgufLlama(file: string): LlamaSource {
  const source = path.basename(file);
  const g = readGguf(file, source);
  const config = ggufConfig(g, source);
  const names = (k: string, i?: number) =>
    k === 'embed' ? 'token_embd.weight' : k === 'norm' ? 'output_norm.weight' : `blk.${i}.${GGUF_NAMES[k]}`;
  const info = describe(file, 'gguf', config, g.fileBytes, ggufHeldBytes(g, config, names));
  const tokenizer = g.metadata.has('tokenizer.ggml.model') ? tokenizerFromGguf(g.metadata, source) : null;
  const reader: TensorReader = {
    has: (n) => g.tensors.has(n),
    get(name, shape) {
      shapeCheck(source, name, g.tensors.get(name)?.dims.slice().reverse(), shape);
      return g.float32(name);
    },
  };
  const keeping: TensorReader = {
    ...reader,
    stored(name, shape) {
      const t = g.tensors.get(name);
      shapeCheck(source, name, t?.dims.slice().reverse(), shape);
      const type = (t as { type: number }).type;
      // the embedding is looked up row by row from any stored type; projections when MatMulNBits can hold them
      return name === names('embed') || keepsQuantised(type) ? { raw: g.raw(name), type } : null;
    },
  };
  return {
    info,
    tokenizer,
    loadWeights: (o = {}) => loadWeights(config, o.dequantize ? reader : keeping, names, config.arch === 'llama'),
  };
}

/** Bytes of a GGUF model's weights as `loadWeights` holds them, and the quantised types it keeps. */
function ggufHeldBytes(
  g: GgufFile,
  c: LlamaConfig,
  names: (k: string, i?: number) => string,
): { bytes: number; kept: string[] } {
  const kept = new Set<string>();
  let bytes = 0;
  for (let i = 0; i < c.layers; i++) {
    for (const k of Object.keys(GGUF_NAMES)) {
      const t = g.tensors.get(names(k, i));
      if (!t) continue;
      const count = t.dims.reduce((a, x) => a * x, 1);
      if (t.dims.length === 2 && keepsQuantised(t.type)) kept.add(t.typeName);
      bytes += t.dims.length === 2 ? quantMatrixBytes(t.type, t.dims[1] as number, t.dims[0] as number) : 4 * count;
    }
  }
  const embed = g.tensors.get(names('embed'));
  if (embed)
    bytes += ggmlBytes(
      embed.type,
      embed.dims.reduce((a, x) => a * x, 1),
    );
  return { bytes: bytes + 4 * c.dim, kept: [...kept].sort() };
}

const SHARD = /-\d{5}-of-\d{5}\.safetensors$/;

/**
 * The weights of one .safetensors file, or of a sharded model (model.safetensors.index.json, given or beside a
 * shard): every shard's header read, each tensor from its shard when asked. Shard names are plain file names in
 * the index's folder.
 */
function openSafetensorsWeights(file: string, source: string): { weights: WeightFile; bytes: number } {
  const dir = path.dirname(file);
  const index = file.endsWith('.index.json')
    ? file
    : SHARD.test(file) && fs.existsSync(path.join(dir, 'model.safetensors.index.json'))
      ? path.join(dir, 'model.safetensors.index.json')
      : null;
  if (!index) {
    const w = readSafetensors(file, source);
    return { weights: w, bytes: fs.statSync(file).size };
  }
  let map: Record<string, unknown>;
  try {
    map = (JSON.parse(fs.readFileSync(index, 'utf8')) as { weight_map: Record<string, unknown> }).weight_map;
    if (!map || typeof map !== 'object') throw new Error('no weight_map');
  } catch {
    throw invalid(source, `its index ${path.basename(index)} is not a safetensors index (weight_map)`);
  }
  const shards = new Map<string, WeightFile>();
  const owner = new Map<string, WeightFile>();
  let bytes = 0;
  for (const [name, shard] of Object.entries(map)) {
    if (typeof shard !== 'string' || shard !== path.basename(shard) || shard.startsWith('.')) {
      throw invalid(source, `its index names "${String(shard)}", not a file beside it`);
    }
    let w = shards.get(shard);
    if (!w) {
      w = readSafetensors(path.join(dir, shard), shard);
      shards.set(shard, w);
      bytes += fs.statSync(path.join(dir, shard)).size;
    }
    if (!w.tensors.has(name)) throw invalid(source, `its index puts "${name}" in ${shard}, which does not hold it`);
    owner.set(name, w);
  }
  const tensors = new Map([...owner].map(([name, w]) => [name, w.tensors.get(name) as WeightTensor]));
  return {
    weights: {
      tensors,
      metadata: {},
      float32: (name) => {
        const w = owner.get(name);
        if (!w) throw invalid(source, `it has no tensor "${name}"`);
        return w.float32(name);
      },
    },
    bytes,
  };
}

/**
 * .safetensors in Hugging Face names (LlamaForCausalLM / LlamaModel, Qwen2) — one file, or a sharded model by its
 * model.safetensors.index.json or any of its shards — with config.json beside it, and its tokenizer.json when
 * there is one (byte-level BPE; without it, only token ids can be encoded).
 */
export function openSafetensorsLlama(file: string, tokenizer?: Tokenizer | null): LlamaSource {
  const source = path.basename(file);
  const cfgPath = path.join(path.dirname(file), 'config.json');
  let hf: Record<string, unknown>;
  try {
    hf = JSON.parse(fs.readFileSync(cfgPath, 'utf8')) as Record<string, unknown>;
  } catch {
    throw invalid(source, 'its config.json (beside it, from the same Hugging Face repository) is missing or not JSON');
  }
  const num = (k: string) => (typeof hf[k] === 'number' ? (hf[k] as number) : undefined);
  const type = hf.model_type;
  const arch: LlamaArch | null = type === 'llama' || type === 'mistral' ? 'llama' : type === 'qwen2' ? 'qwen2' : null;
  if (!arch) {
    throw new FlaneurError(
      'UNSUPPORTED_MODEL',
      `${source} is a "${String(type)}" model; Flaneur runs Llama-architecture decoders (llama, mistral, qwen2).`,
    );
  }
  const { weights: w, bytes } = openSafetensorsWeights(file, source);
  const prefix = w.tensors.has('model.embed_tokens.weight') ? 'model.' : '';
  const keys: Record<LlamaField, string> = {
    vocab: 'vocab_size',
    dim: 'hidden_size',
    ffn: 'intermediate_size',
    layers: 'num_hidden_layers',
    heads: 'num_attention_heads',
    kvHeads: 'num_key_value_heads',
    headDim: 'head_dim',
    eps: 'rms_norm_eps',
    ropeTheta: 'rope_theta',
    contextLength: 'max_position_embeddings',
  };
  const qkvBias = w.tensors.has(`${prefix}layers.0.self_attn.q_proj.bias`);
  const config = configFrom(
    arch,
    (f) => num(keys[f]),
    (f) => keys[f],
    { eps: 1e-6, qkvBias },
    source,
  );
  if (hf.rope_scaling) config.ropeFactors = llama3RopeFactors(config, hf.rope_scaling, source);
  const info = describe(file, 'safetensors', config, bytes);
  if (tokenizer === undefined) {
    const tokPath = path.join(path.dirname(file), 'tokenizer.json');
    tokenizer = null;
    if (fs.existsSync(tokPath)) {
      let json: unknown;
      try {
        json = JSON.parse(fs.readFileSync(tokPath, 'utf8'));
      } catch {
        throw invalid(source, 'its tokenizer.json is not JSON');
      }
      const eos = num('eos_token_id');
      tokenizer = tokenizerFromHfJson(json, source, eos !== undefined && Number.isInteger(eos) ? eos : null);
    }
  }
  const reader: TensorReader = {
    has: (n) => w.tensors.has(n),
    get(name, shape) {
      shapeCheck(source, name, w.tensors.get(name)?.shape, shape);
      return w.float32(name);
    },
  };
  const names = (k: string, i?: number) =>
    k === 'embed'
      ? `${prefix}embed_tokens.weight`
      : k === 'norm'
        ? `${prefix}norm.weight`
        : `${prefix}layers.${i}.${HF_NAMES[k]}`;
  return { info, tokenizer: tokenizer ?? null, loadWeights: () => loadWeights(config, reader, names, false) };
}

/** A .gguf or .safetensors language model, told apart by content. */
export function openLlama(file: string): LlamaSource {
  const fd = fs.openSync(file, 'r');
  const head = Buffer.alloc(4);
  try {
    fs.readSync(fd, head, 0, 4, 0);
  } finally {
    fs.closeSync(fd);
  }
  return head.toString('latin1') === 'GGUF' ? openGgufLlama(file) : openSafetensorsLlama(file);
}

// --- the layer graph ---------------------------------------------------------------------------------------

/** How a layer holds each projection: float32, or MatMulNBits' bits / block / zero points / mins. */
export type LlamaLayerLayout = Record<
  string,
  'f32' | { bits: 4 | 8; block: number; zeroPoints: boolean; mins: boolean }
>;

/** The layout of a layer's weights; layers of one layout share a graph. */
export function layerLayout(l: LlamaLayerWeights): LlamaLayerLayout {
  const of = (m: LlamaMatrix) =>
    m instanceof Float32Array
      ? ('f32' as const)
      : { bits: m.bits, block: m.block, zeroPoints: !!m.zeroPoints, mins: !!m.mins };
  return {
    wq: of(l.wq),
    wk: of(l.wk),
    wv: of(l.wv),
    wo: of(l.wo),
    w_gate: of(l.wGate),
    w_up: of(l.wUp),
    w_down: of(l.wDown),
  };
}

/**
 * One decoder layer. Without `weights` they are inputs (one session runs every layer of `layout`, nothing
 * copied); with them they are initializers (one session per layer: onnxruntime prepacks them for its CPU matmuls
 * and keeps them in a GPU's memory). Quantised projections are com.microsoft MatMulNBits (x's block sums times
 * the mins subtracted where the blocks have mins).
 */
export function buildLlamaLayer(c: LlamaConfig, weights?: LlamaLayerWeights, layout?: LlamaLayerLayout): Uint8Array {
  const b = new GraphBuilder('llama_layer');
  const D = c.dim;
  const hd = c.headDim;
  const KV = c.kvHeads;
  const g = c.heads / KV;
  const q = c.heads * hd;
  const kv = KV * hd;
  const h = b.input('h', 'float32', ['batch', 'seq', D]);
  const bias = b.input('bias', 'float32', ['batch', 1, 1, 'seq', 'seq']);
  const cos = b.input('cos', 'float32', ['seq', hd]);
  const sin = b.input('sin', 'float32', ['seq', hd]);
  const given = weights ? layerTensors(c, weights) : null;
  const form = weights ? layerLayout(weights) : (layout ?? {});
  const tensor = (name: string, shape: number[], dtype: 'float32' | 'uint8' = 'float32') => {
    const data = given?.get(name)?.data;
    return data ? b.initializer(name, data, shape, dtype) : b.input(name, dtype, shape);
  };
  const w = (name: string, shape: number[]) => tensor(name, shape);
  /** x @ W for W [in = K, out = N]: a MatMul, or MatMulNBits on codes [N, K / block, blob]. */
  const matrix = (name: string, K: number, N: number) => {
    const f = form[name] ?? 'f32';
    if (f === 'f32') {
      const weight = w(name, [K, N]);
      return (x: Value, label: string) => b.matmul(x, weight, label);
    }
    const kb = K / f.block;
    const inputs = [
      tensor(`${name}.codes`, [N, kb, (f.block * f.bits) / 8], 'uint8'),
      tensor(`${name}.scales`, [N * kb]),
    ];
    if (f.zeroPoints) inputs.push(tensor(`${name}.zero_points`, [N * Math.ceil(kb / 2)], 'uint8'));
    const mins = f.mins ? tensor(`${name}.mins`, [kb, N]) : null;
    const attrs = { K: attr.int(K), N: attr.int(N), bits: attr.int(f.bits), block_size: attr.int(f.block) };
    return (x: Value, label: string) =>
      b.scope(label, () => {
        const shape = [...x.shape.slice(0, -1), N];
        const y = b.node('MatMulNBits', [x, ...inputs], [{ dtype: 'float32', shape }], attrs, 'com.microsoft')[0];
        if (!mins) return y as Value;
        const sums = b.reduceSum(b.reshape(x, [0, 0, kb, f.block]), [-1], false);
        return b.sub(y as Value, b.matmul(sums, mins, 'block_mins'));
      });
  };
  const attnNorm = w('attn_norm', [D]);
  const wq = matrix('wq', D, q);
  const wk = matrix('wk', D, kv);
  const wv = matrix('wv', D, kv);
  const wo = matrix('wo', q, D);
  const biases = c.qkvBias ? [w('bq', [q]), w('bk', [kv]), w('bv', [kv])] : null;
  const ffnNorm = w('ffn_norm', [D]);
  const wGate = matrix('w_gate', D, c.ffn);
  const wUp = matrix('w_up', D, c.ffn);
  const wDown = matrix('w_down', c.ffn, D);
  const rot = b.initializer('rotate_half', rotateHalfMatrix(hd), [hd, hd]);

  const rmsNorm = (x: Value, weight: Value, label: string) =>
    b.scope(label, () => {
      const ms = b.reduceMean(b.mul(x, x), [-1], true);
      return b.mul(b.div(x, b.sqrt(b.add(ms, b.constFloat(c.eps)))), weight);
    });
  const rope = (t: Value) => b.add(b.mul(t, cos), b.mul(b.matmul(t, rot, 'rotate_half'), sin), 'rope');
  // [batch, seq, heads*hd] -> [batch, KV, group, seq, hd]: query head i uses key/value head floor(i / group).
  const heads = (t: Value, group: number) => b.transpose(b.reshape(t, [0, 0, KV, group, hd]), [0, 2, 3, 1, 4]);
  const proj = (x: Value, weight: (x: Value, label: string) => Value, bi: Value | undefined, label: string) => {
    const y = weight(x, label);
    return bi ? b.add(y, bi, label) : y;
  };

  const x = rmsNorm(h, attnNorm, 'input_layernorm');
  const qh = rope(heads(proj(x, wq, biases?.[0], 'q_proj'), g));
  const kh = rope(heads(proj(x, wk, biases?.[1], 'k_proj'), 1));
  const vh = heads(proj(x, wv, biases?.[2], 'v_proj'), 1);
  const scores = b.add(
    b.div(b.matmul(qh, b.transpose(kh, [0, 1, 2, 4, 3]), 'scores'), b.constFloat(Math.sqrt(hd))),
    bias,
  );
  const ctx = b.matmul(b.softmax(scores, -1), vh, 'context');
  const merged = b.reshape(b.transpose(ctx, [0, 3, 1, 2, 4]), [0, 0, q]);
  const h1 = b.add(h, wo(merged, 'o_proj'));
  const x2 = rmsNorm(h1, ffnNorm, 'post_attention_layernorm');
  const gate = wGate(x2, 'gate_proj');
  const act = b.mul(b.mul(gate, b.sigmoid(gate), 'silu'), wUp(x2, 'up_proj'));
  b.output(b.add(h1, wDown(act, 'down_proj')), 'out');
  return toOnnx(b.build());
}

/** cos and sin [T, hd] of positions 0..T-1 (inv_freq = theta^(-2i/hd), the angle vector repeated twice). */
export function ropeCosSin(c: LlamaConfig, T: number): { cos: Float32Array; sin: Float32Array } {
  const hd = c.headDim;
  const half = hd / 2;
  const cos = new Float32Array(T * hd);
  const sin = new Float32Array(T * hd);
  for (let i = 0; i < half; i++) {
    // float32 as the reference computes inv_freq and the angles
    const base = Math.fround(1 / Math.fround(c.ropeTheta ** Math.fround((2 * i) / hd)));
    const inv = c.ropeFactors ? Math.fround(base / (c.ropeFactors[i] as number)) : base;
    for (let t = 0; t < T; t++) {
      const a = Math.fround(t * inv);
      cos[t * hd + i] = cos[t * hd + i + half] = Math.cos(a);
      sin[t * hd + i] = sin[t * hd + i + half] = Math.sin(a);
    }
  }
  return { cos, sin };
}

type LayerTensor = { data: Float32Array; dims: number[] } | { data: Uint8Array; dims: number[]; dtype: 'uint8' };

/** A layer's weights by graph name, with their shapes (a quantised projection as its codes, scales, …). */
function layerTensors(c: LlamaConfig, l: LlamaLayerWeights): Map<string, LayerTensor> {
  const q = c.heads * c.headDim;
  const kv = c.kvHeads * c.headDim;
  const m = new Map<string, LayerTensor>([
    ['attn_norm', { data: l.attnNorm, dims: [c.dim] }],
    ['ffn_norm', { data: l.ffnNorm, dims: [c.dim] }],
  ]);
  const put = (name: string, w: LlamaMatrix, K: number, N: number) => {
    if (w instanceof Float32Array) {
      m.set(name, { data: w, dims: [K, N] });
      return;
    }
    const kb = K / w.block;
    m.set(`${name}.codes`, { data: w.codes, dims: [N, kb, (w.block * w.bits) / 8], dtype: 'uint8' });
    m.set(`${name}.scales`, { data: w.scales, dims: [N * kb] });
    if (w.zeroPoints) m.set(`${name}.zero_points`, { data: w.zeroPoints, dims: [w.zeroPoints.length], dtype: 'uint8' });
    if (w.mins) m.set(`${name}.mins`, { data: w.mins, dims: [kb, N] });
  };
  put('wq', l.wq, c.dim, q);
  put('wk', l.wk, c.dim, kv);
  put('wv', l.wv, c.dim, kv);
  put('wo', l.wo, q, c.dim);
  put('w_gate', l.wGate, c.dim, c.ffn);
  put('w_up', l.wUp, c.dim, c.ffn);
  put('w_down', l.wDown, c.ffn, c.dim);
  if (l.bq && l.bk && l.bv) {
    m.set('bq', { data: l.bq, dims: [q] });
    m.set('bk', { data: l.bk, dims: [kv] });
    m.set('bv', { data: l.bv, dims: [kv] });
  }
  return m;
}

/** Bytes of attention scores one batch may take (texts of 512 tokens: 4 at a time with 32 heads). */
const ATTENTION_BUDGET = 256 * 2 ** 20;

/**
 * The layer sessions run without a CPU memory arena: a run's activations (and the codes MatMulNBits widens when fed
 * them) go back to the system instead of each session's arena keeping its peak (tools/llama-quant-memory.ts, width
 * 1024, 8 layers, Q4_K_M mix, 64 prompts: peak RSS fed 479 -> 357 MB, per-layer graphs 1107 -> 405 MB, float32
 * 716 -> 701 MB; tokens/s within the noise of a loaded machine).
 */
const ARENA = { memoryArena: false };

/** Largest layer (bytes of float32 weights) held as initializers: protobuf holds at most 2 GB. */
const MAX_INITIALIZER_LAYER = 1.5 * 2 ** 30;

export interface LlamaEncoderOptions {
  runtime?: RuntimeSettings;
  /** Texts per forward pass (ShareLock's language encoder uses 32). */
  batchSize?: number;
  /** For tests: the memory `checkLlamaFits` compares with. */
  totalMemory?: number;
  /**
   * 'inputs' (default for float32 weights): one session for every layer, the weights fed at each run (no copy; on
   * the CPU measured 1.5-2x faster than 'initializers': a 4-layer width-256 model, 128 prompts, ~900-1350 vs
   * ~530-630 tokens/s — each session's thread pool spins). 'initializers' (default for quantised weights): one
   * session per layer with its weights inside (a layer < 1.5 GB), what a GPU provider needs to keep them in its
   * memory instead of copying them at every run, and what lets MatMulNBits prepack its codes on the CPU instead of
   * widening them at every run (Meta-Llama-3-8B Q4_K_M's structure, 4 × 16 tokens: 16.8 vs 61 CPU s, peak RSS
   * 6.7 vs 6.45 GB; tools/llama-quant-memory.ts --llama3-8b).
   */
  weights?: 'initializers' | 'inputs';
  /** Every weight widened to float32 as before quantised weights were kept (for comparisons; needs 4 bytes a weight). */
  dequantize?: boolean;
}

/** Runs a loaded decoder and returns ShareLock's text features (final-norm hidden state of the last token). */
export class LlamaEncoder {
  private constructor(
    readonly info: LlamaModelInfo,
    readonly tokenizer: Tokenizer | null,
    private readonly weights: LlamaWeights,
    /** Per layer: the session that runs it and the weights it is fed (none when they are its initializers). */
    private readonly layers: { session: ModelSession; feeds: Feeds }[],
    private readonly batchSize: number,
  ) {}

  /** A model that cannot fit is refused (`checkLlamaFits`) before any weight is read. */
  static async load(src: LlamaSource, o: LlamaEncoderOptions = {}): Promise<LlamaEncoder> {
    const c = src.info.config;
    const info = o.dequantize ? describe(src.info.file, src.info.format, c, src.info.fileBytes) : src.info;
    checkLlamaFits(info, o.totalMemory);
    const weights = src.loadWeights({ dequantize: o.dequantize });
    const layerBytes = (info.weightBytes - 4 * c.dim - embedBytes(weights.embed)) / c.layers;
    const quantised = weights.layers.some((l) => Object.values(layerLayout(l)).some((f) => f !== 'f32'));
    const mode = o.weights ?? (quantised ? 'initializers' : 'inputs');
    if (mode === 'initializers' && layerBytes > MAX_INITIALIZER_LAYER) {
      throw new FlaneurError(
        'UNSUPPORTED_MODEL',
        `${path.basename(src.info.file)} has layers of ${gb(layerBytes)}, too large to hold inside a graph (at most 1.5 GB).`,
      );
    }
    const runtime = o.runtime ?? DEFAULT_RUNTIME;
    let layers: { session: ModelSession; feeds: Feeds }[];
    if (mode === 'initializers') {
      layers = [];
      // each layer's weights let go once its session holds them (never all of them twice)
      const pending = weights.layers;
      weights.layers = [];
      while (pending.length) {
        const l = pending.shift() as LlamaLayerWeights;
        layers.push({ session: await ModelSession.create(buildLlamaLayer(c, l), runtime, ARENA), feeds: {} });
      }
    } else {
      // one session per layout (a Q4_K_M file mixes Q4_K and Q6_K layers: two or three sessions)
      const sessions = new Map<string, ModelSession>();
      layers = [];
      for (const l of weights.layers) {
        const layout = layerLayout(l);
        const key = JSON.stringify(layout);
        let session = sessions.get(key);
        if (!session) {
          session = await ModelSession.create(buildLlamaLayer(c, undefined, layout), runtime, ARENA);
          sessions.set(key, session);
        }
        const feeds = Object.fromEntries(
          [...layerTensors(c, l)].map(([k, v]) => [
            k,
            'dtype' in v ? new ort.Tensor('uint8', v.data, v.dims) : new ort.Tensor('float32', v.data, v.dims),
          ]),
        );
        layers.push({ session, feeds });
      }
    }
    return new LlamaEncoder(info, src.tokenizer, weights, layers, o.batchSize ?? 32);
  }

  get dim(): number {
    return this.info.config.dim;
  }

  /** Token ids of each text as the model's tokenizer makes them (BOS, no chat template), cut to the context. */
  tokenize(texts: readonly string[]): number[][] {
    const tok = this.tokenizer;
    if (!tok) {
      throw new FlaneurError(
        'UNSUPPORTED_MODEL',
        `${path.basename(this.info.file)} has no tokenizer Flaneur can read. Use the model's GGUF file, which carries its tokenizer.`,
      );
    }
    return texts.map((t) => tok.encode(t).slice(0, this.info.config.contextLength));
  }

  async encodeTexts(texts: readonly string[]): Promise<Float32Array[]> {
    return this.encodeIds(this.tokenize(texts));
  }

  /**
   * Features of token sequences. Sequences of similar length share a left-padded batch (RoPE depends only on
   * relative positions and padding is masked, so a text's feature does not depend on its batch).
   */
  async encodeIds(seqs: readonly (readonly number[])[]): Promise<Float32Array[]> {
    const c = this.info.config;
    for (const s of seqs) {
      if (s.length === 0) throw new FlaneurError('INVALID_ARGUMENT', 'An empty text has no last token to describe it.');
      for (const id of s) {
        if (!Number.isInteger(id) || id < 0 || id >= c.vocab)
          throw new FlaneurError('INVALID_ARGUMENT', `Token id ${id} is outside the vocabulary (${c.vocab}).`);
      }
    }
    const order = seqs.map((_, i) => i).sort((a, b) => (seqs[a] as number[]).length - (seqs[b] as number[]).length);
    const out = new Array<Float32Array>(seqs.length);
    // Attention scores are batch × heads × T² floats: long texts go in smaller batches (at least one text each).
    const fits = (n: number, T: number) => n * c.heads * T * T * 4 <= ATTENTION_BUDGET;
    let at = 0;
    while (at < order.length) {
      let n = 1;
      while (
        at + n < order.length &&
        n < this.batchSize &&
        fits(n + 1, (seqs[order[at + n] as number] as number[]).length)
      )
        n++;
      const idx = order.slice(at, at + n);
      const feats = await this.forwardBatch(idx.map((i) => seqs[i] as number[]));
      idx.forEach((i, k) => {
        out[i] = feats[k] as Float32Array;
      });
      at += n;
    }
    return out;
  }

  /** One left-padded batch through every layer; returns the final-norm hidden state of each row's last token. */
  async forwardBatch(seqs: readonly (readonly number[])[]): Promise<Float32Array[]> {
    const c = this.info.config;
    const B = seqs.length;
    const T = Math.max(...seqs.map((s) => s.length));
    const D = c.dim;
    // ShareLock pads with EOS (pad_token = eos_token); padded positions are masked, so only the id's range matters.
    const pad = this.tokenizer?.eos ?? 0;
    const h = new Float32Array(B * T * D);
    const bias = new Float32Array(B * T * T);
    for (let r = 0; r < B; r++) {
      const s = seqs[r] as number[];
      const p = T - s.length;
      for (let t = 0; t < T; t++) {
        const id = t < p ? pad : (s[t - p] as number);
        h.set(embedRow(this.weights.embed, id, D), (r * T + t) * D);
        for (let j = 0; j < T; j++) bias[(r * T + t) * T + j] = j > t || j < p ? FINFO_MIN : 0;
      }
    }
    const { cos, sin } = ropeCosSin(c, T);
    const shared: Feeds = {
      bias: new ort.Tensor('float32', bias, [B, 1, 1, T, T]),
      cos: new ort.Tensor('float32', cos, [T, c.headDim]),
      sin: new ort.Tensor('float32', sin, [T, c.headDim]),
    };
    let hidden: ort.Tensor = new ort.Tensor('float32', h, [B, T, D]);
    for (const { session, feeds } of this.layers) {
      const res = await session.run({ ...feeds, ...shared, h: hidden });
      hidden = res.out as ort.Tensor;
    }
    const data = hidden.data as Float32Array;
    const out: Float32Array[] = [];
    for (let r = 0; r < B; r++) {
      const v = data.subarray((r * T + T - 1) * D, (r * T + T) * D);
      out.push(rmsNormHost(v, this.weights.norm, c.eps));
    }
    return out;
  }

  async close(): Promise<void> {
    for (const s of new Set(this.layers.map((l) => l.session))) await s.release();
  }
}

/** One token's embedding: a row of the float32 table, or its stored blocks widened. */
function embedRow(e: LlamaWeights['embed'], id: number, D: number): Float32Array {
  if (e instanceof Float32Array) return e.subarray(id * D, (id + 1) * D);
  return dequantize(e.raw.subarray(id * e.rowBytes, (id + 1) * e.rowBytes), e.type, D);
}

function embedBytes(e: LlamaWeights['embed']): number {
  return e instanceof Float32Array ? e.byteLength : e.raw.length;
}

/** Final RMSNorm of one vector: w * x / sqrt(mean(x²) + eps). */
function rmsNormHost(x: Float32Array, w: Float32Array, eps: number): Float32Array {
  let ss = 0;
  for (const v of x) ss += v * v;
  const inv = 1 / Math.sqrt(ss / x.length + eps);
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = (w[i] as number) * Math.fround((x[i] as number) * inv);
  return out;
}
