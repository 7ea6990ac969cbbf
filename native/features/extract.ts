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
import type { RgbImage } from '../media/image.js';
import { type ImportedViT, importViTFile } from '../models/import-vit.js';
import { type InputShape, inputShape, MAX_ASPECT, type ResizePolicy } from '../models/preprocess.js';
import { f32ToF16 } from '../models/safetensors.js';
import { buildViTOnnx } from '../models/vit-onnx.js';
import { probeProviders, providerOrder } from '../runtime/providers.js';
import { DEFAULT_RUNTIME, ModelSession, ort, type RuntimeSettings } from '../runtime/session.js';
import type { FeatureRunRow } from '../store/features-repo.js';
import type { Project } from '../store/project.js';
import { ExtractTimeline } from './extract-timeline.js';
import { PrepareAhead, type PreparedBatch, type PrepareSpec, prepareBatch } from './prepare-ahead.js';
import { planFrames, planFramesOf } from './source-frames.js';

export const FEATURES_CODE_VERSION = 'features-1';

export const ExtractArgs = z.object({
  modelId: z.int().positive(),
  media: z.array(z.int().positive()).optional(),
  /** Input size: the shorter side of the input (the whole side for square runs); a multiple of the patch size. */
  size: z.int().min(16).max(2048).default(224),
  /** 'aspect' keeps the frame's aspect ratio (see inputShape); 'square' squashes it as runs before it did. */
  resize: z.enum(['aspect', 'square']).default('aspect'),
  /** Images per batch; 0 picks one from the free memory. */
  batch: z.int().min(0).max(256).default(0),
});
export type ExtractArgs = z.output<typeof ExtractArgs>;

/** The provenance of a run's preprocessing; square runs keep the key they were made with ('squash'). */
export function preprocessingOf(policy: ResizePolicy): Record<string, unknown> {
  return policy === 'aspect'
    ? { resize: 'aspect', maxAspect: MAX_ASPECT, filter: 'bilinear', normalize: 'model mean/std' }
    : { resize: 'squash', filter: 'bilinear', normalize: 'model mean/std' };
}

/** The resize policy a run was made with: runs from before the aspect policy ('squash') are square. */
export function runPolicy(run: Pick<FeatureRunRow, 'preprocessing'>): ResizePolicy {
  return run.preprocessing.resize === 'aspect' ? 'aspect' : 'square';
}

/** The patch grid (rows, columns) of a width × height frame in a run: every consumer asks here, never assumes square. */
export function frameGrid(
  run: Pick<FeatureRunRow, 'preprocessing' | 'inputSize' | 'grid'>,
  width: number,
  height: number,
): InputShape {
  return inputShape(width, height, run.inputSize, run.inputSize / run.grid, runPolicy(run));
}

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
  policy: ResizePolicy = 'aspect',
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
    preprocessing: { ...preprocessingOf(policy), mean: [...model.config.mean], std: [...model.config.std] },
    codeVersion: FEATURES_CODE_VERSION,
  });
}

export function toF16(a: Float32Array): Uint16Array {
  const out = new Uint16Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = f32ToF16(a[i] as number);
  return out;
}

export interface FrameFeatures {
  cls: Float32Array;
  patches: Float32Array;
  gridH: number;
  gridW: number;
}

/** A frame's features as the store keeps them: CLS float32, patch tokens float16 (raw bits). */
export interface StoredFeatures {
  cls: Float32Array;
  patches: Uint16Array;
}

/** Input shapes kept as sessions at once (frames of a library have few aspect ratios). */
const SHAPES_KEPT = 6;

/**
 * Runs the model on frames (RGB) and returns CLS and patch tokens per frame. Each frame goes in at the shape the
 * resize policy gives it (`inputShape`); a session is built per input shape and the recent ones are kept.
 */
export class FeatureExtractor {
  private readonly sessions = new Map<string, Promise<ModelSession>>();
  private released = false;
  private first: ModelSession | undefined;
  private constructor(
    readonly model: ImportedViT,
    readonly size: number,
    readonly policy: ResizePolicy,
    private readonly runtime: RuntimeSettings | undefined,
    /**
     * How runStored gets float16 patch tokens: from the graph (a Cast output) where the CPU is the provider to be
     * used, else as float32 converted on the host (toF16, the same bits): WebGPU's Cast to float16 needs the
     * shader-f16 feature that many adapters (SwiftShader among them) lack, and the run would fail there.
     */
    private readonly storedType: 'float32' | 'float16',
  ) {}

