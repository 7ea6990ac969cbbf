/**
 * Ranking a library's images for one text: cosine similarity of the text's embedding (the ShareLock projector's
 * output) with every image embedding (the normalised vision features), best k first. One ONNX run per query:
 * MatMul [n, E] × [E, 1] then TopK; the image embeddings are one tensor made once and fed to every run.
 */
import { GraphBuilder } from '../graph/builder.js';
import { toOnnx } from '../graph/onnx.js';
import { DEFAULT_RUNTIME, ModelSession, ort, type RuntimeSettings } from '../runtime/session.js';

export class TextRanker {
  private readonly sessions = new Map<number, ModelSession>();
  private readonly bank: ort.Tensor;

  /** `embeddings`: [n, dim] row-major, each row L2-normalised. */
  constructor(
    embeddings: Float32Array,
    readonly dim: number,
    private readonly runtime: RuntimeSettings = DEFAULT_RUNTIME,
  ) {
    if (embeddings.length % dim !== 0) throw new Error(`${embeddings.length} values are not rows of ${dim}`);
    this.bank = new ort.Tensor('float32', embeddings, [embeddings.length / dim, dim]);
  }

  get size(): number {
    return this.bank.dims[0] as number;
  }

  private async session(k: number): Promise<ModelSession> {
    let s = this.sessions.get(k);
    if (!s) {
      const b = new GraphBuilder('text_rank');
      const bank = b.input('bank', 'float32', ['n', this.dim]);
      const q = b.input('query', 'float32', [this.dim, 1]);
      const [vals, idx] = b.topk(b.reshape(b.matmul(bank, q), [1, -1]), k, -1);
      b.output(vals, 'scores');
      b.output(idx, 'indices');
      s = await ModelSession.create(toOnnx(b.build()), this.runtime);
      this.sessions.set(k, s);
    }
    return s;
  }

  /** The k best images for a normalised text embedding: indices into the rows and their cosine similarities. */
  async rank(query: Float32Array, k: number): Promise<{ indices: number[]; scores: number[] }> {
    if (query.length !== this.dim) throw new Error(`a query of ${query.length} values for embeddings of ${this.dim}`);
    const kk = Math.min(k, this.size);
    const s = await this.session(kk);
    const out = await s.run({ bank: this.bank, query: new ort.Tensor('float32', query, [this.dim, 1]) });
    return {
      indices: Array.from(out.indices?.data as BigInt64Array, Number),
      scores: Array.from(out.scores?.data as Float32Array),
    };
  }

  async release(): Promise<void> {
    for (const s of this.sessions.values()) await s.release();
    this.sessions.clear();
  }
}
