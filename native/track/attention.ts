/** Last-block queries, keys and CLS attention of frames (for discovery and tracking). */
import type { ImportedViT } from '../models/import-vit.js';
import { preprocessInto, type RgbLike } from '../models/preprocess.js';
import { buildViTOnnx } from '../models/vit-onnx.js';
import { ModelSession, ort, type RuntimeSettings } from '../runtime/session.js';

export interface FrameAttention {
  /** Patch queries and keys [n, d] (CLS dropped), CLS-to-patch attention [heads, n]. */
  q: Float32Array;
  k: Float32Array;
  attention: Float32Array;
  grid: number;
  dim: number;
  heads: number;
}

/** The patch rows of per-image token rows [count, 1 + n, d] (the CLS row of each image dropped): [count, n, d]. */
export function patchRows(tokens: Float32Array, count: number, n: number, d: number): Float32Array {
  const out = new Float32Array(count * n * d);
  for (let b = 0; b < count; b++) out.set(tokens.subarray((b * (n + 1) + 1) * d, (b + 1) * (n + 1) * d), b * n * d);
  return out;
}

export class AttentionExtractor {
  private constructor(
    private readonly model: ImportedViT,
    readonly size: number,
    private readonly session: ModelSession,
  ) {}

  get provider(): string {
    return this.session.info.provider;
  }

  static async create(model: ImportedViT, size: number, runtime?: RuntimeSettings): Promise<AttentionExtractor> {
    const onnx = buildViTOnnx(model, { height: size, width: size, outputs: { lastQK: true, attention: true } });
    return new AttentionExtractor(model, size, await ModelSession.create(onnx, runtime));
  }

  async run(img: RgbLike): Promise<FrameAttention> {
    const c = this.model.config;
    const input = new Float32Array(3 * this.size * this.size);
    preprocessInto(img, { size: this.size, mode: 'stretch', filter: 'bilinear', mean: c.mean, std: c.std }, input);
    const out = await this.session.run({ pixels: new ort.Tensor('float32', input, [1, 3, this.size, this.size]) }, [
      'q',
      'k',
      'attention',
    ]);
    const grid = this.size / c.patchSize;
    const n = grid * grid;
    const d = c.dim;
    const get = (name: string) => {
      const t = out[name];
      if (!t) throw new Error(`the model gave no ${name}`);
      return t.data as Float32Array;
    };
    // Row 0 of q and k is the CLS token: objects live in the patch rows.
    const q = patchRows(get('q'), 1, n, d);
    const k = patchRows(get('k'), 1, n, d);
    return { q, k, attention: get('attention').slice(), grid, dim: d, heads: c.heads };
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
