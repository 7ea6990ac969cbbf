/**
 * GGUF files (llama.cpp's format: the files local-LLM users have) read without loading them whole: the header
 * (metadata key/values and tensor descriptions) is parsed and bounds-checked first, then each tensor is read from
 * the file when asked for and widened to float32 (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 blocks and the
 * k-quants Q4_K, Q5_K, Q6_K of the common Q4_K_M / Q5_K_M / Q6_K files).
 * Layout: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md — dims are ggml's (fastest first), so a
 * PyTorch [out, in] matrix is stored as dims [in, out] with the same bytes.
 */
import fs from 'node:fs';
import path from 'node:path';
import { FlaneurError } from '../api/errors.js';
import { readAt } from '../models/regular-file.js';
import { f16ToF32, openRegular } from '../models/safetensors.js';

export type GgufScalar = number | bigint | boolean | string;
export type GgufValue = GgufScalar | GgufScalar[];

/** ggml tensor types this reader dequantises, by their number in ggml.h. */
export const GGML_TYPES = {
  F32: 0,
  F16: 1,
  Q4_0: 2,
  Q4_1: 3,
  Q5_0: 6,
  Q5_1: 7,
  Q8_0: 8,
  Q4_K: 12,
  Q5_K: 13,
  Q6_K: 14,
  BF16: 30,
} as const;
export type GgmlTypeName = keyof typeof GGML_TYPES;

/** Elements per block and bytes per block of each type. */
const BLOCK: Record<number, { n: number; bytes: number; name: GgmlTypeName }> = {
  0: { n: 1, bytes: 4, name: 'F32' },
  1: { n: 1, bytes: 2, name: 'F16' },
  2: { n: 32, bytes: 18, name: 'Q4_0' },
  3: { n: 32, bytes: 20, name: 'Q4_1' },
  6: { n: 32, bytes: 22, name: 'Q5_0' },
  7: { n: 32, bytes: 24, name: 'Q5_1' },
  8: { n: 32, bytes: 34, name: 'Q8_0' },
  12: { n: 256, bytes: 144, name: 'Q4_K' },
  13: { n: 256, bytes: 176, name: 'Q5_K' },
  14: { n: 256, bytes: 210, name: 'Q6_K' },
  30: { n: 1, bytes: 2, name: 'BF16' },
};

export interface GgufTensor {
  name: string;
  /** ggml order: dims[0] is the fastest-varying (a row's length). */
  dims: number[];
  type: number;
  typeName: string;
  /** Byte offset inside the data section and byte length. */
  offset: number;
  bytes: number;
}

export interface GgufFile {
  version: number;
  metadata: Map<string, GgufValue>;
  tensors: Map<string, GgufTensor>;
  /** Bytes of tensor data (what loading the weights reads). */
  dataBytes: number;
  fileBytes: number;
  /** The tensor widened to float32, row-major with the PyTorch shape (dims reversed). */
  float32(name: string): Float32Array;
  /** The tensor's bytes as stored (ggml blocks, rows of dims[0] values), for weights kept quantised. */
  raw(name: string): Buffer;
}

/** Bytes of `count` values of a ggml type (whole blocks). */
export function ggmlBytes(type: number, count: number): number {
  const b = BLOCK[type];
  if (!b) throw new FlaneurError('UNSUPPORTED_MODEL', `ggml type ${type} cannot be read.`);
  return (count / b.n) * b.bytes;
}

const MAGIC = 0x46554747; // "GGUF" little-endian
const MAX_TENSORS = 65_536;
const MAX_KV = 65_536;
const MAX_ARRAY = 4_000_000;
const MAX_STRING = 16 * 2 ** 20;
const MAX_HEADER = 256 * 2 ** 20;

function notGguf(source: string, why: string): FlaneurError {
  return new FlaneurError(
    'INVALID_MODEL',
    `${source} is not a valid GGUF model: ${why}. Download the model again, or choose its .gguf file.`,
  );
}

/** A forward-only reader over the file's header, reading it in chunks as far as it goes. */
class HeaderCursor {
  private buf: Buffer = Buffer.alloc(0);
  private bufStart = 0;
  pos = 0;

  constructor(
    private readonly fd: number,
    private readonly size: number,
    private readonly source: string,
  ) {}

  private need(n: number): Buffer {
    if (this.pos + n > this.size) throw notGguf(this.source, 'the file ends inside its header');
    if (this.pos + n > MAX_HEADER) throw notGguf(this.source, 'its header is larger than 256 MB');
    const end = this.bufStart + this.buf.length;
    if (this.pos < this.bufStart || this.pos + n > end) {
      const len = Math.min(Math.max(n, 1 << 20), this.size - this.pos);
      this.buf = readAt(this.fd, len, this.pos);
      this.bufStart = this.pos;
      if (this.buf.length < n) throw notGguf(this.source, 'the file ends inside its header');
    }
    const at = this.pos - this.bufStart;
    this.pos += n;
    return this.buf.subarray(at, at + n);
  }

