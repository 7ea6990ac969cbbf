/**
 * Tiny Llama-architecture models for tests, written as GGUF (as llama.cpp's convert_hf_to_gguf.py writes them:
 * ggml dims, q/k rows permuted for its interleaved rotary layout, tokenizer in tokenizer.ggml.*) and as
 * .safetensors in Hugging Face names with config.json. Tensors F32, F16, Q8_0 or Q4_0 (ggml's reference
 * quantisers). Small vocabularies: a byte-level BPE one (Llama-3 style) and a SentencePiece one.
 */
import fs from 'node:fs';
import path from 'node:path';
import { encodeSafetensors, f16ToF32, f32ToF16 } from '../../native/models/safetensors.js';
import { GGML_TYPES, type GgmlTypeName, ggmlBytes } from '../../native/text/gguf.js';

type MetaValue =
  | { type: 'u32' | 'i32' | 'f32' | 'u64'; value: number }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string }
  | { type: 'strings'; value: readonly string[] }
  | { type: 'f32s' | 'i32s'; value: readonly number[] };

export interface GgufTensorToWrite {
  /** PyTorch shape (written reversed, as ggml dims). */
  shape: readonly number[];
  data: Float32Array;
  type?: GgmlTypeName;
  /** Already packed blocks of `type` (k-quants, packed by `packKQuant`); `data` is then ignored. */
  raw?: Buffer;
}

/** The fields of k-quant super-blocks of 256 values, as ggml's quantizers produce them. */
export interface KQuantBlocks {
  type: 'Q4_K' | 'Q5_K' | 'Q6_K';
  /** Per block: d (and dmin for Q4_K/Q5_K), exact in float16. */
  d: number[];
  dmin: number[];
  /** Per block: 8 scales and 8 mins of 6 bits (Q4_K/Q5_K), or 16 int8 scales (Q6_K). */
  scales: number[][];
  mins: number[][];
  /** Per block: 256 quants (0..15 Q4_K, 0..31 Q5_K, 0..63 Q6_K). */
  q: number[][];
}

/**
 * Packs k-quant blocks byte for byte as ggml's quantize_row_q4_K_ref / q5_K_ref / q6_K_ref lay them out (6-bit
 * scales and mins in 12 bytes; nibbles of values j and j + 32 of each 64 in one byte; Q5_K's fifth bits in
 * qh[j], bit 2g for the low half of group g and 2g + 1 for the high; Q6_K's low nibbles of j/j+64 and j+32/j+96,
 * high pairs of j, j+32, j+64, j+96 in one byte).
 */
export function packKQuant(k: KQuantBlocks): Buffer {
  const size = k.type === 'Q4_K' ? 144 : k.type === 'Q5_K' ? 176 : 210;
  const out = Buffer.alloc(size * k.q.length);
  k.q.forEach((L, b) => {
    const at = b * size;
    if (k.type === 'Q6_K') {
      for (let half = 0; half < 2; half++) {
        const n = 128 * half;
        for (let l = 0; l < 32; l++) {
          const v = (i: number) => L[n + l + i] as number;
          out[at + 64 * half + l] = (v(0) & 0xf) | ((v(64) & 0xf) << 4);
          out[at + 64 * half + l + 32] = (v(32) & 0xf) | ((v(96) & 0xf) << 4);
          out[at + 128 + 32 * half + l] = (v(0) >> 4) | ((v(32) >> 4) << 2) | ((v(64) >> 4) << 4) | ((v(96) >> 4) << 6);
        }
      }
      for (const [i, sc] of (k.scales[b] as number[]).entries()) out.writeInt8(sc, at + 192 + i);
      out.writeUInt16LE(f32ToF16(k.d[b] as number), at + 208);
      return;
    }
    out.writeUInt16LE(f32ToF16(k.d[b] as number), at);
    out.writeUInt16LE(f32ToF16(k.dmin[b] as number), at + 2);
    const sc = at + 4;
    for (let j = 0; j < 8; j++) {
      const ls = (k.scales[b] as number[])[j] as number;
      const lm = (k.mins[b] as number[])[j] as number;
      if (j < 4) {
        out[sc + j] = ls;
        out[sc + j + 4] = lm;
      } else {
        out[sc + j + 4] = (ls & 0xf) | ((lm & 0xf) << 4);
        out[sc + j - 4] = (out[sc + j - 4] as number) | ((ls >> 4) << 6);
        out[sc + j] = (out[sc + j] as number) | ((lm >> 4) << 6);
      }
    }
    const five = k.type === 'Q5_K';
    const qh = at + 16;
    const ql = five ? at + 48 : at + 16;
    for (let g = 0; g < 4; g++) {
      for (let j = 0; j < 32; j++) {
        let l1 = L[64 * g + j] as number;
        let l2 = L[64 * g + j + 32] as number;
        if (five && l1 > 15) {
          l1 -= 16;
          out[qh + j] = (out[qh + j] as number) | (1 << (2 * g));
        }
        if (five && l2 > 15) {
          l2 -= 16;
          out[qh + j] = (out[qh + j] as number) | (2 << (2 * g));
        }
        out[ql + 32 * g + j] = l1 | (l2 << 4);
      }
    }
  });
  return out;
}

