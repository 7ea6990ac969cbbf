/**
 * The `train.sharelock` job: a ShareLock head (JonaRuthardt/ShareLock) trained by the one trainer on precomputed
 * features. Image side: the CLS vectors of a feature run of the project's vision model (normalised in the step, the
 * official 0-layer vision projector); text side: the language model's features of each prompt or caption, computed
 * once through the project's cache (native/text/feature-cache.ts). Data: class prompts of a labelled folder (seen
 * classes only; the split into seen and unseen is recorded), captions files, or both.
 *
 * Where we differ from the official code: pairs are visited in per-epoch permutations drawn from (seed, epoch), and
 * dropout masks come from the run's generator (torch's in the official); validation is off unless `valFraction`
 * holds out images (official: always, 50,000 images), and early stopping with it (sharelock-validation.ts).
 */
import path from 'node:path';
import { TrainShareLockArgs } from '../api/contract.js';
import { FlaneurError } from '../api/errors.js';
import type { Rng } from '../base/rng.js';
import type { JobContext, JobHandler } from '../jobs/types.js';
import type { TensorToWrite } from '../models/safetensors.js';
import type { RuntimeSettings } from '../runtime/session.js';
import type { Project } from '../store/project.js';
import { type CachedFeaturesResult, cachedTextFeatures, checkLlmFile } from '../text/feature-cache.js';
import { type HeadProvenance, headMetadata } from '../text/head-file.js';
import { LlamaEncoder, openLlama } from '../text/llama.js';
import {
  buildTextProjector,
  initShareLock,
  SHARELOCK_META_KEY,
  type ShareLockConfig,
  shareLockConfig,
  shareLockLrFactor,
} from '../text/sharelock.js';
import {
  buildShareLockStep,
  dropoutMasks,
  type ShareLockBatch,
  type ShareLockState,
  type ShareLockStepGraph,
  ShareLockStepRunner,
} from '../text/sharelock-step.js';
import type { CheckpointExtras, LoadedCheckpoint, StepParams } from './checkpoint.js';
import { batchIndices, classPrompt, labelledClass, readCaptionsFile, splitClasses } from './sharelock-data.js';
import { holdOutImages, ShareLockValidator } from './sharelock-validation.js';
import type { TrainState } from './step-runner.js';
import {
  type ExportedEncoder,
  type Objective,
  type ObjectiveSessions,
  type StepOutcome,
  type TrainCheckpoint,
  train,
} from './trainer.js';

type Args = TrainShareLockArgs;

/** The training pairs as feature rows: pair i is (vision[image[i]], text[textOf[i]]). */
export interface ShareLockData {
  /** [images, visionDim] raw CLS vectors. */
  vision: Float32Array;
  visionDim: number;
  /** [texts, textDim] language-model features. */
  text: Float32Array;
  textDim: number;
  image: Int32Array;
  textOf: Int32Array;
  /** What the data was, for the record (and the head's origin). */
  summary: ShareLockDataSummary;
}

export interface ShareLockDataSummary {
  pairs: number;
  images: number;
  texts: number;
  /** Labelled folders: the classes trained on and those held out (mutually exclusive). */
  seen: string[];
  unseen: string[];
  /** Captions whose image is not a library item with features in the run. */
  captionsSkipped: number;
  captions: number;
  /** Pairs held out for validation (not in `pairs`), when a validation split is asked for. */
  validation?: number;
}

/** The first frame's CLS of every media item of a run (an image's only frame). */
function runVectors(project: Project, runId: number): { byMedia: Map<number, Float32Array>; dim: number } {
  const byMedia = new Map<number, { idx: number; cls: Float32Array }>();
  for (const r of project.features.allCls(runId)) {
    const had = byMedia.get(r.mediaId);
    if (!had || r.frameIdx < had.idx) byMedia.set(r.mediaId, { idx: r.frameIdx, cls: r.cls });
  }
  const first = byMedia.values().next().value;
  return { byMedia: new Map([...byMedia].map(([k, v]) => [k, v.cls])), dim: first?.cls.length ?? 0 };
}