  u8(): number {
    return this.need(1).readUInt8(0);
  }
  i8(): number {
    return this.need(1).readInt8(0);
  }
  u16(): number {
    return this.need(2).readUInt16LE(0);
  }
  i16(): number {
    return this.need(2).readInt16LE(0);
  }
  u32(): number {
    return this.need(4).readUInt32LE(0);
  }
  i32(): number {
    return this.need(4).readInt32LE(0);
  }
  f32(): number {
    return this.need(4).readFloatLE(0);
  }
  f64(): number {
    return this.need(8).readDoubleLE(0);
  }
  u64(): bigint {
    return this.need(8).readBigUInt64LE(0);
  }
  i64(): bigint {
    return this.need(8).readBigInt64LE(0);
  }
  /** A uint64 that must be a safe count no larger than `max`. */
  count(max: number, what: string): number {
    const v = this.u64();
    if (v > BigInt(max)) throw notGguf(this.source, `it declares ${v} ${what} (at most ${max} are plausible)`);
    return Number(v);
  }
  string(): string {
    const n = this.count(MAX_STRING, 'bytes in one string');
    return this.need(n).toString('utf8');
  }
}

function readValue(c: HeaderCursor, type: number, source: string, depth = 0): GgufValue {
  switch (type) {
    case 0:
      return c.u8();
    case 1:
      return c.i8();
    case 2:
      return c.u16();
    case 3:
      return c.i16();
    case 4:
      return c.u32();
    case 5:
      return c.i32();
    case 6:
      return c.f32();
    case 7:
      return c.u8() !== 0;
    case 8:
      return c.string();
    case 9: {
      if (depth > 0) throw notGguf(source, 'it nests arrays inside arrays');
      const itemType = c.u32();
      const n = c.count(MAX_ARRAY, 'array items');
      const out: GgufScalar[] = new Array(n);
      for (let i = 0; i < n; i++) out[i] = readValue(c, itemType, source, depth + 1) as GgufScalar;
      return out;
    }
    case 10:
      return c.u64();
    case 11:
      return c.i64();
    case 12:
      return c.f64();
    default:
      throw notGguf(source, `a metadata value has an unknown type (${type})`);
  }
}

/** Reads a GGUF file's header; tensor data is read when `float32` is called. Only regular files are read. */
export function readGguf(file: string, source = path.basename(file)): GgufFile {
  const { fd, size } = openRegular(file, source);
  const metadata = new Map<string, GgufValue>();
  const tensors = new Map<string, GgufTensor>();
  let dataStart = 0;
  let version = 0;
  try {
    const c = new HeaderCursor(fd, size, source);
    if (size < 24 || c.u32() !== MAGIC) throw notGguf(source, 'it does not start with "GGUF"');
    version = c.u32();
    if (version < 2 || version > 3) {
      throw new FlaneurError(
        'UNSUPPORTED_MODEL',
        `${source} is GGUF version ${version}; Flaneur reads versions 2 and 3. Convert it again with a recent llama.cpp.`,
      );
    }
    const nTensors = c.count(MAX_TENSORS, 'tensors');
    const nKv = c.count(MAX_KV, 'metadata entries');
    for (let i = 0; i < nKv; i++) {
      const key = c.string();
      metadata.set(key, readValue(c, c.u32(), source));
    }
    const descs: Omit<GgufTensor, 'bytes' | 'typeName'>[] = [];
    for (let i = 0; i < nTensors; i++) {
      const name = c.string();
      const nd = c.u32();
      if (nd < 1 || nd > 4) throw notGguf(source, `tensor "${name}" has ${nd} dimensions`);
      const dims: number[] = [];
      for (let d = 0; d < nd; d++) dims.push(c.count(2 ** 40, `elements along one axis of "${name}"`));
      const type = c.u32();
      const offset = c.count(Number.MAX_SAFE_INTEGER, 'bytes of offset');
      descs.push({ name, dims, type, offset });
    }
    const alignment = Number(metadata.get('general.alignment') ?? 32);
    if (!Number.isInteger(alignment) || alignment < 1 || alignment > 1 << 20) {
      throw notGguf(source, `its alignment (${alignment}) is not a small positive integer`);
    }
    dataStart = Math.ceil(c.pos / alignment) * alignment;
    const dataLen = size - dataStart;
    for (const d of descs) {
      const block = BLOCK[d.type];
      if (!block) {
        throw new FlaneurError(
          'UNSUPPORTED_MODEL',
          `${source} stores tensor "${d.name}" as ggml type ${d.type}, which Flaneur cannot read yet (it reads F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K). Choose a Q4_K_M, Q8_0 or F16 file of the model.`,
        );
      }
      const n = d.dims.reduce((a, x) => a * x, 1);
      if ((d.dims[0] as number) % block.n !== 0) {
        throw notGguf(source, `tensor "${d.name}" has rows of ${d.dims[0]}, not whole ${block.name} blocks`);
      }
      const bytes = (n / block.n) * block.bytes;
      if (d.offset % alignment !== 0) throw notGguf(source, `tensor "${d.name}" is not aligned`);
      if (d.offset + bytes > dataLen) {
        throw notGguf(source, `tensor "${d.name}" lies beyond the end of the file; it may be truncated`);
      }
      if (tensors.has(d.name)) throw notGguf(source, `tensor "${d.name}" appears twice`);
      tensors.set(d.name, { ...d, bytes, typeName: block.name });
    }
  } finally {
    fs.closeSync(fd);
  }
  const dataBytes = [...tensors.values()].reduce((a, t) => a + t.bytes, 0);
  return {
    version,
    metadata,
    tensors,
    dataBytes,
    fileBytes: size,
    float32(name: string): Float32Array {
      const t = tensors.get(name);
      if (!t) throw notGguf(source, `it has no tensor "${name}"`);
      return dequantize(
        this.raw(name),
        t.type,
        t.dims.reduce((a, x) => a * x, 1),
      );
    },
    raw(name: string): Buffer {
      const t = tensors.get(name);
      if (!t) throw notGguf(source, `it has no tensor "${name}"`);
      const again = openRegular(file, source);
      try {
        const raw = readAt(again.fd, t.bytes, dataStart + t.offset);
        if (raw.length < t.bytes) throw notGguf(source, `the file ended inside tensor "${name}"`);
        return raw;
      } finally {
        fs.closeSync(again.fd);
      }
    },
  };
}