/**
 * Float values as k-quant super-blocks (for test models; simpler than ggml's make_qkx2 search but the same block
 * layout): Q4_K / Q5_K per sub-block of 32 the range from min(0, min) to max on 16 / 32 levels, Q6_K per 16 the
 * largest magnitude on ±31; the sub-block scales and mins as 6-bit (Q6_K: int8) multiples of a float16 d / dmin.
 */
export function quantizeKQuant(x: Float32Array, type: 'Q4_K' | 'Q5_K' | 'Q6_K'): KQuantBlocks {
  const k: KQuantBlocks = { type, d: [], dmin: [], scales: [], mins: [], q: [] };
  const r16 = (v: number) => f16ToF32(f32ToF16(v));
  for (let b = 0; b < x.length / 256; b++) {
    const v = x.subarray(b * 256, b * 256 + 256);
    const q: number[] = [];
    if (type === 'Q6_K') {
      const s = Array.from(
        { length: 16 },
        (_, i) => Math.max(...Array.from(v.subarray(16 * i, 16 * i + 16), Math.abs)) / 31,
      );
      const d = r16(Math.max(...s) / 127);
      const sc = s.map((x) => (d ? Math.min(127, Math.round(x / d)) : 0));
      for (let i = 0; i < 256; i++) {
        const step = d * (sc[i >> 4] as number);
        q.push(step ? Math.max(0, Math.min(63, Math.round((v[i] as number) / step) + 32)) : 32);
      }
      k.d.push(d);
      k.dmin.push(0);
      k.scales.push(sc);
      k.mins.push([]);
      k.q.push(q);
      continue;
    }
    const levels = type === 'Q4_K' ? 15 : 31;
    const lo = Array.from({ length: 8 }, (_, j) => Math.min(0, ...v.subarray(32 * j, 32 * j + 32)));
    const hi = Array.from({ length: 8 }, (_, j) => Math.max(...v.subarray(32 * j, 32 * j + 32)));
    const s = lo.map((l, j) => ((hi[j] as number) - l) / levels);
    const d = r16(Math.max(...s) / 63);
    const dmin = r16(Math.max(...lo.map((l) => -l)) / 63);
    const sc = s.map((x) => (d ? Math.min(63, Math.round(x / d)) : 0));
    const mn = lo.map((l) => (dmin ? Math.min(63, Math.round(-l / dmin)) : 0));
    for (let i = 0; i < 256; i++) {
      const j = i >> 5;
      const step = d * (sc[j] as number);
      const m = dmin * (mn[j] as number);
      q.push(step ? Math.max(0, Math.min(levels, Math.round(((v[i] as number) + m) / step))) : 0);
    }
    k.d.push(d);
    k.dmin.push(dmin);
    k.scales.push(sc);
    k.mins.push(mn);
    k.q.push(q);
  }
  return k;
}

class Out {
  private chunks: Buffer[] = [];
  length = 0;
  push(b: Buffer): void {
    this.chunks.push(b);
    this.length += b.length;
  }
  u32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v);
    this.push(b);
  }
  u64(v: number): void {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(v));
    this.push(b);
  }
  str(s: string): void {
    const b = Buffer.from(s, 'utf8');
    this.u64(b.length);
    this.push(b);
  }
  concat(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

/** ggml's quantize_row_q8_0_ref: d = max|x| / 127, q = round(x / d). */
export function quantizeQ8_0(x: Float32Array): Buffer {
  const out = Buffer.alloc((x.length / 32) * 34);
  for (let b = 0; b < x.length / 32; b++) {
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[b * 32 + j] as number));
    const d = amax / 127;
    const id = d ? 1 / d : 0;
    out.writeUInt16LE(f32ToF16(d), b * 34);
    for (let j = 0; j < 32; j++) {
      const v = (x[b * 32 + j] as number) * id;
      out.writeInt8(Math.sign(v) * Math.round(Math.abs(v)), b * 34 + 2 + j);
    }
  }
  return out;
}