  /**
   * `first`: a frame size to build the first session for (default: a square frame), and with `stored` that
   * session is runStored's (float16 patch tokens).
   */
  static async create(
    model: ImportedViT,
    size: number,
    runtime?: RuntimeSettings,
    policy: ResizePolicy = 'aspect',
    first?: { width: number; height: number; stored?: boolean },
  ): Promise<FeatureExtractor> {
    // The provider ModelSession.create will try first (the probe is done once per process).
    const [preferred] = providerOrder(await probeProviders(), (runtime ?? DEFAULT_RUNTIME).provider);
    const ex = new FeatureExtractor(model, size, policy, runtime, preferred === 'cpu' ? 'float16' : 'float32');
    const shape = ex.shapeOf(first?.width ?? size, first?.height ?? size);
    ex.first = await ex.session(shape, first?.stored ? ex.storedType : 'float32');
    return ex;
  }

  get provider(): string {
    return this.first?.info.provider ?? 'cpu';
  }

  get patchSize(): number {
    return this.model.config.patchSize;
  }

  /** The input shape and patch grid of a width × height image under this extractor's policy. */
  shapeOf(width: number, height: number): InputShape {
    return inputShape(width, height, this.size, this.model.config.patchSize, this.policy);
  }

  private session(shape: InputShape, patchesType: 'float32' | 'float16' = 'float32'): Promise<ModelSession> {
    // A released extractor must not quietly build sessions again outside of whoever released it (ExtractorCache).
    if (this.released) throw new FlaneurError('INTERNAL', 'This feature extractor was released.');
    const key = `${shape.width}x${shape.height}/${patchesType}`;
    const hit = this.sessions.get(key);
    if (hit) {
      this.sessions.delete(key);
      this.sessions.set(key, hit);
      return hit;
    }
    const onnx = buildViTOnnx(this.model, {
      height: shape.height,
      width: shape.width,
      outputs: { cls: true, patches: true },
      fused: true,
      patchesType,
    });
    // The intra-op threads sleep between kernels instead of spinning: on a machine of few cores the decode-ahead
    // thread's reading and preprocessing need those cycles (measured: 2 cores, ViT-Ti/16 224x304, the job's CPU
    // 54 -> 45-48 ms a frame; bench/results/perf-issue30/extract-spinning.json).
    const made = ModelSession.create(onnx, this.runtime, { spinning: false });
    this.sessions.set(key, made);
    made.catch(() => this.sessions.delete(key));
    while (this.sessions.size > SHAPES_KEPT) {
      const [oldest, s] = this.sessions.entries().next().value as [string, Promise<ModelSession>];
      this.sessions.delete(oldest);
      void s.then((x) => (x === this.first ? undefined : x.release())).catch(() => undefined);
    }
    return made;
  }

  /** Features of images, each at the shape the policy gives it. */
  async run(images: readonly { width: number; height: number; data: Uint8Array }[]): Promise<FrameFeatures[]> {
    const out = new Array<FrameFeatures>(images.length);
    const groups = new Map<string, { shape: InputShape; at: number[] }>();
    images.forEach((img, i) => {
      const shape = this.shapeOf(img.width, img.height);
      const key = `${shape.width}x${shape.height}`;
      const g = groups.get(key) ?? { shape, at: [] };
      g.at.push(i);
      groups.set(key, g);
    });
    for (const { shape, at } of groups.values()) {
      const feats = await this.runAt(
        at.map((i) => images[i] as (typeof images)[number]),
        shape,
      );
      at.forEach((i, k) => {
        out[i] = feats[k] as FrameFeatures;
      });
    }
    return out;
  }

  /** Features of images all resized (stretched) to one input shape. */
  async runAt(
    images: readonly { width: number; height: number; data: Uint8Array }[],
    shape: InputShape,
  ): Promise<FrameFeatures[]> {
    return this.runPrepared(prepareBatch(images, this.spec(shape)), images.length, shape);
  }

  /** What preprocessing for `shape` needs (prepareBatch, prepareAhead). */
  spec(shape: InputShape): PrepareSpec {
    return { shape, mean: this.model.config.mean, std: this.model.config.std };
  }