/** The (media, text) pairs of the job's data, and the record of what was taken. */
function collectPairs(project: Project, a: Args, withFeatures: ReadonlySet<number>) {
  const pairs: { media: number; text: string }[] = [];
  let seen: string[] = [];
  let unseen: string[] = [];
  if (a.classes) {
    const root = path.resolve(a.classes.root);
    const classOf = new Map<number, string>();
    for (const id of withFeatures) {
      const m = project.media.get(id);
      const c = m ? labelledClass(root, m.path) : null;
      if (c) classOf.set(id, c);
    }
    if (new Set(classOf.values()).size < 2)
      throw new FlaneurError(
        'INVALID_ARGUMENT',
        `${root} needs at least two class sub-folders whose images are in the library with features in feature run ${a.runId} (found ${new Set(classOf.values()).size}). Add the folder to the library and extract features with the vision model first.`,
        { field: 'classes' },
      );
    ({ seen, unseen } = splitClasses([...classOf.values()], {
      ...(a.classes.unseen ? { unseen: a.classes.unseen } : {}),
      fraction: a.classes.unseenFraction,
      seed: a.seed,
    }));
    const template = a.classes.template;
    for (const [media, c] of classOf) if (seen.includes(c)) pairs.push({ media, text: classPrompt(template, c) });
  }
  let captions = 0;
  let captionsSkipped = 0;
  if (a.captions) {
    const list = readCaptionsFile(a.captions.file, {
      format: a.captions.format,
      ...(a.captions.imagesDir ? { imagesDir: a.captions.imagesDir } : {}),
    });
    captions = list.length;
    for (const c of list) {
      const m = project.media.byPath(c.path);
      if (m && withFeatures.has(m.id)) pairs.push({ media: m.id, text: c.caption });
      else captionsSkipped++;
    }
  }
  if (pairs.length < 2)
    throw new FlaneurError(
      'INVALID_ARGUMENT',
      `The training data gives ${pairs.length} image–text pair${pairs.length === 1 ? '' : 's'} (${captionsSkipped} caption${captionsSkipped === 1 ? '' : 's'} name images that are not in the library with features in run ${a.runId}). Add the images to the library and extract their features first.`,
      { field: a.captions ? 'captions' : 'classes' },
    );
  return { pairs, seen, unseen, captions, captionsSkipped };
}

/**
 * The job's data: pairs from the labelled folder and captions, image features from the run, text features from
 * the cache (the language model is loaded only when some text is not cached yet, and released after).
 */
export async function shareLockData(
  ctx: Pick<JobContext<Args, unknown>, 'project' | 'runtime' | 'phase' | 'progress' | 'throwIfAborted'>,
  a: Args,
): Promise<{ data: ShareLockData; llm: { key: string; name: string }; vision: HeadProvenance['vision'] }> {
  const { project } = ctx;
  ctx.phase('reading the training data');
  const run = project.features.run(a.runId);
  if (!run) throw new FlaneurError('NOT_FOUND', `No feature run ${a.runId} in this project.`, { field: 'runId' });
  const model = project.models.get(run.modelId);
  const llmRow = project.textModels.get(a.textModel);
  if (llmRow?.kind !== 'llm')
    throw new FlaneurError('NOT_FOUND', `No language model ${a.textModel} in this project.`, { field: 'textModel' });
  const { byMedia, dim: visionDim } = runVectors(project, a.runId);
  const { pairs, ...record } = collectPairs(project, a, new Set(byMedia.keys()));
  const mediaIds = [...new Set(pairs.map((p) => p.media))];
  const texts = [...new Set(pairs.map((p) => p.text))];
  const mediaRow = new Map(mediaIds.map((m, i) => [m, i]));
  const textRow = new Map(texts.map((t, i) => [t, i]));
  const vision = new Float32Array(mediaIds.length * visionDim);
  mediaIds.forEach((m, i) => {
    vision.set(byMedia.get(m) as Float32Array, i * visionDim);
  });

  const { features } = await jobTextFeatures(ctx, llmRow, texts);
  const textDim = features[0]?.length ?? 0;
  const text = new Float32Array(texts.length * textDim);
  features.forEach((f, i) => {
    text.set(f, i * textDim);
  });
  const arch = (model?.manifest as { architecture?: Record<string, unknown> } | undefined)?.architecture ?? {};
  const num = (v: unknown) => (typeof v === 'number' ? v : null);
  return {
    data: {
      vision,
      visionDim,
      text,
      textDim,
      image: Int32Array.from(pairs, (p) => mediaRow.get(p.media) as number),
      textOf: Int32Array.from(pairs, (p) => textRow.get(p.text) as number),
      summary: { pairs: pairs.length, images: mediaIds.length, texts: texts.length, ...record },
    },
    llm: { key: llmRow.key, name: llmRow.name },
    vision: {
      modelId: model?.id ?? null,
      sha256: model?.sha256 ?? null,
      name: model?.name ?? null,
      architecture: {
        family: (['dino', 'dinov2', 'dinov3'] as const).find((f) => f === arch.family) ?? null,
        patchSize: num(arch.patchSize),
        dim: visionDim,
        registers: num(arch.registers),
      },
    },
  };
}