/** ggml's quantize_row_q4_0_ref: d = (the value of largest magnitude) / -8, q = min(15, trunc(x / d + 8.5)). */
export function quantizeQ4_0(x: Float32Array): Buffer {
  const out = Buffer.alloc((x.length / 32) * 18);
  for (let b = 0; b < x.length / 32; b++) {
    let amax = 0;
    let max = 0;
    for (let j = 0; j < 32; j++) {
      const v = x[b * 32 + j] as number;
      if (Math.abs(v) > amax) {
        amax = Math.abs(v);
        max = v;
      }
    }
    const d = max / -8;
    const id = d ? 1 / d : 0;
    out.writeUInt16LE(f32ToF16(d), b * 18);
    const q = (v: number) => Math.min(15, Math.trunc(v * id + 8.5));
    for (let j = 0; j < 16; j++) {
      out.writeUInt8(q(x[b * 32 + j] as number) | (q(x[b * 32 + j + 16] as number) << 4), b * 18 + 2 + j);
    }
  }
  return out;
}

/**
 * ggml's quantize_row_q4_1_ref / q5_0_ref / q5_1_ref: Q4_1 and Q5_1 keep d = (max − min) / levels and the min;
 * Q5_0 d = (the value of largest magnitude) / −16. Low 4 bits as Q4_0's nibbles (element j low, j + 16 high);
 * Q5's fifth bits in a uint32: bit j for element j, bit j + 16 for element j + 16.
 */
function quantizeQ45(x: Float32Array, type: 'Q4_1' | 'Q5_0' | 'Q5_1'): Buffer {
  const size = type === 'Q4_1' ? 20 : type === 'Q5_0' ? 22 : 24;
  const out = Buffer.alloc((x.length / 32) * size);
  for (let b = 0; b < x.length / 32; b++) {
    const block = x.subarray(b * 32, b * 32 + 32);
    const at = b * size;
    let q: (v: number) => number;
    if (type === 'Q5_0') {
      let amax = 0;
      let max = 0;
      for (const v of block) {
        if (Math.abs(v) > amax) {
          amax = Math.abs(v);
          max = v;
        }
      }
      const d = max / -16;
      const id = d ? 1 / d : 0;
      out.writeUInt16LE(f32ToF16(d), at);
      q = (v) => Math.min(31, Math.trunc(v * id + 16.5));
    } else {
      const min = Math.min(...block);
      const max = Math.max(...block);
      const d = (max - min) / (type === 'Q4_1' ? 15 : 31);
      const id = d ? 1 / d : 0;
      out.writeUInt16LE(f32ToF16(d), at);
      out.writeUInt16LE(f32ToF16(min), at + 2);
      q = (v) => Math.min(type === 'Q4_1' ? 15 : 31, Math.trunc((v - min) * id + 0.5));
    }
    const qsAt = type === 'Q4_1' ? at + 4 : type === 'Q5_0' ? at + 6 : at + 8;
    let qh = 0;
    for (let j = 0; j < 16; j++) {
      const lo = q(block[j] as number);
      const hi = q(block[j + 16] as number);
      out.writeUInt8((lo & 0x0f) | ((hi & 0x0f) << 4), qsAt + j);
      qh |= ((lo >> 4) & 1) << j;
      qh |= ((hi >> 4) & 1) << (j + 16);
    }
    if (type !== 'Q4_1') out.writeUInt32LE(qh >>> 0, qsAt - 4);
  }
  return out;
}

