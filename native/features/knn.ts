/**
 * Exact k-nearest-neighbour search by cosine similarity as an ONNX graph (MatMul + TopK), chunked over the bank
 * and over the queries so memory stays bounded; chunk results are merged in JS. Vectors must be L2-normalised.
 */
import { GraphBuilder } from '../graph/builder.js';
import { toOnnx } from '../graph/onnx.js';
import { f16ToF32, f32ToF16 } from '../models/safetensors.js';
import { probeProviders, providerOrder } from '../runtime/providers.js';
import { DEFAULT_RUNTIME, ModelSession, ort, type RuntimeSettings } from '../runtime/session.js';

/** A bank held for search: chunks of transposed vectors [dim, m] (f32, or f16 to halve the memory). */
export interface KnnBank {
  dim: number;
  size: number;
  dtype: 'float32' | 'float16';
  chunks: { start: number; m: number; data: Float32Array | Uint16Array }[];
}

export const CHUNK = 16384;
/** Similarity matrix per query batch x chunk kept under this many bytes. */
const SIM_BUDGET = 64 << 20;

export function l2normalizeRows(v: Float32Array, dim: number): Float32Array {
  for (let i = 0; i < v.length; i += dim) {
    let s = 0;
    for (let j = 0; j < dim; j++) s += (v[i + j] as number) ** 2;
    const inv = 1 / Math.sqrt(Math.max(s, 1e-24));
    for (let j = 0; j < dim; j++) v[i + j] = (v[i + j] as number) * inv;
  }
  return v;
}

export function f16RowsToF32(a: Uint16Array): Float32Array {
  const out = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = f16ToF32(a[i] as number);
  return out;
}

/** Builds a bank from row-major vectors [n, dim] (already normalised). */
export function makeBank(
  vectors: Float32Array,
  dim: number,
  dtype: 'float32' | 'float16' = 'float32',
  chunk = CHUNK,
): KnnBank {
  const builder = new BankBuilder(dim, vectors.length / dim, dtype, chunk);
  builder.add(vectors);
  return builder.finish();
}

/**
 * A bank filled row block by row block (e.g. frame by frame from the database), so the rows never have to sit in
 * one f32 array first: with f16, a bank of 4·10^5 patch vectors of dim 384 takes 300 MB instead of 600 + 300.
 */
export class BankBuilder {
  private readonly chunks: KnnBank['chunks'] = [];
  private filled = 0;

  constructor(
    private readonly dim: number,
    private readonly size: number,
    private readonly dtype: 'float32' | 'float16' = 'float32',
    private readonly chunk = CHUNK,
  ) {
    for (let start = 0; start < size; start += chunk) {
      const m = Math.min(chunk, size - start);
      this.chunks.push({ start, m, data: dtype === 'float32' ? new Float32Array(dim * m) : new Uint16Array(dim * m) });
    }
  }

  /** Appends rows [r, dim] (normalised). */
  add(rows: Float32Array): void {
    const { dim } = this;
    const r = rows.length / dim;
    if (this.filled + r > this.size) throw new Error(`bank overflow: ${this.filled + r} rows for ${this.size}`);
    for (let i = 0; i < r; i++) {
      const row = this.filled + i;
      const c = this.chunks[Math.floor(row / this.chunk)] as KnnBank['chunks'][number];
      const at = row - c.start;
      const t = c.data;
      if (t instanceof Float32Array) for (let j = 0; j < dim; j++) t[j * c.m + at] = rows[i * dim + j] as number;
      else for (let j = 0; j < dim; j++) t[j * c.m + at] = f32ToF16(rows[i * dim + j] as number);
    }
    this.filled += r;
  }

  finish(): KnnBank {
    if (this.filled !== this.size) throw new Error(`bank has ${this.filled} of ${this.size} rows`);
    return { dim: this.dim, size: this.size, dtype: this.dtype, chunks: this.chunks };
  }
}

export class ExactKnn {
  private sessions = new Map<string, ModelSession>();

  /** `settings`: the provider and threads its sessions are made with (read at each new session). */
  constructor(private readonly settings: () => RuntimeSettings = () => DEFAULT_RUNTIME) {}