/**
 * Texts' features in a job, through the project's cache: the language model loaded only when some text is not
 * cached, 64 texts at a time (progress after each; a cancel stops between chunks, what was encoded stays cached),
 * and closed after. Its own phase, 'text features'.
 */
export async function jobTextFeatures(
  ctx: Pick<JobContext<unknown, unknown>, 'project' | 'runtime' | 'phase' | 'progress' | 'throwIfAborted'>,
  llm: { file: string; key: string; name: string },
  texts: readonly string[],
): Promise<CachedFeaturesResult> {
  ctx.phase('text features', { total: texts.length, unit: 'texts' });
  const file = checkLlmFile(llm.file, llm.key, llm.name);
  let encoder: Promise<LlamaEncoder> | null = null;
  const lazy = {
    encodeTexts: async (t: readonly string[]) => {
      ctx.throwIfAborted();
      encoder ??= LlamaEncoder.load(openLlama(file), { runtime: ctx.runtime });
      return (await encoder).encodeTexts(t);
    },
  };
  try {
    return await cachedTextFeatures(lazy, ctx.project.textFeatures, llm.key, texts, {
      chunk: 64,
      onProgress: (done, missing) => ctx.progress(texts.length - missing + done, texts.length),
    });
  } finally {
    if (encoder) await (await (encoder as Promise<LlamaEncoder>).catch(() => null))?.close();
  }
}

/** The step's sessions: the state stays on the host between steps (the head is small), so sync is a no-op. */
class ShareLockSessions implements ObjectiveSessions {
  constructor(
    readonly runner: ShareLockStepRunner,
    private readonly validator: ShareLockValidator | null,
  ) {}
  get provider(): string {
    return this.runner.provider;
  }
  async sync(): Promise<void> {}
  teacherWeights() {
    return new Map<string, Float32Array>();
  }
  async release(): Promise<void> {
    await this.validator?.release();
    await this.runner.release();
  }
}

/** ShareLock's head as an objective of the trainer. */
export class ShareLockObjective implements Objective<ShareLockSessions, ShareLockBatch[]> {
  private graph: ShareLockStepGraph | null = null;
  readonly config: ShareLockConfig;
  readonly batch: number;
  readonly imagesPerStep: number;
  readonly divergedHint = 'lower the learning rate (lr) or raise warmupSteps';
  /** Validation and early stopping on held-out images (`valFraction` > 0), else null. */
  private readonly validator: ShareLockValidator | null;
  readonly extras?: { save(): CheckpointExtras; restore(from: LoadedCheckpoint | null): void };
  /** The pairs trained on (without the held-out ones); `summary` is what the job records of the data. */
  readonly data: ShareLockData;

