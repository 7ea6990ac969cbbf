/**
 * Ranking a library's images for text embeddings (the ShareLock projector's outputs): cosine similarity with every
 * image embedding (the normalised vision features), best k first.
 *
 * The image embeddings are held transposed, [dim, n], in one tensor made once and fed to every run: a query is then
 * [q, dim] × [dim, n], which for one query is a matrix–vector product that streams the bank once (MLAS's GEMV path:
 * no packing, every multiply useful). The earlier layout, [n, dim] × [dim, 1], had MLAS pad the one column to its
 * 16-wide kernel: 16× the arithmetic (bench/sharelock.ts: 311–351 ms a query on a loaded machine).
 * `scanTopK` is the same ranking as a blocked JavaScript scan with a k-heap over the rows, kept to measure against
 * (`npm run bench -- sharelock`: `text_rank_only_ms` vs `text_rank_js_ms`; ORT's is ~6× less CPU).
 */
import { GraphBuilder } from '../graph/builder.js';
import { toOnnx } from '../graph/onnx.js';
import { DEFAULT_RUNTIME, ModelSession, ort, type RuntimeSettings } from '../runtime/session.js';

/** Rows [n, dim] → columns [dim, n]. */
export function transposeRows(rows: Float32Array, dim: number): Float32Array {
  const n = rows.length / dim;
  const t = new Float32Array(rows.length);
  for (let i = 0; i < n; i++) for (let d = 0; d < dim; d++) t[d * n + i] = rows[i * dim + d] as number;
  return t;
}

export class TextRanker {
  private readonly sessions = new Map<string, ModelSession>();
  private readonly bank: ort.Tensor;
  /** The bank [dim, n] (transposed rows). */
  readonly columns: Float32Array;

  /** `embeddings`: [n, dim] row-major, each row L2-normalised. */
  constructor(
    embeddings: Float32Array,
    readonly dim: number,
    private readonly runtime: RuntimeSettings = DEFAULT_RUNTIME,
  ) {
    if (embeddings.length % dim !== 0) throw new Error(`${embeddings.length} values are not rows of ${dim}`);
    this.columns = transposeRows(embeddings, dim);
    this.bank = new ort.Tensor('float32', this.columns, [dim, embeddings.length / dim]);
  }

  get size(): number {
    return this.bank.dims[1] as number;
  }

  /** k > 0: MatMul then TopK (scores and indices); k = 0: the MatMul alone (every score). */
  private async session(k: number): Promise<ModelSession> {
    const key = `${k}:${this.runtime.provider}:${this.runtime.threads}`;
    let s = this.sessions.get(key);
    if (!s) {
      const b = new GraphBuilder('text_rank');
      const bank = b.input('bank', 'float32', [this.dim, 'n']);
      const q = b.input('query', 'float32', ['q', this.dim]);
      const sims = b.matmul(q, bank);
      if (k > 0) {
        const [vals, idx] = b.topk(sims, k, -1);
        b.output(vals, 'scores');
        b.output(idx, 'indices');
      } else b.output(sims, 'scores');
      s = await ModelSession.create(toOnnx(b.build()), this.runtime);
      this.sessions.set(key, s);
    }
    return s;
  }

  private queryTensor(queries: Float32Array): ort.Tensor {
    if (queries.length === 0 || queries.length % this.dim !== 0)
      throw new Error(`a query of ${queries.length} values for embeddings of ${this.dim}`);
    return new ort.Tensor('float32', queries, [queries.length / this.dim, this.dim]);
  }

  /** The k best images for a normalised text embedding: indices into the rows and their cosine similarities. */
  async rank(query: Float32Array, k: number): Promise<{ indices: number[]; scores: number[] }> {
    if (query.length !== this.dim) throw new Error(`a query of ${query.length} values for embeddings of ${this.dim}`);
    const kk = Math.min(k, this.size);
    const s = await this.session(kk);
    const out = await s.run({ bank: this.bank, query: this.queryTensor(query) });
    return {
      indices: Array.from(out.indices?.data as BigInt64Array, Number),
      scores: Array.from(out.scores?.data as Float32Array),
    };
  }

