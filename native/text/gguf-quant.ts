/**
 * GGUF's quantised blocks kept quantised for onnxruntime's com.microsoft MatMulNBits (CPU: bits 4 and 8, blocks of
 * 16 or 32 along K, uint8 codes low nibble first, a float scale per block, zero point 8 / 128 unless given):
 * W[n, k] = scale[n, b] · (code[n, k] − zero[n, b]) − min[n, b]. Every ggml block type this reader knows maps onto
 * it exactly (no requantisation): the 4-bit ones (Q4_0, Q4_1, Q4_K's sub-blocks of 32) as 4-bit codes, the 5- and
 * 6-bit ones (Q5_0, Q5_1, Q5_K, Q6_K's sub-blocks of 16) and Q8_0 as 8-bit codes. A k-quant sub-block's scale
 * d·sc and min dmin·m are products of a float16 and a 6- or 8-bit integer, exact in float32. The mins (Q4_1, Q5_1,
 * Q4_K, Q5_K) are not a zero point MatMulNBits can hold exactly; the graph subtracts them as x's block sums times
 * the [K / block, N] matrix of mins (1/32 of the matmul's work).
 */
import { FlaneurError } from '../api/errors.js';
import { f16ToF32 } from '../models/safetensors.js';
import { GGML_TYPES, type GgmlTypeName, kQuant45Block, scaleMinK4 } from './gguf.js';

/** A PyTorch [out = N, in = K] weight kept quantised in MatMulNBits' layout. */
export interface QuantMatrix {
  n: number;
  k: number;
  bits: 4 | 8;
  block: 16 | 32;
  /** [N, K / block, block · bits / 8]: codes along K, two 4-bit codes a byte (the first in the low nibble). */
  codes: Uint8Array;
  /** [N · K / block] */
  scales: Float32Array;
  /** 4-bit codes whose zero point is 0 (not MatMulNBits' default 8): [N, ceil(K / block / 2)] packed zeros. */
  zeroPoints?: Uint8Array;
  /** What each block subtracts after scaling, transposed: [K / block, N]. */
  mins?: Float32Array;
  /** The ggml type it came from. */
  source: GgmlTypeName;
}

/** How each quantised ggml type is stored: bits, block, zero point of its codes, and whether it has mins. */
const LAYOUT: Partial<Record<GgmlTypeName, { bits: 4 | 8; block: 16 | 32; zeroPoint0: boolean; mins: boolean }>> = {
  Q8_0: { bits: 8, block: 32, zeroPoint0: false, mins: false },
  Q4_0: { bits: 4, block: 32, zeroPoint0: false, mins: false },
  Q4_1: { bits: 4, block: 32, zeroPoint0: true, mins: true },
  Q5_0: { bits: 8, block: 32, zeroPoint0: false, mins: false },
  Q5_1: { bits: 8, block: 32, zeroPoint0: false, mins: true },
  Q4_K: { bits: 4, block: 32, zeroPoint0: true, mins: true },
  Q5_K: { bits: 8, block: 32, zeroPoint0: false, mins: true },
  Q6_K: { bits: 8, block: 16, zeroPoint0: false, mins: false },
};

const TYPE_NAMES = Object.fromEntries(Object.entries(GGML_TYPES).map(([k, v]) => [v, k as GgmlTypeName]));

/** Whether a ggml type is kept quantised (otherwise it is widened to float32). */
export function keepsQuantised(type: number): boolean {
  const name = TYPE_NAMES[type];
  return name !== undefined && LAYOUT[name] !== undefined;
}

/** Bytes a [n, k] matrix of `type` takes kept quantised (or in float32 when it is not). */
export function quantMatrixBytes(type: number, n: number, k: number): number {
  const l = LAYOUT[TYPE_NAMES[type] as GgmlTypeName];
  if (!l) return 4 * n * k;
  const kb = k / l.block;
  return (n * k * l.bits) / 8 + 4 * n * kb + (l.zeroPoint0 ? n * Math.ceil(kb / 2) : 0) + (l.mins ? 4 * n * kb : 0);
}