  constructor(
    private readonly a: Args,
    all: ShareLockData,
    private readonly provenance: { llm: { key: string; name: string }; vision: HeadProvenance['vision'] },
    private readonly jobId: number,
  ) {
    this.config = shareLockConfig(all.textDim, all.visionDim, {
      hidden: a.hidden,
      layers: a.layers,
      dropout: a.dropout,
    });
    if (a.valFraction > 0) {
      const { train, val } = holdOutImages(all, all.summary.images, a.valFraction, a.seed);
      this.data = {
        ...all,
        ...train,
        summary: { ...all.summary, pairs: train.image.length, validation: val.image.length },
      };
      const batch = Math.min(a.batch, val.image.length);
      const o = { every: a.valEvery, steps: a.steps, batch, patience: a.patience, minDelta: a.minDelta };
      const validator = new ShareLockValidator(this.config, all, val, o);
      this.validator = validator;
      this.extras = { save: () => validator.save(), restore: (from) => validator.restore(from) };
    } else {
      this.data = all;
      this.validator = null;
    }
    this.batch = Math.min(a.batch, this.data.summary.pairs);
    this.imagesPerStep = this.batch * a.accumulation;
  }

  private get built(): ShareLockStepGraph {
    if (!this.graph) throw new Error('the ShareLock step graph is not built');
    return this.graph;
  }

  build(): StepParams {
    this.graph = buildShareLockStep({ head: this.config, batch: this.batch, accumulation: this.a.accumulation });
    return { params: new Map([...this.graph.params, ...this.graph.buffers]), trainable: [...this.graph.params.keys()] };
  }

  async open(runtime: RuntimeSettings): Promise<ShareLockSessions> {
    const runner = await ShareLockStepRunner.create(this.built, runtime);
    await this.validator?.open(runtime);
    return new ShareLockSessions(runner, this.validator);
  }

  async validate(_s: ShareLockSessions, state: TrainState) {
    return this.validator ? this.validator.validate(state) : null;
  }

  /** PyTorch's default initialisation from the run's generator; the BatchNorm statistics ride along as parameters. */
  initialState(rng: Rng): TrainState {
    const { params, buffers } = initShareLock(this.config, rng);
    const all = new Map([...params, ...buffers]);
    const zeros = () => new Map([...params].map(([n, v]) => [n, new Float32Array(v.length)]));
    return { step: 0, params: all, teacher: all, m: zeros(), v: zeros(), center: new Float32Array(0) };
  }

  /** One optimizer step's micro-batches: pairs in the epoch order of (seed, step), dropout masks from the run. */
  async draw(rng: Rng, state: TrainState): Promise<ShareLockBatch[]> {
    const { data, batch: B, config: c } = this;
    const k = this.a.accumulation;
    return Array.from({ length: k }, (_, j) => {
      const idx = batchIndices(data.summary.pairs, B, state.step * k + j, this.a.seed);
      const text = new Float32Array(B * c.textDim);
      const vision = new Float32Array(B * c.visionDim);
      idx.forEach((p, r) => {
        const t = data.textOf[p] as number;
        const im = data.image[p] as number;
        text.set(data.text.subarray(t * c.textDim, (t + 1) * c.textDim), r * c.textDim);
        vision.set(data.vision.subarray(im * c.visionDim, (im + 1) * c.visionDim), r * c.visionDim);
      });
      return { text, vision, ...(c.dropout > 0 ? { masks: dropoutMasks(c, B, () => rng.next()) } : {}) };
    });
  }

