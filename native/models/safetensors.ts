/**
 * Reading and writing .safetensors: an 8-byte little-endian header length, a JSON header
 * {name: {dtype, shape, data_offsets}}, then the raw little-endian data. f16 and bf16 are widened to f32.
 */
import fs from 'node:fs';
import path from 'node:path';
import { FlaneurError } from '../api/errors.js';
import { openRegularFile, readAt } from './regular-file.js';

export type SafeDType = 'F32' | 'F16' | 'BF16' | 'F64' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

/** Bytes per element of each dtype (safetensors' names; PyTorch storages use the same ones). */
export const DTYPE_BYTES: Record<SafeDType, number> = {
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

/** A byte count for people: "248 KB", "1.9 GB", "2.3 EB" (powers of 1000, as file managers show sizes). */
export function bytesText(n: number): string {
  const units = ['bytes', 'KB', 'MB', 'GB', 'TB', 'PB', 'EB', 'ZB'];
  if (!Number.isFinite(n) || n < 1000) return `${Number.isFinite(n) ? n : '∞'} ${n === 1 ? 'byte' : 'bytes'}`;
  let u = 0;
  let v = n;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return `${v >= 100 ? Math.round(v) : v.toFixed(1).replace(/\.0$/, '')} ${units[u]}`;
}

/** Bounds on what a header may describe; the largest ViT we import has about 600 tensors and a 150 KB header. */
export const MAX_HEADER_BYTES = 8_000_000;
export const MAX_TENSORS = 16_384;
const MAX_RANK = 8;
const MAX_NAME = 1024;

function notAModel(source: string, why: string, details?: string): FlaneurError {
  return invalid(
    `${source} is not a valid model: ${why}. Download the model again, or choose its .safetensors file.`,
    details,
  );
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/**
 * A header value as a short text for a message. Never recursive: only the first items of an array are shown, and
 * nested arrays or objects as […] / {…} (a header of 100,000 nested arrays overflowed the stack of JSON.stringify).
 */
function shownValue(v: unknown): string {
  const inner = (x: unknown): string =>
    Array.isArray(x) ? '[…]' : x !== null && typeof x === 'object' ? '{…}' : String(JSON.stringify(x) ?? String(x));
  const s = Array.isArray(v)
    ? `[${v.slice(0, 8).map(inner).join(',')}${v.length > 8 ? ',…' : ''}]`
    : v !== null && typeof v === 'object'
      ? '{…}'
      : inner(v);
  return s.length > 40 ? `${s.slice(0, 40)}…` : s;
}

export interface SafetensorsHeader {
  tensors: Map<string, TensorEntry>;
  metadata: Record<string, string>;
}

/**
 * Checks a header completely before anything is built from it: a JSON object of at most MAX_TENSORS entries, each
 * with a known dtype, a shape of at most MAX_RANK non-negative integers, integer offsets inside the data section whose
 * length matches shape × dtype, and no two tensors overlapping. Work and memory are linear in the header's size.
 */
export function parseSafetensorsHeader(json: string, dataLen: number, source: string): SafetensorsHeader {
  let header: unknown;
  try {
    header = JSON.parse(json);
  } catch (err) {
    throw notAModel(source, 'its header is not readable (not JSON)', (err as Error).message);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) {
    throw notAModel(source, `its header is ${shownValue(header)}, not a table of tensors`);
  }
  const entries = Object.entries(header as Record<string, unknown>);
  if (entries.length > MAX_TENSORS + 1) {
    throw notAModel(source, `its header lists ${entries.length} tensors, more than the ${MAX_TENSORS} Flaneur reads`);
  }
  const tensors = new Map<string, TensorEntry>();
  let metadata: Record<string, string> = {};
  for (const [name, raw] of entries) {
    if (name === '__metadata__') {
      if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
        throw notAModel(source, `its metadata is ${shownValue(raw)}, not a table of texts`);
      }
      const m: Record<string, string> = {};
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== 'string') throw notAModel(source, `its metadata "${k}" is ${shownValue(v)}, not a text`);
        m[k] = v;
      }
      metadata = m;
      continue;
    }
    const shown = name.length > 80 ? `${name.slice(0, 80)}…` : name;
    if (name.length > MAX_NAME) throw notAModel(source, `a tensor name is ${name.length} characters long`);
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
      throw notAModel(source, `tensor "${shown}" is described as ${shownValue(raw)}`);
    }
    const t = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof t.dtype !== 'string' || !Array.isArray(t.shape) || !Array.isArray(t.data_offsets)) {
      throw notAModel(source, `tensor "${shown}" lacks its dtype, shape or data offsets`);
    }
    if (!Object.hasOwn(DTYPE_BYTES, t.dtype)) {
      throw invalid(
        `Tensor "${shown}" in ${source} has dtype ${t.dtype.slice(0, 20)}; supported: F32, F16, BF16 (and F64, I64, I32, U8, BOOL).`,
      );
    }
    const dtype = t.dtype as SafeDType;
    const shape = t.shape as unknown[];
    if (shape.length > MAX_RANK || !shape.every(isCount)) {
      throw notAModel(
        source,
        `tensor "${shown}" has shape ${shownValue(shape)}; a shape is at most ${MAX_RANK} whole numbers of 0 or more`,
      );
    }
    const offsets = t.data_offsets as unknown[];
    const [begin, end] = offsets;
    if (offsets.length !== 2 || !isCount(begin) || !isCount(end) || end < begin) {
      throw notAModel(
        source,
        `tensor "${shown}" has data offsets ${shownValue(offsets)}; they must be two whole numbers, start before end`,
      );
    }
    if (end > dataLen) {
      throw notAModel(
        source,
        `its header says the data is ${bytesText(end)} long (tensor "${shown}" ends at byte ${end}) but the file has ${bytesText(dataLen)} of data; it may be truncated`,
      );
    }
    // Element count with early exit: a product of huge dimensions never overflows into a matching size.
    let n = 1;
    for (const d of shape as number[]) {
      n *= d;
      if (n * DTYPE_BYTES[dtype] > dataLen) break;
    }
    if (n * DTYPE_BYTES[dtype] !== end - begin) {
      throw invalid(
        `Tensor "${shown}" in ${source} has ${end - begin} bytes for shape [${shape.join(',')}] of ${dtype}.`,
      );
    }
    tensors.set(name, { name, dtype, shape: shape as number[], begin, end });
  }
  const byStart = [...tensors.values()].filter((t) => t.end > t.begin).sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < byStart.length; i++) {
    const a = byStart[i - 1] as TensorEntry;
    const b = byStart[i] as TensorEntry;
    if (b.begin < a.end) {
      throw notAModel(source, `tensors "${a.name}" and "${b.name}" share bytes ${b.begin}–${Math.min(a.end, b.end)}`);
    }
  }
  return { tensors, metadata };
}