function tensorBytes(t: GgufTensorToWrite): Buffer {
  if (t.raw) return t.raw;
  switch (t.type ?? 'F32') {
    case 'F32':
      return Buffer.from(t.data.buffer.slice(t.data.byteOffset, t.data.byteOffset + t.data.byteLength));
    case 'F16': {
      const b = Buffer.alloc(t.data.length * 2);
      for (let i = 0; i < t.data.length; i++) b.writeUInt16LE(f32ToF16(t.data[i] as number), 2 * i);
      return b;
    }
    case 'Q8_0':
      return quantizeQ8_0(t.data);
    case 'Q4_0':
      return quantizeQ4_0(t.data);
    case 'Q4_1':
    case 'Q5_0':
    case 'Q5_1':
      return quantizeQ45(t.data, t.type as 'Q4_1' | 'Q5_0' | 'Q5_1');
    case 'Q4_K':
    case 'Q5_K':
    case 'Q6_K':
      return packKQuant(quantizeKQuant(t.data, t.type as 'Q4_K' | 'Q5_K' | 'Q6_K'));
    case 'BF16': {
      // truncation of the float32 bits (round-toward-zero; the reader only widens)
      const u = new Uint32Array(t.data.buffer, t.data.byteOffset, t.data.length);
      const b = Buffer.alloc(t.data.length * 2);
      for (let i = 0; i < u.length; i++) b.writeUInt16LE((u[i] as number) >>> 16, 2 * i);
      return b;
    }
    default:
      throw new Error(`the test writer does not quantise ${t.type}`);
  }
}

/** A GGUF v3 file: metadata, tensor descriptions, data aligned to 32 bytes. */
export function encodeGguf(meta: Record<string, MetaValue>, tensors: Record<string, GgufTensorToWrite>): Buffer {
  const blobs = Object.values(tensors).map((t) => {
    const bytes = tensorBytes(t);
    const padded = Buffer.alloc(Math.ceil(bytes.length / 32) * 32);
    bytes.copy(padded);
    return padded;
  });
  const header = ggufHeader(
    meta,
    Object.entries(tensors).map(([name, t], i) => ({
      name,
      shape: t.shape,
      type: t.type,
      bytes: blobs[i]?.length ?? 0,
    })),
  );
  return Buffer.concat([header.bytes, ...blobs]);
}

/**
 * The header of a GGUF file whose tensors have these PyTorch shapes and types (no data: write it, then extend the
 * file to `fileBytes` — a sparse file — to describe a model too large to write, e.g. an 8B Q4_K_M).
 */
export function encodeGgufHeader(
  meta: Record<string, MetaValue>,
  tensors: Record<string, { shape: readonly number[]; type: GgmlTypeName }>,
): { header: Buffer; fileBytes: number } {
  const entries = Object.entries(tensors).map(([name, t]) => {
    const n = t.shape.reduce((a, d) => a * d, 1);
    return { name, ...t, bytes: Math.ceil(ggmlBytes(GGML_TYPES[t.type], n) / 32) * 32 };
  });
  const { bytes, dataBytes } = ggufHeader(meta, entries);
  return { header: bytes, fileBytes: bytes.length + dataBytes };
}

function ggufHeader(
  meta: Record<string, MetaValue>,
  tensors: { name: string; shape: readonly number[]; type?: GgmlTypeName; bytes: number }[],
): { bytes: Buffer; dataBytes: number } {
  const o = new Out();
  o.u32(0x46554747);
  o.u32(3);
  o.u64(tensors.length);
  o.u64(Object.keys(meta).length);
  for (const [k, v] of Object.entries(meta)) {
    o.str(k);
    const scalar = (type: string, value: number | boolean | string) => {
      const b = Buffer.alloc(4);
      if (type === 'u32') b.writeUInt32LE(value as number);
      else if (type === 'i32') b.writeInt32LE(value as number);
      else if (type === 'f32') b.writeFloatLE(value as number);
      return b;
    };
    switch (v.type) {
      case 'u32':
        o.u32(4);
        o.push(scalar('u32', v.value));
        break;
      case 'i32':
        o.u32(5);
        o.push(scalar('i32', v.value));
        break;
      case 'f32':
        o.u32(6);
        o.push(scalar('f32', v.value));
        break;
      case 'u64':
        o.u32(10);
        o.u64(v.value);
        break;
      case 'bool':
        o.u32(7);
        o.push(Buffer.from([v.value ? 1 : 0]));
        break;
      case 'string':
        o.u32(8);
        o.str(v.value);
        break;
      case 'strings':
        o.u32(9);
        o.u32(8);
        o.u64(v.value.length);
        for (const s of v.value) o.str(s);
        break;
      case 'f32s':
      case 'i32s':
        o.u32(9);
        o.u32(v.type === 'f32s' ? 6 : 5);
        o.u64(v.value.length);
        for (const x of v.value) o.push(scalar(v.type === 'f32s' ? 'f32' : 'i32', x));
        break;
    }
  }
  let offset = 0;
  for (const t of tensors) {
    o.str(t.name);
    o.u32(t.shape.length);
    for (const d of [...t.shape].reverse()) o.u64(d);
    o.u32(GGML_TYPES[t.type ?? 'F32']);
    o.u64(offset);
    offset += t.bytes;
  }
  const header = o.concat();
  const start = Math.ceil(header.length / 32) * 32;
  return { bytes: Buffer.concat([header, Buffer.alloc(start - header.length)]), dataBytes: offset };
}