  /** Features of `count` images already prepared for `shape` (prepareBatch: [count, 3, H, W]). */
  async runPrepared(input: Float32Array, count: number, shape: InputShape): Promise<FrameFeatures[]> {
    const { cls, patches } = await this.outputs(input, count, shape, 'float32');
    const d = this.model.config.dim;
    const n = shape.gridH * shape.gridW;
    return Array.from({ length: count }, (_, i) => ({
      cls: cls.slice(i * d, (i + 1) * d),
      patches: patches.slice(i * n * d, (i + 1) * n * d),
      gridH: shape.gridH,
      gridW: shape.gridW,
    }));
  }

  /**
   * Features of `count` prepared images as the store keeps them: the patch tokens cast to float16 by the graph on
   * the CPU (the bits toF16 gives the float32 tokens), by toF16 on the host on a GPU (`storedType`); the CLS arrays
   * (and the graph's float16 patches) are views of the session's outputs.
   */
  async runStored(input: Float32Array, count: number, shape: InputShape): Promise<StoredFeatures[]> {
    const d = this.model.config.dim;
    const n = shape.gridH * shape.gridW * d;
    const { cls, patches } = await this.outputs(input, count, shape, this.storedType);
    return Array.from({ length: count }, (_, i) => {
      const p = patches.subarray(i * n, (i + 1) * n);
      return { cls: cls.subarray(i * d, (i + 1) * d), patches: p instanceof Float32Array ? toF16(p) : p };
    });
  }

  /** The session's CLS and patch outputs for `count` prepared images, the patches of the type asked. */
  private async outputs<T extends 'float32' | 'float16'>(
    input: Float32Array,
    count: number,
    shape: InputShape,
    patchesType: T,
  ): Promise<{ cls: Float32Array; patches: T extends 'float16' ? Uint16Array : Float32Array }> {
    const session = await this.session(shape, patchesType);
    const pixels = new ort.Tensor('float32', input, [count, 3, shape.height, shape.width]);
    const out = await session.run({ pixels }, ['cls', 'patches']);
    return {
      cls: out.cls?.data as Float32Array,
      patches: out.patches?.data as T extends 'float16' ? Uint16Array : Float32Array,
    };
  }

  async release(): Promise<void> {
    this.released = true;
    const all = [...this.sessions.values()];
    this.sessions.clear();
    for (const s of all) await (await s.catch(() => null))?.release();
  }
}

/** Batches of frames prepared on this thread, as they come. */
async function* preparedHere(
  frames: AsyncIterable<{ idx: number; image: RgbImage }>,
  batch: number,
  spec: PrepareSpec,
): AsyncGenerator<PreparedBatch> {
  let idx: number[] = [];
  let images: RgbImage[] = [];
  for await (const f of frames) {
    idx.push(f.idx);
    images.push(f.image);
    if (idx.length >= batch) {
      yield { idx, input: prepareBatch(images, spec) };
      idx = [];
      images = [];
    }
  }
  if (idx.length > 0) yield { idx, input: prepareBatch(images, spec) };
}