/**
 * Rows of ggml blocks (`n` rows of `k` values, as a GGUF tensor of dims [k, n] stores them) in MatMulNBits' layout.
 * Codes are offset so that the default zero point applies where it can (8-bit: code = q + 128 − zero).
 */
export function quantMatrix(raw: Uint8Array, type: number, n: number, k: number): QuantMatrix {
  const name = TYPE_NAMES[type] as GgmlTypeName;
  const l = LAYOUT[name];
  if (!l) throw new FlaneurError('UNSUPPORTED_MODEL', `ggml type ${name ?? type} cannot be kept quantised.`);
  const count = n * k;
  // 8-bit codes one a byte; 4-bit ones packed two a byte straight from ggml's nibbles
  const q = new Uint8Array(l.bits === 4 ? count / 2 : count);
  const scales = new Float32Array(count / l.block);
  const mins = l.mins ? new Float32Array(count / l.block) : null;
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const half = (at: number) => f16ToF32(dv.getUint16(at, true));
  switch (type) {
    case GGML_TYPES.Q8_0:
      for (let b = 0; b < count / 32; b++) {
        scales[b] = half(b * 34);
        for (let j = 0; j < 32; j++) q[b * 32 + j] = (dv.getInt8(b * 34 + 2 + j) + 128) & 0xff;
      }
      break;
    case GGML_TYPES.Q4_0:
    case GGML_TYPES.Q4_1: {
      const q41 = type === GGML_TYPES.Q4_1;
      const size = q41 ? 20 : 18;
      for (let b = 0; b < count / 32; b++) {
        const at = b * size;
        scales[b] = half(at);
        if (mins) mins[b] = -half(at + 2);
        repackNibbles(raw, at + (q41 ? 4 : 2), 16, q, b * 16);
      }
      break;
    }
    case GGML_TYPES.Q5_0:
    case GGML_TYPES.Q5_1: {
      const q51 = type === GGML_TYPES.Q5_1;
      const size = q51 ? 24 : 22;
      const hAt = q51 ? 4 : 2;
      // Q5_0: value d·(q − 16), code q + 112 with zero point 128; Q5_1: d·q + m, code q + 128
      const offset = q51 ? 128 : 112;
      for (let b = 0; b < count / 32; b++) {
        const at = b * size;
        scales[b] = half(at);
        if (mins) mins[b] = -half(at + 2);
        const qh = dv.getUint32(at + hAt, true);
        for (let j = 0; j < 16; j++) {
          const byte = dv.getUint8(at + hAt + 4 + j);
          q[b * 32 + j] = offset + ((byte & 0x0f) | (((qh >>> j) & 1) << 4));
          q[b * 32 + j + 16] = offset + ((byte >> 4) | ((qh >>> (j + 12)) & 0x10));
        }
      }
      break;
    }
    case GGML_TYPES.Q4_K:
    case GGML_TYPES.Q5_K:
      kQuant45(raw, dv, type === GGML_TYPES.Q5_K, count, q, scales, mins as Float32Array);
      break;
    case GGML_TYPES.Q6_K:
      kQuant6(dv, count, q, scales);
      break;
  }
  const kb = k / l.block;
  const out: QuantMatrix = { n, k, bits: l.bits, block: l.block, codes: q, scales, source: name };
  if (l.zeroPoint0) out.zeroPoints = new Uint8Array(n * Math.ceil(kb / 2));
  if (mins) {
    const t = new Float32Array(mins.length);
    for (let r = 0; r < n; r++) for (let b = 0; b < kb; b++) t[b * n + r] = mins[r * kb + b] as number;
    out.mins = t;
  }
  return out;
}

/**
 * `bytes` of ggml nibbles at `src[at…]` — value i in the low nibble of byte i, value bytes + i in the high one — as
 * MatMulNBits' packing (values 2m and 2m + 1 in byte m, the first low) at `dst[to…]`.
 */