/**
 * Meta-Llama-3-8B as llama.cpp's Q4_K_M writes it: Q4_K everywhere but attn_v and ffn_down of layers
 * use_more_bits(i, 32) (the first and last 4, and every third between) and output.weight, which are Q6_K.
 */
function llama3_8bQ4KMTensors(): Record<string, { shape: readonly number[]; type: GgmlTypeName }> {
  const t: Record<string, { shape: readonly number[]; type: GgmlTypeName }> = {
    'token_embd.weight': { shape: [128256, 4096], type: 'Q4_K' },
    'output_norm.weight': { shape: [4096], type: 'F32' },
    'output.weight': { shape: [128256, 4096], type: 'Q6_K' },
  };
  const more = (i: number) => i < 4 || i >= 28 || (i - 4) % 3 === 2;
  for (let i = 0; i < 32; i++) {
    const p = `blk.${i}.`;
    t[`${p}attn_norm.weight`] = { shape: [4096], type: 'F32' };
    t[`${p}attn_q.weight`] = { shape: [4096, 4096], type: 'Q4_K' };
    t[`${p}attn_k.weight`] = { shape: [1024, 4096], type: 'Q4_K' };
    t[`${p}attn_v.weight`] = { shape: [1024, 4096], type: more(i) ? 'Q6_K' : 'Q4_K' };
    t[`${p}attn_output.weight`] = { shape: [4096, 4096], type: 'Q4_K' };
    t[`${p}ffn_norm.weight`] = { shape: [4096], type: 'F32' };
    t[`${p}ffn_gate.weight`] = { shape: [14336, 4096], type: 'Q4_K' };
    t[`${p}ffn_up.weight`] = { shape: [14336, 4096], type: 'Q4_K' };
    t[`${p}ffn_down.weight`] = { shape: [4096, 14336], type: more(i) ? 'Q6_K' : 'Q4_K' };
  }
  return t;
}

/**
 * The header of Meta-Llama-3-8B.Q4_K_M.gguf (its hyper-parameters and tensors, no tokenizer): write it and extend
 * the file to `fileBytes` (sparse: zero weights) to describe or even run an 8B model without its 4.9 GB.
 */
export function llama3_8bQ4KMHeader(): { header: Buffer; fileBytes: number } {
  return encodeGgufHeader(
    {
      'general.architecture': { type: 'string', value: 'llama' },
      'general.name': { type: 'string', value: 'Meta Llama 3 8B' },
      'llama.context_length': { type: 'u32', value: 8192 },
      'llama.embedding_length': { type: 'u32', value: 4096 },
      'llama.block_count': { type: 'u32', value: 32 },
      'llama.feed_forward_length': { type: 'u32', value: 14336 },
      'llama.attention.head_count': { type: 'u32', value: 32 },
      'llama.attention.head_count_kv': { type: 'u32', value: 8 },
      'llama.rope.freq_base': { type: 'f32', value: 500000 },
      'llama.attention.layer_norm_rms_epsilon': { type: 'f32', value: 1e-5 },
    },
    llama3_8bQ4KMTensors(),
  );
}

export interface TinyLlamaConfig {
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  rms_norm_eps: number;
  rope_theta: number;
  bos_token_id: number;
  eos_token_id: number;
}

/** A tiny config (vocabulary 300 with BOS 1 and EOS 2, 4 heads sharing 2 key/value heads) with overrides. */
export function tinyLlamaConfig(o: Partial<TinyLlamaConfig> = {}): TinyLlamaConfig {
  return {
    vocab_size: 300,
    hidden_size: 32,
    intermediate_size: 48,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    bos_token_id: 1,
    eos_token_id: 2,
    ...o,
  };
}

/** GPT-2's bytes_to_unicode. */
function byteChars(): string[] {
  const keep: number[] = [];
  for (let b = 33; b <= 126; b++) keep.push(b);
  for (let b = 161; b <= 172; b++) keep.push(b);
  for (let b = 174; b <= 255; b++) keep.push(b);
  let n = 0;
  return Array.from({ length: 256 }, (_, b) => String.fromCodePoint(keep.includes(b) ? b : 256 + n++));
}