  private async session(dim: number, k: number, dtype: 'float32' | 'float16'): Promise<ModelSession> {
    const runtime = this.settings();
    const key = `${dim}:${k}:${dtype}:${runtime.provider}:${runtime.threads}`;
    let s = this.sessions.get(key);
    if (!s) {
      const b = new GraphBuilder('knn');
      const q = b.input('queries', 'float32', ['q', dim]);
      const bank = b.input('bank', dtype, [dim, 'm']);
      const sims = b.matmul(q, dtype === 'float32' ? bank : b.cast(bank, 'float32'));
      const [vals, idx] = b.topk(sims, k, -1);
      b.output(vals, 'sims');
      b.output(idx, 'indices');
      s = await ModelSession.create(toOnnx(b.build()), runtime);
      this.sessions.set(key, s);
    }
    return s;
  }

  /** False when the sessions run on a WebGPU adapter without the shader-f16 feature (SwiftShader has none). */
  private async gpuHasF16(): Promise<boolean> {
    const runtime = this.settings();
    const webgpu = (await probeProviders()).find((p) => p.name === 'webgpu');
    if (!webgpu?.available || !providerOrder([webgpu], runtime.provider).includes('webgpu')) return true;
    return webgpu.adapter?.shaderF16 ?? false;
  }

  /** For each query (rows of [nq, dim]), the k most similar bank entries, best first. */
  async search(queries: Float32Array, bank: KnnBank, k: number): Promise<{ indices: Int32Array; sims: Float32Array }> {
    const { dim } = bank;
    const nq = queries.length / dim;
    const kk = Math.min(k, bank.size);
    const bestIdx = new Int32Array(nq * kk).fill(-1);
    const bestSim = new Float32Array(nq * kk).fill(Number.NEGATIVE_INFINITY);
    // A WebGPU adapter without f16 shaders cannot cast an f16 bank on the GPU: such chunks are widened here.
    const widen = bank.dtype === 'float16' && !(await this.gpuHasF16());
    const dtype = widen ? 'float32' : bank.dtype;
    for (const chunk of bank.chunks) {
      const kc = Math.min(kk, chunk.m);
      const s = await this.session(dim, kc, dtype);
      const qBatch = Math.max(1, Math.floor(SIM_BUDGET / (4 * chunk.m)));
      const bankTensor = widen
        ? new ort.Tensor('float32', f16RowsToF32(chunk.data as Uint16Array), [dim, chunk.m])
        : new ort.Tensor(bank.dtype, chunk.data, [dim, chunk.m]);
      for (let q0 = 0; q0 < nq; q0 += qBatch) {
        const qn = Math.min(qBatch, nq - q0);
        const out = await s.run({
          queries: new ort.Tensor('float32', queries.subarray(q0 * dim, (q0 + qn) * dim), [qn, dim]),
          bank: bankTensor,
        });
        const sims = out.sims?.data as Float32Array;
        const idx = out.indices?.data as BigInt64Array;
        for (let i = 0; i < qn; i++) mergeTopK(bestIdx, bestSim, (q0 + i) * kk, kk, sims, idx, i * kc, kc, chunk.start);
      }
    }
    return { indices: bestIdx, sims: bestSim };
  }

  /** The providers its sessions run on now (after any fallback). */
  providers(): string[] {
    return [...new Set([...this.sessions.values()].map((s) => s.info.provider))];
  }

  async release(): Promise<void> {
    for (const s of this.sessions.values()) await s.release();
    this.sessions.clear();
  }
}

/** Merges a sorted chunk result into a sorted running best list (both descending). */
function mergeTopK(
  bestIdx: Int32Array,
  bestSim: Float32Array,
  at: number,
  k: number,
  sims: Float32Array,
  idx: BigInt64Array,
  from: number,
  kc: number,
  offset: number,
): void {
  if (bestIdx[at] === -1) {
    for (let j = 0; j < kc; j++) {
      bestSim[at + j] = sims[from + j] as number;
      bestIdx[at + j] = Number(idx[from + j]) + offset;
    }
    return;
  }
  const s = bestSim.slice(at, at + k);
  const ix = bestIdx.slice(at, at + k);
  let a = 0;
  let c = 0;
  for (let j = 0; j < k; j++) {
    const takeChunk = c < kc && (a >= k || (sims[from + c] as number) > (s[a] as number));
    if (takeChunk) {
      bestSim[at + j] = sims[from + c] as number;
      bestIdx[at + j] = Number(idx[from + c]) + offset;
      c++;
    } else {
      bestSim[at + j] = s[a] as number;
      bestIdx[at + j] = ix[a] as number;
      a++;
    }
  }
}