export const extractFeaturesJob: JobHandler<ExtractArgs, { mediaId: number }> = {
  kind: 'features.extract',
  args: ExtractArgs,
  title: (a) => `Extract features with model #${a.modelId} at ${a.size} px${a.resize === 'square' ? ' (square)' : ''}`,
  async run(ctx) {
    const timeline = ExtractTimeline.fromEnv();
    timeline.mark('job start');
    // The providers' probe that the session waits for (once per process; WebGPU's in a child process) runs while
    // the model is read.
    const probed = probeProviders().catch(() => undefined);
    const { project } = ctx;
    const { model, sha256 } = loadRegisteredModel(project, ctx.args.modelId);
    const run = ensureRun(project, ctx.args.modelId, sha256, model, ctx.args.size, ctx.args.resize);
    const media = (ctx.args.media ?? project.media.list({ status: 'done', limit: 100000 }).items.map((m) => m.id))
      .map((id) => project.media.get(id))
      .filter((m): m is NonNullable<typeof m> => Boolean(m && m.status === 'done' && m.frameWidth && m.frameHeight));
    const todo = media.map((m) => ({ m, done: project.features.doneFrames(run.id, m.id) }));
    const total = todo.reduce((a, t) => a + t.m.frameCount, 0);
    let done = todo.reduce((a, t) => a + t.done.size, 0);
    ctx.phase('extracting', { total, unit: 'frames', done });
    if (done === total) return;
    const first = todo[0]?.m;
    const shape = frameGrid(run, first?.frameWidth ?? run.inputSize, first?.frameHeight ?? run.inputSize);
    const tokens = shape.gridH * shape.gridW + 1 + model.config.registers;
    const batch = ctx.args.batch || autoBatch(model.config.dim, tokens, model.config.depth);
    const store = new FrameStore(project.cacheDir);
    const items = todo.map(({ m, done: have }) => {
      const g = frameGrid(run, m.frameWidth as number, m.frameHeight as number);
      // Frames are stored at the import's frame size (shorter side 224 by default): a larger input size decodes
      // them again from the source at the model's input shape (source-frames.ts), or upsamples and says why.
      const plan = planFrames(m, run.inputSize, g);
      const todoIdx = [...Array(m.frameCount).keys()].filter((i) => !have.has(i));
      return { m, g, plan, todoIdx, stats: { fromStore: 0 } };
    });
    // An item of more than one batch is read and preprocessed on a worker thread while the model runs
    // (prepare-ahead.ts); a still or a short clip on this thread, where a thread's start would cost more than it saves.
    const batchesOf = (it: (typeof items)[number]): PrepareAhead | AsyncGenerator<PreparedBatch> => {
      const { m, plan, todoIdx, stats } = it;
      const pts = plan.from === 'source' && m.kind === 'video' ? project.media.frames(m.id, 0, m.frameCount) : [];
      const spec: PrepareSpec = { shape: it.g, mean: model.config.mean, std: model.config.std };
      if (todoIdx.length <= batch)
        return preparedHere(
          planFramesOf(m, plan, todoIdx, store, (i) => pts[i]?.pts, stats, ctx.signal),
          batch,
          spec,
        );
      // Every batch, the first included, on the thread: started now, it prepares the first while the session is
      // built (built engine, 2 cores: the first batch ready ~10 ms after the session, where this thread's own took
      // 40-90 ms of cold code; bench/results/perf-issue30/extract-first-batch.json).
      const req = { media: m, plan, pts: pts.map((f) => f.pts), cacheDir: project.cacheDir, spec };
      return new PrepareAhead({ ...req, idx: todoIdx, batch, ahead: 2 }, stats, ctx.signal);
    };
    // The first item's frames are prepared while the session is built, each next item's while the one before runs.
    timeline.mark('model loaded');
    let upcoming = items[0] ? batchesOf(items[0]) : null;
    let current: typeof upcoming = null;
    timeline.mark('preparation started');
    try {
      await probed;
      timeline.mark('providers probed');
      const extractor = await FeatureExtractor.create(
        model,
        ctx.args.size,
        ctx.runtime,
        ctx.args.resize,
        first ? { width: first.frameWidth as number, height: first.frameHeight as number, stored: true } : undefined,
      );
      timeline.mark('session ready');
      try {
        // Which provider does the work (after any fallback), where the progress is shown.
        ctx.phase(`extracting on ${extractor.provider}`, { total, unit: 'frames', done });
        for (let k = 0; k < items.length; k++) {
          const { m, g, plan, stats } = items[k] as (typeof items)[number];
          current = upcoming as NonNullable<typeof upcoming>;
          upcoming = null;
          const next = items[k + 1];
          if (next) upcoming = batchesOf(next);
          for await (const { idx, input } of current) {
            const got = timeline.stamp();
            ctx.throwIfAborted();
            const feats = await extractor.runStored(input, idx.length, g);
            const ran = timeline.stamp();
            project.features.putMany(
              run.id,
              feats.map((f, j) => ({ mediaId: m.id, frameIdx: idx[j] as number, ...f })),
            );
            timeline.batch(idx.length, got, ran);
            done += idx.length;
            ctx.progress(done, total, { run: run.id, batch });
          }
          const note =
            plan.note && stats.fromStore > 0
              ? `${plan.note}; ${stats.fromStore} frame(s) the decode did not give again were upsampled from the stored frames`
              : plan.note;
          const result = { runId: run.id, frames: m.frameCount, grid: [g.gridH, g.gridW], ...(note ? { note } : {}) };
          ctx.commit([{ key: String(m.id), status: 'ok', result }], {
            mediaId: m.id,
          });
        }
      } finally {
        await extractor.release();
      }
    } finally {
      for (const b of [current, upcoming])
        if (b instanceof PrepareAhead) await b.close();
        else await b?.return(undefined);
      timeline.mark('job end');
      timeline.write();
    }
  },
};