  async step(s: ShareLockSessions, state: TrainState, batches: ShareLockBatch[]): Promise<StepOutcome> {
    const g = this.built;
    const lr = this.a.lr * shareLockLrFactor(state.step, this.a.warmupSteps, this.a.steps);
    const view: ShareLockState = {
      step: state.step,
      params: new Map([...g.params.keys()].map((n) => [n, state.params.get(n) as Float32Array])),
      buffers: new Map([...g.buffers.keys()].map((n) => [n, state.params.get(n) as Float32Array])),
      m: state.m,
      v: state.v,
    };
    const m = await s.runner.step(view, batches, { lr, weightDecay: this.a.weightDecay, maxNorm: this.a.maxGradNorm });
    for (const [n, v] of [...view.params, ...view.buffers]) state.params.set(n, v);
    if (state.teacher !== state.params) for (const [n, v] of state.params) state.teacher.set(n, v);
    state.step = view.step;
    return {
      loss: m.loss,
      gradNorm: m.gradNorm,
      lr,
      wd: this.a.weightDecay,
      ema: 0,
      monitor: 0,
      progress: { grad_norm: m.gradNorm, lr },
    };
  }

  /** The head in official names (with its BatchNorm statistics), what it pairs with, and its inference graph. */
  export(state: TrainState): ExportedEncoder {
    const { a, data, provenance, config: c } = this;
    const g = this.built;
    // with validation, the head of the lowest validation loss (the official code tests its best checkpoint)
    const best = this.validator?.bestParams() ?? null;
    const from = best?.params ?? state.params;
    const tensors = new Map<string, TensorToWrite>();
    for (const [name, shape] of [...g.params, ...g.buffers])
      tensors.set(name, { shape, data: from.get(name) as Float32Array });
    const d = data.summary;
    const parts = [
      d.seen.length
        ? `class prompts of ${d.seen.length} seen classes (${d.seen.join(', ')}; held out: ${d.unseen.join(', ') || 'none'})`
        : '',
      d.captions ? `${d.captions - d.captionsSkipped} captions` : '',
    ].filter(Boolean);
    const validated = best
      ? `, the head of step ${best.step} of the lowest validation loss (${best.loss.toFixed(4)} on ${d.validation} held-out pairs)`
      : '';
    const origin = `ShareLock head trained here on ${d.pairs} pairs of ${d.images} images and ${d.texts} texts (${parts.join(' and ')}), ${a.steps} steps of ${this.imagesPerStep} pairs${validated}, text features of ${provenance.llm.name}, image features of ${provenance.vision.name ?? 'the vision model'} (job ${this.jobId}).`;
    const head: HeadProvenance = {
      textModel: { key: provenance.llm.key, name: provenance.llm.name, dim: c.textDim },
      vision: provenance.vision,
      origin,
    };
    const weights = new Map([...tensors].map(([k, v]) => [k, v.data]));
    return {
      tensors,
      metadata: {
        [SHARELOCK_META_KEY]: JSON.stringify(c),
        ...headMetadata(head),
        trained_by: 'flaneur train.sharelock',
        data: JSON.stringify(d),
        ...(best ? { validation: JSON.stringify({ bestStep: best.step, bestLoss: best.loss }) } : {}),
      },
      onnx: buildTextProjector(c, weights),
      name:
        a.name ??
        `ShareLock head for ${provenance.llm.name} + ${provenance.vision.name ?? 'vision'} (job ${this.jobId})`,
      origin,
    };
  }
}

export const trainShareLockJob: JobHandler<Args, TrainCheckpoint> = {
  kind: 'train.sharelock',
  args: TrainShareLockArgs,
  title: (a) => `Train a ShareLock head, ${a.steps} steps`,
  async run(ctx) {
    const a = ctx.args;
    const { data, llm, vision } = await shareLockData(ctx, a);
    const objective = new ShareLockObjective(a, data, { llm, vision }, ctx.jobId);
    if (!ctx.finishedKeys().has('data'))
      ctx.commit(
        [{ key: 'data', status: 'ok', result: objective.data.summary }],
        ctx.checkpoint ?? { file: '', step: 0 },
      );
    const settings = {
      steps: a.steps,
      checkpointEvery: a.checkpointEvery,
      previewEvery: 0,
      seed: a.seed,
      device: a.device,
      previews: null,
    };
    return train(ctx, settings, objective);
  },
};
