/**
 * Reading and writing .safetensors: an 8-byte little-endian header length, a JSON header
 * {name: {dtype, shape, data_offsets}}, then the raw little-endian data. f16 and bf16 are widened to f32.
 */
import fs from 'node:fs';
import { FlaneurError } from '../api/errors.js';

export type SafeDType = 'F32' | 'F16' | 'BF16' | 'F64' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

const DTYPE_BYTES: Record<SafeDType, number> = {
  F32: 4,
  F16: 2,
  BF16: 2,
  F64: 8,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};
const MAX_HEADER = 100 * 1024 * 1024;

/** A named tensor of a weight file (safetensors or a PyTorch checkpoint). */
export interface WeightTensor {
  name: string;
  dtype: SafeDType;
  shape: number[];
}

/** What the importers need of a weight file: names, dtypes, shapes, and the data widened to float32. */
export interface WeightFile {
  tensors: Map<string, WeightTensor>;
  metadata: Record<string, string>;
  float32(name: string): Float32Array;
}

export interface TensorEntry extends WeightTensor {
  /** Byte range inside the data section. */
  begin: number;
  end: number;
}

export interface SafetensorsFile extends WeightFile {
  tensors: Map<string, TensorEntry>;
}

function invalid(message: string, details?: string): FlaneurError {
  return new FlaneurError('INVALID_MODEL', message, details ? { details } : {});
}

export function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * 2 ** -14 * (f / 1024);
  if (e === 31) return f ? Number.NaN : s * Number.POSITIVE_INFINITY;
  return s * 2 ** (e - 15) * (1 + f / 1024);
}

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** Round-to-nearest-even float32 -> float16 bits. */
export function f32ToF16(value: number): number {
  scratchF32[0] = value;
  const x = scratchU32[0] as number;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
  e = half >> 10;
  return sign | half;
}

export function parseSafetensors(buf: Buffer, source = 'file'): SafetensorsFile {
  if (buf.length < 8) throw invalid(`${source} is too short to be a .safetensors file (${buf.length} bytes).`);
  const headerLen = Number(buf.readBigUInt64LE(0));
  if (headerLen > MAX_HEADER || 8 + headerLen > buf.length) {
    throw invalid(
      `${source} is truncated or not a .safetensors file: its header says ${headerLen} bytes, the file has ${buf.length}.`,
    );
  }
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(buf.subarray(8, 8 + headerLen).toString('utf8')) as Record<string, unknown>;
  } catch (err) {
    throw invalid(`${source} has an unreadable header (not JSON).`, (err as Error).message);
  }
  const dataStart = 8 + headerLen;
  const dataLen = buf.length - dataStart;
  const tensors = new Map<string, TensorEntry>();
  let metadata: Record<string, string> = {};
  for (const [name, raw] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = (raw ?? {}) as Record<string, string>;
      continue;
    }
    const t = raw as { dtype?: string; shape?: number[]; data_offsets?: [number, number] };
    if (!t || typeof t.dtype !== 'string' || !Array.isArray(t.shape) || !Array.isArray(t.data_offsets)) {
      throw invalid(`Tensor "${name}" in ${source} has a malformed header entry.`);
    }
    if (!(t.dtype in DTYPE_BYTES)) {
      throw invalid(
        `Tensor "${name}" in ${source} has dtype ${t.dtype}; supported: F32, F16, BF16 (and F64, I64, I32, U8, BOOL).`,
      );
    }
    const dtype = t.dtype as SafeDType;
    const [begin, end] = t.data_offsets;
    const n = t.shape.reduce((a, d) => a * d, 1);
    if (end > dataLen) {
      throw invalid(`${source} is truncated: tensor "${name}" ends at byte ${end} of a ${dataLen}-byte data section.`);
    }
    if (end - begin !== n * DTYPE_BYTES[dtype]) {
      throw invalid(
        `Tensor "${name}" in ${source} has ${end - begin} bytes for shape [${t.shape.join(',')}] of ${dtype}.`,
      );
    }
    tensors.set(name, { name, dtype, shape: t.shape, begin, end });
  }

  return {
    tensors,
    metadata,
    float32(name) {
      const t = tensors.get(name);
      if (!t) throw invalid(`Tensor "${name}" is not in ${source}.`);
      const bytes = buf.subarray(dataStart + t.begin, dataStart + t.end);
      const n = (t.end - t.begin) / DTYPE_BYTES[t.dtype];
      const out = new Float32Array(n);
      const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      switch (t.dtype) {
        case 'F32':
          for (let i = 0; i < n; i++) out[i] = dv.getFloat32(i * 4, true);
          break;
        case 'F16':
          for (let i = 0; i < n; i++) out[i] = f16ToF32(dv.getUint16(i * 2, true));
          break;
        case 'BF16': {
          // bfloat16 is the top half of a float32.
          const bits = new Uint32Array(out.buffer);
          for (let i = 0; i < n; i++) bits[i] = dv.getUint16(i * 2, true) << 16;
          break;
        }
        case 'F64':
          for (let i = 0; i < n; i++) out[i] = dv.getFloat64(i * 8, true);
          break;
        default:
          throw invalid(`Tensor "${name}" in ${source} is ${t.dtype}, not a floating-point tensor.`);
      }
      return out;
    },
  };
}

export function readSafetensors(file: string): SafetensorsFile {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (err) {
    throw new FlaneurError('IO_ERROR', `Cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
  return parseSafetensors(buf, file);
}

export interface TensorToWrite {
  shape: readonly number[];
  data: Float32Array;
  dtype?: 'F32' | 'F16';
}

/** Serializes tensors (sorted by name, 8-byte aligned header) with optional string metadata. */
export function encodeSafetensors(
  tensors: ReadonlyMap<string, TensorToWrite> | Record<string, TensorToWrite>,
  metadata: Record<string, string> = {},
): Buffer {
  const entries = (tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors)).sort(([a], [b]) =>
    a < b ? -1 : 1,
  );
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  const blobs: Buffer[] = [];
  for (const [name, t] of entries) {
    const dtype = t.dtype ?? 'F32';
    let blob: Buffer;
    if (dtype === 'F32') {
      blob = Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    } else {
      blob = Buffer.alloc(t.data.length * 2);
      for (let i = 0; i < t.data.length; i++) blob.writeUInt16LE(f32ToF16(t.data[i] as number), i * 2);
    }
    header[name] = { dtype, shape: [...t.shape], data_offsets: [offset, offset + blob.length] };
    offset += blob.length;
    blobs.push(blob);
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  return Buffer.concat([len, Buffer.from(json), ...blobs]);
}