  /** Every image's cosine similarity to each query ([q, dim] → [q, n], row-major). */
  async scores(queries: Float32Array): Promise<Float32Array> {
    const s = await this.session(0);
    const out = await s.run({ bank: this.bank, query: this.queryTensor(queries) });
    return out.scores?.data as Float32Array;
  }

  async release(): Promise<void> {
    for (const s of this.sessions.values()) await s.release();
    this.sessions.clear();
  }
}

/** Rows scored per block of the JavaScript scan before their scores are offered to the heap. */
const SCAN_BLOCK = 2048;

/**
 * The k best rows of `rows` ([n, dim], row-major) for `query` by a blocked scan in JavaScript: each row's dot
 * product with four accumulators (contiguous reads; V8 does not vectorise), a block's scores then offered to a
 * min-heap of the k best so far. (Accumulating a block dimension by dimension over the transposed bank was 3×
 * slower: a read-modify-write of the block's sums per value.)
 */
export function scanTopK(
  rows: Float32Array,
  dim: number,
  query: Float32Array,
  k: number,
): { indices: number[]; scores: number[] } {
  const n = rows.length / dim;
  const kk = Math.min(k, n);
  const heapS = new Float32Array(kk);
  const heapI = new Int32Array(kk);
  let size = 0;
  const swap = (a: number, b: number) => {
    const s = heapS[a] as number;
    const ix = heapI[a] as number;
    heapS[a] = heapS[b] as number;
    heapI[a] = heapI[b] as number;
    heapS[b] = s;
    heapI[b] = ix;
  };
  const siftDown = (at: number) => {
    let i = at;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < size && (heapS[l] as number) < (heapS[m] as number)) m = l;
      if (r < size && (heapS[r] as number) < (heapS[m] as number)) m = r;
      if (m === i) return;
      swap(i, m);
      i = m;
    }
  };
  const acc = new Float64Array(SCAN_BLOCK);
  const tail = dim - (dim % 4);
  for (let start = 0; start < n; start += SCAN_BLOCK) {
    const m = Math.min(SCAN_BLOCK, n - start);
    for (let j = 0; j < m; j++) {
      const at = (start + j) * dim;
      let a0 = 0;
      let a1 = 0;
      let a2 = 0;
      let a3 = 0;
      for (let d = 0; d < tail; d += 4) {
        a0 += (rows[at + d] as number) * (query[d] as number);
        a1 += (rows[at + d + 1] as number) * (query[d + 1] as number);
        a2 += (rows[at + d + 2] as number) * (query[d + 2] as number);
        a3 += (rows[at + d + 3] as number) * (query[d + 3] as number);
      }
      for (let d = tail; d < dim; d++) a0 += (rows[at + d] as number) * (query[d] as number);
      acc[j] = a0 + a1 + a2 + a3;
    }
    for (let j = 0; j < m; j++) {
      const s = acc[j] as number;
      if (size < kk) {
        // grow, then restore the heap from the new leaf up
        let i = size++;
        heapS[i] = s;
        heapI[i] = start + j;
        while (i > 0) {
          const p = (i - 1) >> 1;
          if ((heapS[p] as number) <= (heapS[i] as number)) break;
          swap(p, i);
          i = p;
        }
      } else if (s > (heapS[0] as number)) {
        heapS[0] = s;
        heapI[0] = start + j;
        siftDown(0);
      }
    }
  }
  const order = Array.from({ length: size }, (_, i) => i).sort(
    (a, b) => (heapS[b] as number) - (heapS[a] as number) || (heapI[a] as number) - (heapI[b] as number),
  );
  return { indices: order.map((i) => heapI[i] as number), scores: order.map((i) => heapS[i] as number) };
}