/**
 * A byte-level BPE vocabulary of `size` tokens (Llama-3 style): 0 <|pad|>, 1 <|begin_of_text|>, 2 <|end_of_text|>,
 * 3..258 the 256 byte characters, then the merged words of MERGES, then reserved tokens.
 */
export const BPE_MERGES = [
  'Ġ t',
  't h',
  'Ġt h',
  'Ġth e',
  'Ġ a',
  'Ġ d',
  'Ġd o',
  'Ġdo g',
  'Ġ p',
  'Ġp h',
  'Ġph o',
  'Ġpho t',
  'Ġphot o',
  'Ġ o',
  'Ġo f',
  'Ġo n',
  'Ġ c',
  'Ġc a',
  'Ġca t',
  'Ġ b',
  'Ġb o',
  'Ġbo a',
  'Ġboa t',
  'th e',
  '1 2',
  "' S",
];

export function tinyBpeVocab(size = 300): { tokens: string[]; merges: string[] } {
  const tokens = ['<|pad|>', '<|begin_of_text|>', '<|end_of_text|>', ...byteChars()];
  for (const m of BPE_MERGES) {
    const t = m.replace(' ', '');
    if (!tokens.includes(t)) tokens.push(t);
  }
  while (tokens.length < size) tokens.push(`<|reserved_${tokens.length}|>`);
  return { tokens, merges: [...BPE_MERGES] };
}

