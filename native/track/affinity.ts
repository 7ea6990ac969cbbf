/**
 * Cosine similarities of a frame's patches to the propagation context as one MatMul on the execution provider (the
 * Device view's choice): [n, dim] × [dim, m] → [n, m]. What makes propagation at 480 px practical.
 */
import { GraphBuilder } from '../graph/builder.js';
import { toOnnx } from '../graph/onnx.js';
import { ModelSession, ort, type RuntimeSettings } from '../runtime/session.js';

export class ContextSimilarity {
  private session: Promise<ModelSession> | null = null;

  constructor(
    readonly dim: number,
    private readonly runtime?: RuntimeSettings,
  ) {}

  private get(): Promise<ModelSession> {
    if (!this.session) {
      const b = new GraphBuilder('propagation-affinity');
      const target = b.input('target', 'float32', ['n', this.dim]);
      const context = b.input('context', 'float32', [this.dim, 'm']);
      b.output(b.matmul(target, context), 'sims');
      this.session = ModelSession.create(toOnnx(b.build()), this.runtime);
    }
    return this.session;
  }

  /** target [n, dim] (row-major), contextT [dim, m]: similarities [n, m]. */
  readonly run = async (target: Float32Array, contextT: Float32Array, m: number): Promise<Float32Array> => {
    const s = await this.get();
    const n = target.length / this.dim;
    const out = await s.run(
      {
        target: new ort.Tensor('float32', target, [n, this.dim]),
        context: new ort.Tensor('float32', contextT, [this.dim, m]),
      },
      ['sims'],
    );
    return out.sims?.data as Float32Array;
  };

  async release(): Promise<void> {
    const s = await this.session?.catch(() => null);
    this.session = null;
    await s?.release();
  }
}