/** ggml's blocks widened to float32 (dequantize_row_* of ggml-quants.c). */
export function dequantize(raw: Buffer, type: number, n: number): Float32Array {
  const out = new Float32Array(n);
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const half = (at: number) => f16ToF32(dv.getUint16(at, true));
  switch (type) {
    case GGML_TYPES.F32:
      for (let i = 0; i < n; i++) out[i] = dv.getFloat32(4 * i, true);
      return out;
    case GGML_TYPES.F16:
      for (let i = 0; i < n; i++) out[i] = half(2 * i);
      return out;
    case GGML_TYPES.BF16: {
      const u = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) u[i] = dv.getUint16(2 * i, true) << 16;
      return out;
    }
    case GGML_TYPES.Q8_0:
      for (let b = 0; b < n / 32; b++) {
        const at = b * 34;
        const d = half(at);
        for (let j = 0; j < 32; j++) out[b * 32 + j] = d * dv.getInt8(at + 2 + j);
      }
      return out;
    case GGML_TYPES.Q4_0:
    case GGML_TYPES.Q4_1: {
      const q41 = type === GGML_TYPES.Q4_1;
      const size = q41 ? 20 : 18;
      const qs = q41 ? 4 : 2;
      for (let b = 0; b < n / 32; b++) {
        const at = b * size;
        const d = half(at);
        const m = q41 ? half(at + 2) : -8 * d;
        for (let j = 0; j < 16; j++) {
          const byte = dv.getUint8(at + qs + j);
          out[b * 32 + j] = (byte & 0x0f) * d + m;
          out[b * 32 + j + 16] = (byte >> 4) * d + m;
        }
      }
      return out;
    }
    case GGML_TYPES.Q5_0:
    case GGML_TYPES.Q5_1: {
      const q51 = type === GGML_TYPES.Q5_1;
      const size = q51 ? 24 : 22;
      const hAt = q51 ? 4 : 2;
      for (let b = 0; b < n / 32; b++) {
        const at = b * size;
        const d = half(at);
        const m = q51 ? half(at + 2) : -16 * d;
        const qh = dv.getUint32(at + hAt, true);
        for (let j = 0; j < 16; j++) {
          const byte = dv.getUint8(at + hAt + 4 + j);
          const lo = (byte & 0x0f) | (((qh >>> j) & 1) << 4);
          const hi = (byte >> 4) | ((qh >>> (j + 12)) & 0x10);
          out[b * 32 + j] = lo * d + m;
          out[b * 32 + j + 16] = hi * d + m;
        }
      }
      return out;
    }
    case GGML_TYPES.Q4_K:
    case GGML_TYPES.Q5_K:
      return dequantizeQ45K(dv, type === GGML_TYPES.Q5_K, n, out);
    case GGML_TYPES.Q6_K:
      return dequantizeQ6K(dv, n, out);
    default:
      throw new FlaneurError('UNSUPPORTED_MODEL', `ggml type ${type} cannot be read.`);
  }
}