/** Llama-3's pre-tokenizer regex as its tokenizer.json writes it (Oniguruma, with a case-insensitive group). */
export const LLAMA3_SPLIT_REGEX =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/** The tiny BPE vocabulary as a Hugging Face tokenizer.json of Llama-3's layout (BOS by template). */
export function tinyHfTokenizerJson(size = 300): Record<string, unknown> {
  const v = tinyBpeVocab(size);
  const specials = new Set([0, 1, 2]);
  const vocab: Record<string, number> = {};
  v.tokens.forEach((t, i) => {
    if (!specials.has(i) && !t.startsWith('<|reserved')) vocab[t] = i;
  });
  return {
    version: '1.0',
    added_tokens: [...specials].map((id) => ({ id, content: v.tokens[id], special: true })),
    normalizer: null,
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: LLAMA3_SPLIT_REGEX }, behavior: 'Isolated', invert: false },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    post_processor: {
      type: 'Sequence',
      processors: [
        { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
        {
          type: 'TemplateProcessing',
          single: [{ SpecialToken: { id: '<|begin_of_text|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
        },
      ],
    },
    model: { type: 'BPE', vocab, merges: v.merges.map((m) => m.split(' ')), ignore_merges: true, byte_fallback: false },
  };
}

/** A SentencePiece vocabulary: <unk>, <s>, </s>, 256 byte tokens, then pieces with scores. */
export const SPM_PIECES: [string, number][] = [
  ['▁', -1],
  ['▁a', -2],
  ['▁d', -5],
  ['og', -4],
  ['▁dog', -1.5],
  ['▁p', -6],
  ['ho', -6],
  ['to', -7],
  ['▁pho', -3],
  ['▁photo', -2.5],
  ['▁o', -5],
  ['▁of', -3],
];

export function tinySpmVocab(): { tokens: string[]; scores: number[]; types: number[] } {
  const tokens = ['<unk>', '<s>', '</s>'];
  const scores = [0, 0, 0];
  const types = [2, 3, 3];
  for (let b = 0; b < 256; b++) {
    tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
    scores.push(0);
    types.push(6);
  }
  for (const c of 'abcdefghijklmnopqrstuvwxyz') {
    tokens.push(c);
    scores.push(-10);
    types.push(1);
  }
  for (const [p, s] of SPM_PIECES) {
    tokens.push(p);
    scores.push(s);
    types.push(1);
  }
  return { tokens, scores, types };
}

/** llama.cpp's convert permute of q/k rows: [heads, 2, hd/2, in] -> [heads, hd/2, 2, in]. */
function permuteRows(w: Float32Array, heads: number, rows: number, cols: number): Float32Array {
  const hd = rows / heads;
  const half = hd / 2;
  const out = new Float32Array(w.length);
  for (let h = 0; h < heads; h++)
    for (let s = 0; s < 2; s++)
      for (let j = 0; j < half; j++) {
        const from = (h * hd + s * half + j) * cols;
        out.set(w.subarray(from, from + cols), (h * hd + 2 * j + s) * cols);
      }
  return out;
}

export type HfWeights = Map<string, { shape: number[]; data: Float32Array }>;

export interface GgufLlamaOptions {
  /** Type of the 2-D weights (norms stay F32, as llama.cpp keeps them). */
  type?: GgmlTypeName;
  /** A type for some 2-D weights by GGUF name (as Q4_K_M gives some attn_v / ffn_down Q6_K), else `type`. */
  typeOf?: (ggufName: string) => GgmlTypeName | undefined;
  tokenizer?: 'bpe' | 'spm' | 'none';
  arch?: 'llama' | 'qwen2';
  /** Permute q/k rows as convert_hf_to_gguf.py does for 'llama' (default: for 'llama' only). */
  permute?: boolean;
  /** Llama 3.1 rotary scaling: GGUF gets rope_freqs.weight (these factors), config.json this rope_scaling. */
  ropeFreqs?: readonly number[];
  ropeScaling?: Record<string, unknown>;
}

/** Hugging Face Llama weights + config as a GGUF file, the way convert_hf_to_gguf.py lays them out. */
export function llamaGguf(weights: HfWeights, c: TinyLlamaConfig, o: GgufLlamaOptions = {}): Buffer {
  const arch = o.arch ?? 'llama';
  const t = (name: string) => {
    const w = weights.get(name);
    if (!w) throw new Error(`no ${name}`);
    return w;
  };
  const tensors: Record<string, GgufTensorToWrite> = {};
  const put = (gg: string, hf: string, permuteHeads = 0) => {
    const w = t(hf);
    const data =
      permuteHeads && (o.permute ?? arch === 'llama')
        ? permuteRows(w.data, permuteHeads, w.shape[0] as number, w.shape[1] as number)
        : w.data;
    tensors[gg] = { shape: w.shape, data, type: w.shape.length === 2 ? (o.typeOf?.(gg) ?? o.type ?? 'F32') : 'F32' };
  };
  put('token_embd.weight', 'model.embed_tokens.weight');
  for (let i = 0; i < c.num_hidden_layers; i++) {
    const p = `model.layers.${i}.`;
    put(`blk.${i}.attn_norm.weight`, `${p}input_layernorm.weight`);
    put(`blk.${i}.attn_q.weight`, `${p}self_attn.q_proj.weight`, c.num_attention_heads);
    put(`blk.${i}.attn_k.weight`, `${p}self_attn.k_proj.weight`, c.num_key_value_heads);
    put(`blk.${i}.attn_v.weight`, `${p}self_attn.v_proj.weight`);
    put(`blk.${i}.attn_output.weight`, `${p}self_attn.o_proj.weight`);
    put(`blk.${i}.ffn_norm.weight`, `${p}post_attention_layernorm.weight`);
    put(`blk.${i}.ffn_gate.weight`, `${p}mlp.gate_proj.weight`);
    put(`blk.${i}.ffn_up.weight`, `${p}mlp.up_proj.weight`);
    put(`blk.${i}.ffn_down.weight`, `${p}mlp.down_proj.weight`);
  }
  put('output_norm.weight', 'model.norm.weight');
  if (o.ropeFreqs) tensors['rope_freqs.weight'] = { shape: [o.ropeFreqs.length], data: Float32Array.from(o.ropeFreqs) };
  if (weights.has('lm_head.weight')) put('output.weight', 'lm_head.weight');
  const meta: Record<string, MetaValue> = {
    'general.architecture': { type: 'string', value: arch },
    'general.name': { type: 'string', value: 'tiny-llama-test' },
    [`${arch}.context_length`]: { type: 'u32', value: 64 },
    [`${arch}.embedding_length`]: { type: 'u32', value: c.hidden_size },
    [`${arch}.block_count`]: { type: 'u32', value: c.num_hidden_layers },
    [`${arch}.feed_forward_length`]: { type: 'u32', value: c.intermediate_size },
    [`${arch}.attention.head_count`]: { type: 'u32', value: c.num_attention_heads },
    [`${arch}.attention.head_count_kv`]: { type: 'u32', value: c.num_key_value_heads },
    [`${arch}.rope.freq_base`]: { type: 'f32', value: c.rope_theta },
    [`${arch}.attention.layer_norm_rms_epsilon`]: { type: 'f32', value: c.rms_norm_eps },
  };
  const tok = o.tokenizer ?? 'bpe';
  if (tok === 'bpe') {
    const v = tinyBpeVocab(c.vocab_size);
    Object.assign(meta, {
      'tokenizer.ggml.model': { type: 'string', value: 'gpt2' },
      'tokenizer.ggml.pre': { type: 'string', value: 'llama-bpe' },
      'tokenizer.ggml.tokens': { type: 'strings', value: v.tokens },
      'tokenizer.ggml.merges': { type: 'strings', value: v.merges },
      'tokenizer.ggml.bos_token_id': { type: 'u32', value: c.bos_token_id },
      'tokenizer.ggml.eos_token_id': { type: 'u32', value: c.eos_token_id },
    });
  } else if (tok === 'spm') {
    const v = tinySpmVocab();
    Object.assign(meta, {
      'tokenizer.ggml.model': { type: 'string', value: 'llama' },
      'tokenizer.ggml.tokens': { type: 'strings', value: v.tokens },
      'tokenizer.ggml.scores': { type: 'f32s', value: v.scores },
      'tokenizer.ggml.token_type': { type: 'i32s', value: v.types },
      'tokenizer.ggml.bos_token_id': { type: 'u32', value: 1 },
      'tokenizer.ggml.eos_token_id': { type: 'u32', value: 2 },
    });
  }
  return encodeGguf(meta, tensors);
}

/**
 * Writes a model as `dir/model.gguf` or `dir/model.safetensors` + `dir/config.json` (+ `dir/tokenizer.json` for the
 * BPE tokenizer); returns the file.
 */
export function writeTinyLlama(
  dir: string,
  format: 'gguf' | 'safetensors',
  weights: HfWeights,
  c: TinyLlamaConfig,
  o: GgufLlamaOptions = {},
): string {
  fs.mkdirSync(dir, { recursive: true });
  if (format === 'gguf') {
    const file = path.join(dir, 'model.gguf');
    fs.writeFileSync(file, llamaGguf(weights, c, o));
    return file;
  }
  const file = path.join(dir, 'model.safetensors');
  fs.writeFileSync(
    file,
    encodeSafetensors(new Map([...weights].map(([k, v]) => [k, { shape: v.shape, data: v.data }]))),
  );
  fs.writeFileSync(
    path.join(dir, 'config.json'),
    JSON.stringify({
      ...c,
      model_type: 'llama',
      architectures: ['LlamaForCausalLM'],
      ...(o.ropeScaling ? { rope_scaling: o.ropeScaling } : {}),
    }),
  );
  if ((o.tokenizer ?? 'bpe') === 'bpe') {
    fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(tinyHfTokenizerJson(c.vocab_size)));
  }
  return file;
}

/** Seeded random weights of a tiny Llama (for tests that need a model, not golden outputs). */
export function randomLlamaWeights(c: TinyLlamaConfig, seed = 1): HfWeights {
  let s = seed >>> 0 || 1;
  const rand = () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 2 ** 32 - 0.5;
  };
  const D = c.hidden_size;
  const hd = D / c.num_attention_heads;
  const kv = c.num_key_value_heads * hd;
  const m: HfWeights = new Map();
  const put = (name: string, shape: number[], scale: number, offset = 0) => {
    const n = shape.reduce((a, b) => a * b, 1);
    m.set(name, { shape, data: Float32Array.from({ length: n }, () => offset + rand() * scale) });
  };
  put('model.embed_tokens.weight', [c.vocab_size, D], 1);
  for (let i = 0; i < c.num_hidden_layers; i++) {
    const p = `model.layers.${i}.`;
    put(`${p}input_layernorm.weight`, [D], 0.4, 1);
    put(`${p}self_attn.q_proj.weight`, [D, D], 0.5);
    put(`${p}self_attn.k_proj.weight`, [kv, D], 0.5);
    put(`${p}self_attn.v_proj.weight`, [kv, D], 0.5);
    put(`${p}self_attn.o_proj.weight`, [D, D], 0.5);
    put(`${p}post_attention_layernorm.weight`, [D], 0.4, 1);
    put(`${p}mlp.gate_proj.weight`, [c.intermediate_size, D], 0.5);
    put(`${p}mlp.up_proj.weight`, [c.intermediate_size, D], 0.5);
    put(`${p}mlp.down_proj.weight`, [D, c.intermediate_size], 0.5);
  }
  put('model.norm.weight', [D], 0.4, 1);
  return m;
}
