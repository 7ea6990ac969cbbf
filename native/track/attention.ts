/** Last-block queries, keys and CLS attention of frames (for discovery and tracking). */
import type { ImportedViT } from '../models/import-vit.js';
import { type InputShape, inputShape, preprocessInto, type RgbLike } from '../models/preprocess.js';
import { patchRows } from '../models/vit.js';
import { buildViTOnnx } from '../models/vit-onnx.js';
import { ModelSession, ort, type RuntimeSettings } from '../runtime/session.js';

export interface FrameAttention {
  /** Patch queries and keys [n, d] (CLS dropped), CLS-to-patch attention [heads, n]. */
  q: Float32Array;
  k: Float32Array;
  attention: Float32Array;
  /** Patch grid rows and columns (the frame's aspect kept). */
  gridH: number;
  gridW: number;
  dim: number;
  heads: number;
}

/** Attention of the frames of one video: one input shape (its frame size under the aspect policy, `inputShape`). */
export class AttentionExtractor {
  private constructor(
    private readonly model: ImportedViT,
    readonly shape: InputShape,
    private readonly session: ModelSession,
  ) {}

  get provider(): string {
    return this.session.info.provider;
  }

  /** `frame`: the video's frame size (default square); `size` is the input's shorter side. */
  static async create(
    model: ImportedViT,
    size: number,
    runtime?: RuntimeSettings,
    frame: { width: number; height: number } = { width: size, height: size },
  ): Promise<AttentionExtractor> {
    const shape = inputShape(frame.width, frame.height, size, model.config.patchSize, 'aspect');
    const onnx = buildViTOnnx(model, {
      height: shape.height,
      width: shape.width,
      outputs: { lastQK: true, attention: true },
      fused: true,
    });
    return new AttentionExtractor(model, shape, await ModelSession.create(onnx, runtime));
  }

  async run(img: RgbLike): Promise<FrameAttention> {
    const c = this.model.config;
    const { width, height, gridH, gridW } = this.shape;
    const input = new Float32Array(3 * width * height);
    preprocessInto(img, { size: width, height, mode: 'stretch', filter: 'bilinear', mean: c.mean, std: c.std }, input);
    const out = await this.session.run({ pixels: new ort.Tensor('float32', input, [1, 3, height, width]) }, [
      'q',
      'k',
      'attention',
    ]);
    const n = gridH * gridW;
    const d = c.dim;
    const get = (name: string) => {
      const t = out[name];
      if (!t) throw new Error(`the model gave no ${name}`);
      return t.data as Float32Array;
    };
    // Row 0 of q and k is the CLS token: objects live in the patch rows.
    const q = patchRows(get('q'), 1, n, d);
    const k = patchRows(get('k'), 1, n, d);
    return { q, k, attention: get('attention').slice(), gridH, gridW, dim: d, heads: c.heads };
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