function repackNibbles(src: Uint8Array, at: number, bytes: number, dst: Uint8Array, to: number): void {
  const h = bytes / 2;
  for (let m = 0; m < h; m++) {
    const a = src[at + 2 * m] as number;
    const b = src[at + 2 * m + 1] as number;
    dst[to + m] = (a & 0x0f) | ((b & 0x0f) << 4);
    dst[to + h + m] = (a >> 4) | (b & 0xf0);
  }
}

/**
 * Q4_K / Q5_K super-blocks as 8 sub-blocks of 32: scale d·sc, min dmin·m. Q4_K's 4 groups of 32 bytes hold values
 * 64g + l (low nibbles) and 64g + 32 + l (high), packed as they are; Q5_K's codes are 8-bit, offset by 128.
 */
function kQuant45(
  raw: Uint8Array,
  dv: DataView,
  five: boolean,
  count: number,
  q: Uint8Array,
  scales: Float32Array,
  mins: Float32Array,
): void {
  for (let b = 0; b < count / 256; b++) {
    const { at, d, dmin, qh, qs } = kQuant45Block(dv, five, b);
    for (let j = 0; j < 8; j++) {
      const [sc, m] = scaleMinK4(dv, at + 4, j);
      scales[b * 8 + j] = d * sc;
      mins[b * 8 + j] = dmin * m;
    }
    for (let g = 0; g < 4; g++) {
      if (!five) {
        repackNibbles(raw, qs + 32 * g, 32, q, b * 128 + 32 * g);
        continue;
      }
      for (let l = 0; l < 32; l++) {
        const byte = raw[qs + 32 * g + l] as number;
        const high = raw[qh + l] as number;
        q[b * 256 + 64 * g + l] = 128 + (byte & 0xf) + (high & (1 << (2 * g)) ? 16 : 0);
        q[b * 256 + 64 * g + 32 + l] = 128 + (byte >> 4) + (high & (2 << (2 * g)) ? 16 : 0);
      }
    }
  }
}

/** Q6_K super-blocks as 16 sub-blocks of 16: scale d·sc (int8), value d·sc·(q − 32), code q + 96. */
function kQuant6(dv: DataView, count: number, q: Uint8Array, scales: Float32Array): void {
  for (let b = 0; b < count / 256; b++) {
    const at = b * 210;
    const d = f16ToF32(dv.getUint16(at + 208, true));
    for (let i = 0; i < 16; i++) scales[b * 16 + i] = d * dv.getInt8(at + 192 + i);
    for (let half = 0; half < 2; half++) {
      const ql = at + 64 * half;
      const qh = at + 128 + 32 * half;
      const y = b * 256 + 128 * half;
      for (let l = 0; l < 32; l++) {
        const h = dv.getUint8(qh + l);
        const a = dv.getUint8(ql + l);
        const c = dv.getUint8(ql + l + 32);
        q[y + l] = 96 + ((a & 0xf) | ((h & 3) << 4));
        q[y + l + 32] = 96 + ((c & 0xf) | (((h >> 2) & 3) << 4));
        q[y + l + 64] = 96 + ((a >> 4) | (((h >> 4) & 3) << 4));
        q[y + l + 96] = 96 + ((c >> 4) | (((h >> 6) & 3) << 4));
      }
    }
  }
}

/** The values a QuantMatrix stands for, [N, K] row-major (what MatMulNBits multiplies by; for checks). */
export function quantMatrixValues(m: QuantMatrix): Float32Array {
  const out = new Float32Array(m.n * m.k);
  const kb = m.k / m.block;
  const zero = m.zeroPoints ? 0 : m.bits === 4 ? 8 : 128;
  for (let r = 0; r < m.n; r++) {
    for (let c = 0; c < m.k; c++) {
      const i = r * m.k + c;
      const code = m.bits === 8 ? (m.codes[i] as number) : ((m.codes[i >> 1] as number) >> (4 * (i & 1))) & 0xf;
      const b = Math.floor(c / m.block);
      const min = m.mins ? (m.mins[b * m.n + r] as number) : 0;
      out[i] = (m.scales[r * kb + b] as number) * (code - zero) - min;
    }
  }
  return out;
}