function headerLength(prefix: Buffer, fileSize: number, source: string): number {
  if (fileSize < 8) {
    throw invalid(`${source} is too short to be a .safetensors file (${fileSize} bytes).`);
  }
  const len = prefix.readBigUInt64LE(0);
  if (len > BigInt(fileSize - 8)) {
    throw notAModel(
      source,
      `its first 8 bytes say the header is ${bytesText(Number(len))} long but the file has ${bytesText(fileSize)}; it is truncated or not a .safetensors file`,
    );
  }
  if (len > BigInt(MAX_HEADER_BYTES)) {
    throw notAModel(
      source,
      `its header is ${bytesText(Number(len))} long, more than the ${bytesText(MAX_HEADER_BYTES)} Flaneur reads`,
    );
  }
  return Number(len);
}

function widen(t: TensorEntry, bytes: Buffer, source: string): Float32Array {
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
      throw invalid(`Tensor "${t.name}" in ${source} is ${t.dtype}, not a floating-point tensor.`);
  }
  return out;
}

/** A .safetensors file already in memory (validated as `readSafetensors` does). */
export function parseSafetensors(buf: Buffer, source = 'file'): SafetensorsFile {
  const headerLen = headerLength(buf, buf.length, source);
  const dataStart = 8 + headerLen;
  const header = parseSafetensorsHeader(buf.subarray(8, dataStart).toString('utf8'), buf.length - dataStart, source);
  return withTensorData(header, source, (t) => buf.subarray(dataStart + t.begin, dataStart + t.end));
}