/** The 6-bit scale and min of sub-block j of a k-quant super-block (ggml's get_scale_min_k4). */
export function scaleMinK4(dv: DataView, at: number, j: number): [number, number] {
  if (j < 4) return [dv.getUint8(at + j) & 63, dv.getUint8(at + j + 4) & 63];
  const hi = dv.getUint8(at + j + 4);
  return [(hi & 0xf) | ((dv.getUint8(at + j - 4) >> 6) << 4), (hi >> 4) | ((dv.getUint8(at + j) >> 6) << 4)];
}

/** Super-block b of Q4_K / Q5_K: its offset, d, dmin, and where its fifth bits (Q5_K) and nibbles start. */
export function kQuant45Block(
  dv: DataView,
  five: boolean,
  b: number,
): { at: number; d: number; dmin: number; qh: number; qs: number } {
  const at = b * (five ? 176 : 144);
  return {
    at,
    d: f16ToF32(dv.getUint16(at, true)),
    dmin: f16ToF32(dv.getUint16(at + 2, true)),
    qh: at + 16,
    qs: five ? at + 48 : at + 16,
  };
}

/**
 * Q4_K (d, dmin, 12 bytes of 6-bit scales/mins, 128 bytes of nibbles) and Q5_K (the same + 32 bytes of fifth bits
 * before the nibbles): 8 sub-blocks of 32, value = d·scale·q − dmin·min; each 64 values share 32 bytes, low nibbles
 * first (ggml's dequantize_row_q4_K / q5_K).
 */
function dequantizeQ45K(dv: DataView, five: boolean, n: number, out: Float32Array): Float32Array {
  for (let b = 0; b < n / 256; b++) {
    const { at, d, dmin, qh, qs } = kQuant45Block(dv, five, b);
    for (let g = 0; g < 4; g++) {
      const [s1, m1] = scaleMinK4(dv, at + 4, 2 * g);
      const [s2, m2] = scaleMinK4(dv, at + 4, 2 * g + 1);
      for (let l = 0; l < 32; l++) {
        const byte = dv.getUint8(qs + 32 * g + l);
        const high = five ? dv.getUint8(qh + l) : 0;
        const lo = (byte & 0xf) + (five && high & (1 << (2 * g)) ? 16 : 0);
        const hi = (byte >> 4) + (five && high & (2 << (2 * g)) ? 16 : 0);
        out[b * 256 + 64 * g + l] = d * s1 * lo - dmin * m1;
        out[b * 256 + 64 * g + 32 + l] = d * s2 * hi - dmin * m2;
      }
    }
  }
  return out;
}

/**
 * Q6_K: 128 bytes of low nibbles, 64 of high 2-bit pairs, 16 int8 scales (one per 16 values), d; value =
 * d·scale·(q − 32), in two halves of 128 (ggml's dequantize_row_q6_K).
 */
function dequantizeQ6K(dv: DataView, n: number, out: Float32Array): Float32Array {
  for (let b = 0; b < n / 256; b++) {
    const at = b * 210;
    const d = f16ToF32(dv.getUint16(at + 208, true));
    for (let half = 0; half < 2; half++) {
      const ql = at + 64 * half;
      const qh = at + 128 + 32 * half;
      const sc = at + 192 + 8 * half;
      const y = b * 256 + 128 * half;
      for (let l = 0; l < 32; l++) {
        const is = l >> 4;
        const h = dv.getUint8(qh + l);
        const a = dv.getUint8(ql + l);
        const c = dv.getUint8(ql + l + 32);
        const q1 = ((a & 0xf) | ((h & 3) << 4)) - 32;
        const q2 = ((c & 0xf) | (((h >> 2) & 3) << 4)) - 32;
        const q3 = ((a >> 4) | (((h >> 4) & 3) << 4)) - 32;
        const q4 = ((c >> 4) | (((h >> 6) & 3) << 4)) - 32;
        out[y + l] = d * dv.getInt8(sc + is) * q1;
        out[y + l + 32] = d * dv.getInt8(sc + is + 2) * q2;
        out[y + l + 64] = d * dv.getInt8(sc + is + 4) * q3;
        out[y + l + 96] = d * dv.getInt8(sc + is + 6) * q4;
      }
    }
  }
  return out;
}

/** A metadata value as a number (integer or float types), or undefined. */
export function metaNumber(meta: ReadonlyMap<string, GgufValue>, key: string): number | undefined {
  const v = meta.get(key);
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  return undefined;
}

export function metaString(meta: ReadonlyMap<string, GgufValue>, key: string): string | undefined {
  const v = meta.get(key);
  return typeof v === 'string' ? v : undefined;
}
