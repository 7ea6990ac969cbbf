/**
 * Feature extraction: a registered model over the sampled frames of the catalog. CLS (f32) and patch tokens (f16)
 * per frame, stored with the run's provenance (model hash, input size, preprocessing, code version). Resumable per
 * frame; a second run with the same model and settings reuses what exists.
 */
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { FlaneurError } from '../api/errors.js';
import type { JobHandler } from '../jobs/types.js';
import { FrameStore } from '../media/frame-store.js';
import { type ImportedViT, importViTFile } from '../models/import-vit.js';
import { preprocessInto } from '../models/preprocess.js';
import { f32ToF16 } from '../models/safetensors.js';
import { buildViTOnnx } from '../models/vit-onnx.js';
import { ModelSession, ort, type RuntimeSettings } from '../runtime/session.js';
import type { FeatureRunRow } from '../store/features-repo.js';
import type { Project } from '../store/project.js';

export const FEATURES_CODE_VERSION = 'features-1';

export const ExtractArgs = z.object({
  modelId: z.int().positive(),
  media: z.array(z.int().positive()).optional(),
  /** Square input side (frames are resized to it); a multiple of the patch size. */
  size: z.int().min(16).max(2048).default(224),
  /** Images per batch; 0 picks one from the free memory. */
  batch: z.int().min(0).max(256).default(0),
});
export type ExtractArgs = z.output<typeof ExtractArgs>;

export const PREPROCESSING = { resize: 'squash', filter: 'bilinear', normalize: 'model mean/std' } as const;

export function loadRegisteredModel(project: Project, modelId: number): { model: ImportedViT; sha256: string } {
  const row = project.models.get(modelId);
  if (!row) throw new FlaneurError('NOT_FOUND', `No model ${modelId} in this project.`, { field: 'modelId' });
  const man = row.manifest as { architecture: { heads: number; lnEps: number }; posInterpolation?: 'offset' | 'size' };
  const model = importViTFile(path.join(project.dir, row.file), {
    heads: man.architecture.heads,
    lnEps: man.architecture.lnEps,
    ...(man.posInterpolation ? { posInterpolation: man.posInterpolation } : {}),
  });
  return { model, sha256: row.sha256 };
}

/** Images per batch from the free memory: activations of about 24 tensors of tokens x dim per block, kept at 1/4 of it. */
export function autoBatch(dim: number, tokens: number, depth: number): number {
  const perImage = tokens * dim * 4 * 24 + tokens * tokens * 4 * 6 * depth;
  return Math.max(1, Math.min(32, Math.floor((os.freemem() * 0.25) / perImage)));
}

export function ensureRun(
  project: Project,
  modelId: number,
  sha256: string,
  model: ImportedViT,
  size: number,
): FeatureRunRow {
  if (size % model.config.patchSize !== 0) {
    throw new FlaneurError(
      'INVALID_ARGUMENT',
      `size ${size} is not a multiple of the patch size ${model.config.patchSize}`,
      { field: 'size' },
    );
  }
  return project.features.ensureRun({
    modelId,
    modelSha256: sha256,
    inputSize: size,
    grid: size / model.config.patchSize,
    dim: model.config.dim,
    preprocessing: { ...PREPROCESSING, mean: [...model.config.mean], std: [...model.config.std] },
    codeVersion: FEATURES_CODE_VERSION,
  });
}

export function toF16(a: Float32Array): Uint16Array {
  const out = new Uint16Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = f32ToF16(a[i] as number);
  return out;
}

/** Runs the model on frames (RGB) and returns CLS and patch tokens per frame. */
export class FeatureExtractor {
  private constructor(
    readonly model: ImportedViT,
    readonly size: number,
    private readonly session: ModelSession,
  ) {}

  static async create(model: ImportedViT, size: number, runtime?: RuntimeSettings): Promise<FeatureExtractor> {
    const onnx = buildViTOnnx(model, { height: size, width: size, outputs: { cls: true, patches: true } });
    return new FeatureExtractor(model, size, await ModelSession.create(onnx, runtime));
  }

  get provider(): string {
    return this.session.info.provider;
  }

  async run(
    images: readonly { width: number; height: number; data: Uint8Array }[],
  ): Promise<{ cls: Float32Array; patches: Float32Array }[]> {
    const { size } = this;
    const plane = 3 * size * size;
    const input = new Float32Array(images.length * plane);
    images.forEach((img, i) => {
      preprocessInto(
        img,
        { size, mode: 'stretch', filter: 'bilinear', mean: this.model.config.mean, std: this.model.config.std },
        input,
        i * plane,
      );
    });
    const out = await this.session.run({ pixels: new ort.Tensor('float32', input, [images.length, 3, size, size]) }, [
      'cls',
      'patches',
    ]);
    const cls = out.cls?.data as Float32Array;
    const patches = out.patches?.data as Float32Array;
    const d = this.model.config.dim;
    const n = (size / this.model.config.patchSize) ** 2;
    return images.map((_, i) => ({
      cls: cls.slice(i * d, (i + 1) * d),
      patches: patches.slice(i * n * d, (i + 1) * n * d),
    }));
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

export const extractFeaturesJob: JobHandler<ExtractArgs, { mediaId: number }> = {
  kind: 'features.extract',
  args: ExtractArgs,
  title: (a) => `Extract features with model #${a.modelId} at ${a.size} px`,
  async run(ctx) {
    const { project } = ctx;
    const { model, sha256 } = loadRegisteredModel(project, ctx.args.modelId);
    const run = ensureRun(project, ctx.args.modelId, sha256, model, ctx.args.size);
    const media = (ctx.args.media ?? project.media.list({ status: 'done', limit: 100000 }).items.map((m) => m.id))
      .map((id) => project.media.get(id))
      .filter((m): m is NonNullable<typeof m> => Boolean(m && m.status === 'done' && m.frameWidth && m.frameHeight));
    const todo = media.map((m) => ({ m, done: project.features.doneFrames(run.id, m.id) }));
    const total = todo.reduce((a, t) => a + t.m.frameCount, 0);
    let done = todo.reduce((a, t) => a + t.done.size, 0);
    ctx.phase('extracting', { total, unit: 'frames', done });
    if (done === total) return;
    const tokens = run.grid * run.grid + 1 + model.config.registers;
    const batch = ctx.args.batch || autoBatch(model.config.dim, tokens, model.config.depth);
    const extractor = await FeatureExtractor.create(model, ctx.args.size, ctx.runtime);
    // Which provider does the work (after any fallback), where the progress is shown.
    ctx.phase(`extracting on ${extractor.provider}`, { total, unit: 'frames', done });
    const store = new FrameStore(project.cacheDir);
    try {
      for (const { m, done: have } of todo) {
        const frames = [...Array(m.frameCount).keys()].filter((i) => !have.has(i));
        for (let i = 0; i < frames.length; i += batch) {
          ctx.throwIfAborted();
          const idx = frames.slice(i, i + batch);
          const w = m.frameWidth as number;
          const h = m.frameHeight as number;
          const images = idx.map((f) => store.image(m.id, f, w, h));
          const feats = await extractor.run(images);
          project.features.putMany(
            run.id,
            feats.map((f, k) => ({ mediaId: m.id, frameIdx: idx[k] as number, cls: f.cls, patches: toF16(f.patches) })),
          );
          done += idx.length;
          ctx.progress(done, total, { run: run.id, batch });
        }
        ctx.commit([{ key: String(m.id), status: 'ok', result: { runId: run.id, frames: m.frameCount } }], {
          mediaId: m.id,
        });
      }
    } finally {
      await extractor.release();
    }
  },
};