/** A parsed header as a weight file whose `float32` widens each tensor's bytes, as `bytesOf` reads them. */
function withTensorData(
  { tensors, metadata }: SafetensorsHeader,
  source: string,
  bytesOf: (t: TensorEntry) => Buffer,
): SafetensorsFile {
  return {
    tensors,
    metadata,
    float32(name) {
      const t = tensors.get(name);
      if (!t) throw invalid(`Tensor "${name}" is not in ${source}.`);
      return widen(t, bytesOf(t), source);
    },
  };
}

/**
 * Opens a model file for reading without blocking: only a regular file is accepted (a named pipe, /dev/zero or a
 * folder is refused before any read), and it is opened non-blocking so a file swapped for a pipe cannot hang.
 */
export function openRegular(file: string, source: string): { fd: number; size: number } {
  return openRegularFile(file, (kind) =>
    invalid(`${source} is ${kind}, not a model file. Choose the .safetensors file itself.`),
  );
}

/** Checks that a model file is a regular file (before it is hashed or read); its size in bytes. */
export function assertModelFile(file: string, source: string): number {
  const { fd, size } = openRegular(file, source);
  fs.closeSync(fd);
  return size;
}

/** The first `n` bytes of a model file (fewer when it is shorter); only a regular file is read. */
export function readModelFileStart(file: string, source: string, n: number): Buffer {
  const { fd, size } = openRegular(file, source);
  try {
    return readAt(fd, Math.min(n, size), 0);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * A model file read at offsets (PyTorch checkpoints: the zip directory, the pickle, then each tensor when asked):
 * only a regular file, reopened for each read, and refused if it changed size in between.
 */
export function modelFileSource(
  file: string,
  source: string,
): { size: number; read(offset: number, length: number): Uint8Array } {
  const { fd, size } = openRegular(file, source);
  fs.closeSync(fd);
  return {
    size,
    read(offset, length) {
      const again = openRegular(file, source);
      try {
        if (again.size !== size) throw notAModel(source, 'the file changed while being read');
        return readAt(again.fd, Math.max(0, Math.min(length, size - offset)), offset);
      } finally {
        fs.closeSync(again.fd);
      }
    },
  };
}

/**
 * A .safetensors file on disk: the header is read and checked (a few bytes, whatever the file's size), and each
 * tensor is read from the file when asked for, so the file is never held in memory whole.
 */
export function readSafetensors(file: string, source = path.basename(file)): SafetensorsFile {
  const { fd, size } = openRegular(file, source);
  let header: SafetensorsHeader;
  let dataStart: number;
  try {
    const headerLen = headerLength(readAt(fd, Math.min(8, size), 0), size, source);
    dataStart = 8 + headerLen;
    const json = readAt(fd, headerLen, 8);
    if (json.length < headerLen) throw notAModel(source, 'the file ends inside its header');
    header = parseSafetensorsHeader(json.toString('utf8'), size - dataStart, source);
  } finally {
    fs.closeSync(fd);
  }
  return withTensorData(header, source, (t) => {
    const again = openRegular(file, source);
    try {
      const bytes = readAt(again.fd, t.end - t.begin, dataStart + t.begin);
      if (bytes.length < t.end - t.begin) {
        throw notAModel(source, `the file ended inside tensor "${t.name}" (it changed while being read)`);
      }
      return bytes;
    } finally {
      fs.closeSync(again.fd);
    }
  });
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
