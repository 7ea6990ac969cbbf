import path from 'node:path';
import { TrainDinoArgs } from '../api/contract.js';
import { FlaneurError } from '../api/errors.js';
import type { Rng } from '../base/rng.js';
import { cosineSchedule } from '../graph/optim.js';
import type { JobHandler } from '../jobs/types.js';
import { FrameStore } from '../media/frame-store.js';
import type { DinoHeadConfig } from '../models/dino-head.js';
import { importViTFile } from '../models/import-vit.js';
import type { TensorToWrite } from '../models/safetensors.js';
import { presetConfig, type ViTConfig } from '../models/vit.js';
import type { RuntimeSettings } from '../runtime/session.js';
import type { MediaRow } from '../store/media-repo.js';
import type { Project } from '../store/project.js';
import { augmentInto, DINO_JITTER } from './augment.js';
import { buildDinoStep, dinoParamShapes } from './dino-step.js';
import { type ClipSource, doraBatch, TeacherAttention } from './dora-clips.js';
import { initialState, type StepBatch, StepRunner, type TrainState } from './step-runner.js';
import { NecoObjective } from './train-neco.js';
import {
  dropPathMask,
  type ExportedEncoder,
  type Objective,
  runGenerator,
  type TrainCheckpoint,
  train,
  vitEncoderOnnx,
} from './trainer.js';

type Args = typeof TrainDinoArgs._zod.output;

export function vitForInit(init: Args['init'], loaded: ViTConfig | null): ViTConfig {
  if (init.kind === 'model') {
    if (!loaded) throw new Error('model weights not loaded');
    return loaded;
  }
  if (init.preset === 'tiny')
    return { ...presetConfig('vit_ti16'), dim: 48, depth: 2, heads: 3, mlpHidden: 96, posGrid: 4 };
  return presetConfig(init.preset);
}

/** DINO's initialisation: truncated normal (std 0.02) for weights and tokens, zero biases, unit norms. */
export function initParams(shapes: Map<string, number[]>, rng: Rng): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const [name, shape] of shapes) {
    const n = shape.reduce((a, d) => a * d, 1);
    const a = new Float32Array(n);
    if (/norm\d*\.weight$|\.gamma$/.test(name)) a.fill(name.endsWith('.gamma') ? 1e-5 : 1);
    else if (name.endsWith('.bias')) a.fill(0);
    else if (name.endsWith('last_layer.weight_v')) {
      const bound = 1 / Math.sqrt(shape[1] as number);
      for (let i = 0; i < n; i++) a[i] = rng.uniform(-bound, bound);
    } else for (let i = 0; i < n; i++) a[i] = rng.truncNormal(0.02);
    out.set(name, a);
  }
  return out;
}

export interface TrainFrame {
  media: number;
  idx: number;
  w: number;
  h: number;
}

export interface RunPlan {
  /** The media whose sampled frames are the data, in the order the generator draws from. */
  media: MediaRow[];
  frames: TrainFrame[];
  loaded: { config: ViTConfig; weights: Map<string, Float32Array> } | null;
  vit: ViTConfig;
  head: DinoHeadConfig;
}

/** The data, model and head of a run, validated (shared by the trainer and `train.export`). */
export function planRun(project: Project, a: Args): RunPlan {
  // Data: the sampled frames of the chosen media.
  const media: MediaRow[] = [];
  for (const id of a.media ?? project.media.list({ status: 'done', limit: 100000 }).items.map((m) => m.id)) {
    const m = project.media.get(id);
    if (m && m.status === 'done' && m.frameCount > 0 && m.frameWidth && m.frameHeight) media.push(m);
  }
  const frames: TrainFrame[] = [];
  for (const m of media)
    for (let i = 0; i < m.frameCount; i++)
      frames.push({ media: m.id, idx: i, w: m.frameWidth as number, h: m.frameHeight as number });
  if (frames.length === 0)
    throw new FlaneurError('INVALID_ARGUMENT', 'No frames to train on: add videos or images in the Library first.', {
      field: 'media',
    });
  let loaded: RunPlan['loaded'] = null;
  if (a.init.kind === 'model') {
    const row = project.models.get(a.init.id);
    if (!row) throw new FlaneurError('NOT_FOUND', `No model ${a.init.id} in this project.`, { field: 'init' });
    const man = row.manifest as { architecture: { heads: number; lnEps: number } };
    loaded = importViTFile(path.join(project.dir, row.file), {
      heads: man.architecture.heads,
      lnEps: man.architecture.lnEps,
    });
  }
  const vit = vitForInit(a.init, loaded?.config ?? null);
  const head: DinoHeadConfig = {
    inDim: vit.dim,
    hiddenDim: a.headHidden,
    bottleneckDim: a.bottleneck,
    outDim: a.outDim,
    layers: 3,
  };
  if (!a.neco && (a.globalSize % vit.patchSize || a.localSize % vit.patchSize)) {
    throw new FlaneurError('INVALID_ARGUMENT', `Crop sizes must be multiples of the patch size ${vit.patchSize}.`, {
      field: 'globalSize',
    });
  }
  if (a.dora && a.batch % a.dora.framesPerClip)
    throw new FlaneurError(
      'INVALID_ARGUMENT',
      `With Dora the batch must be a multiple of the ${a.dora.framesPerClip} frames per clip.`,
      { field: 'batch' },
    );
  return { media, frames, loaded, vit, head };
}

/** The step-0 parameters (DINO's init, then any loaded weights) and the generator after drawing them. */
export function startingParams(
  a: Args,
  vit: ViTConfig,
  head: DinoHeadConfig,
  loaded: RunPlan['loaded'],
): { params: Map<string, Float32Array>; rng: Rng } {
  const rng = runGenerator(a.seed);
  return { params: dinoStartingParams(vit, head, loaded, rng), rng };
}

/** DINO's initialisation drawn from `rng`, then any loaded weights over it. */
function dinoStartingParams(
  vit: ViTConfig,
  head: DinoHeadConfig,
  loaded: RunPlan['loaded'],
  rng: Rng,
): Map<string, Float32Array> {
  const params = initParams(dinoParamShapes({ vit, head }), rng);
  if (loaded) for (const [k, v] of loaded.weights) params.set(k, v);
  return params;
}

/** DINO's (and Dora's) step sessions: the step graph, and with Dora the teacher pass that draws each batch. */
interface DinoSessions {
  runner: StepRunner;
  attention: TeacherAttention | null;
  readonly provider: string;
  sync(state: TrainState): Promise<void>;
  teacherWeights(state: TrainState): ReturnType<StepRunner['teacherWeights']>;
  release(): Promise<void>;
}

/** DINO self-distillation (with `a.dora`: Dora's clips, masks and teacher logits) as an objective of the trainer. */
export class DinoObjective implements Objective<DinoSessions, StepBatch & { maskCover?: number }> {
  private graph: ReturnType<typeof buildDinoStep> | null = null;
  private readonly G: number;
  private readonly L: number;
  private readonly lr: (step: number) => number;
  private readonly wd: (step: number) => number;
  private readonly ema: (step: number) => number;
  private readonly sources: ClipSource[];
  readonly imagesPerStep: number;
  readonly divergedHint = 'lower the learning rate';

  constructor(
    private readonly a: Args,
    private readonly plan: RunPlan,
    private readonly store: FrameStore,
    private readonly jobId: number,
  ) {
    const { vit } = plan;
    this.G = a.dora ? Math.min(a.dora.objects, vit.heads) : 2;
    this.L = a.localCrops;
    this.imagesPerStep = (this.G + this.L) * a.batch;
    this.lr = cosineSchedule((a.lr * (2 * a.batch)) / 256, a.minLr, a.steps, Math.min(a.warmupSteps, a.steps));
    this.wd = cosineSchedule(a.weightDecay, a.weightDecayEnd, a.steps);
    this.ema = cosineSchedule(a.emaStart, a.emaEnd, a.steps);
    this.sources = plan.media.map((m) => {
      const w = m.frameWidth as number;
      const h = m.frameHeight as number;
      return { frames: m.frameCount, read: (i: number) => store.image(m.id, i, w, h) };
    });
  }

  private get shapes() {
    const { a, G, L } = this;
    return {
      globals: [G * a.batch, 3, a.globalSize, a.globalSize],
      locals: L > 0 ? [L * a.batch, 3, a.localSize, a.localSize] : null,
      dpGlobal: a.dropPath > 0 ? [this.plan.vit.depth, G * a.batch] : null,
      dpLocal: a.dropPath > 0 && L > 0 ? [this.plan.vit.depth, L * a.batch] : null,
    };
  }

  private get built(): ReturnType<typeof buildDinoStep> {
    if (!this.graph) throw new Error('the DINO step graph is not built');
    return this.graph;
  }

  build(): ReturnType<typeof buildDinoStep> {
    const { a, plan } = this;
    this.graph = buildDinoStep({
      vit: plan.vit,
      head: plan.head,
      batch: a.batch,
      globalSize: a.globalSize,
      globalCrops: this.G,
      dora: Boolean(a.dora),
      localSize: a.localSize,
      localCrops: this.L,
      dropPath: a.dropPath > 0,
      koleo: a.koleo,
      freezeLastLayer: a.freezeLastLayerSteps > 0,
    });
    return this.graph;
  }

  async open(runtime: RuntimeSettings): Promise<DinoSessions> {
    const runner = await StepRunner.create(this.built, this.shapes, runtime);
    // Dora: the teacher's one pass per step gives the attention for the masks and the logits for the loss.
    const attention = this.a.dora
      ? await TeacherAttention.create(this.plan.vit, this.a.globalSize, runtime, this.plan.head, false)
      : null;
    return {
      runner,
      attention,
      get provider() {
        return runner.provider;
      },
      sync: (state) => runner.sync(state),
      teacherWeights: (state) => runner.teacherWeights(state),
      release: async () => {
        await runner.release();
        await attention?.release();
      },
    };
  }

  initialState(rng: Rng): TrainState {
    const { plan } = this;
    return initialState(this.built, dinoStartingParams(plan.vit, plan.head, plan.loaded, rng));
  }

  async draw(rng: Rng, state: TrainState, s: DinoSessions): Promise<StepBatch & { maskCover?: number }> {
    const { a, G, L, plan } = this;
    const { vit } = plan;
    let batch: StepBatch & { maskCover?: number };
    if (a.dora && s.attention) {
      const attention = s.attention;
      const d = await doraBatch(
        this.sources,
        a.batch / a.dora.framesPerClip,
        a.globalSize,
        { size: a.localSize, scale: [0.05, 0.4], count: L },
        a.dora,
        { mean: vit.mean, std: vit.std, patch: vit.patchSize, heads: vit.heads },
        rng,
        (views, count) => attention.run(views, count, s.runner.teacherWeights(state), this.built.params),
      );
      batch = {
        globals: d.masked,
        teacherLogits: d.teacherLogits,
        maskCover: d.maskCover,
        ...(d.locals ? { locals: d.locals } : {}),
      };
    } else {
      const gPlane = 3 * a.globalSize * a.globalSize;
      const lPlane = 3 * a.localSize * a.localSize;
      const globals = new Float32Array(2 * a.batch * gPlane);
      const locals = L > 0 ? new Float32Array(L * a.batch * lPlane) : undefined;
      const global = { size: a.globalSize, scale: [0.4, 1] as [number, number] };
      const local = { size: a.localSize, scale: [0.05, 0.4] as [number, number] };
      for (let i = 0; i < a.batch; i++) {
        const f = plan.frames[rng.int(plan.frames.length)] as TrainFrame;
        const img = this.store.image(f.media, f.idx, f.w, f.h);
        for (let g = 0; g < 2; g++)
          augmentInto(img, global, DINO_JITTER, 0.2, vit.mean, vit.std, rng, globals, (g * a.batch + i) * gPlane);
        for (let l = 0; l < L; l++)
          augmentInto(
            img,
            local,
            DINO_JITTER,
            0.2,
            vit.mean,
            vit.std,
            rng,
            locals as Float32Array,
            (l * a.batch + i) * lPlane,
          );
      }
      batch = { globals, ...(locals ? { locals } : {}) };
    }
    const shapes = this.shapes;
    if (shapes.dpGlobal) batch.dpGlobal = dropPathMask(rng, vit.depth, a.dropPath, G * a.batch);
    if (shapes.dpLocal) batch.dpLocal = dropPathMask(rng, vit.depth, a.dropPath, L * a.batch);
    return batch;
  }

  async step(s: DinoSessions, state: TrainState, batch: StepBatch & { maskCover?: number }) {
    const { a } = this;
    const step = state.step;
    const scalars = {
      lr: this.lr(step),
      wd: this.wd(step),
      ema: this.ema(step),
      center_momentum: a.centerMomentum,
      student_temp: a.studentTemp,
      teacher_temp: a.teacherTemp,
      max_norm: a.clip,
      // DINO's freeze_last_layer, in the step graph.
      freeze_last: step < a.freezeLastLayerSteps ? 1 : 0,
    };
    const { maskCover, ...feeds } = batch;
    const m = await s.runner.step(state, feeds, scalars);
    return {
      loss: m.loss,
      gradNorm: m.gradNorm,
      lr: scalars.lr,
      wd: scalars.wd,
      ema: scalars.ema,
      monitor: m.teacherEntropy,
      progress: {
        teacher_entropy: m.teacherEntropy,
        grad_norm: m.gradNorm,
        ...(maskCover === undefined ? {} : { mask_cover: maskCover }),
      },
    };
  }

  /** The teacher backbone (DINO evaluates the teacher). */
  export(state: TrainState): ExportedEncoder {
    const { a, plan } = this;
    const { vit } = plan;
    const backbone = new Map<string, TensorToWrite>();
    for (const [name, shape] of dinoParamShapes({ vit, head: plan.head }))
      if (!name.startsWith('head.')) backbone.set(name, { shape, data: state.teacher.get(name) as Float32Array });
    // DINOv3: the RoPE periods are part of the architecture, kept in the file as the official checkpoints do.
    if (vit.ropePeriods)
      backbone.set('rope_embed.periods', { shape: [vit.ropePeriods.length], data: Float32Array.from(vit.ropePeriods) });
    return {
      tensors: backbone,
      metadata: { heads: String(vit.heads), trained_by: 'flaneur train.dino' },
      onnx: vitEncoderOnnx(vit, backbone, a.globalSize),
      name:
        a.name ??
        `${a.dora ? 'Dora' : 'DINO'} ${a.init.kind === 'scratch' ? a.init.preset : `from #${a.init.id}`} (job ${this.jobId})`,
    };
  }
}

export const trainDinoJob: JobHandler<Args, TrainCheckpoint> = {
  kind: 'train.dino',
  args: TrainDinoArgs,
  title: (a) =>
    `${a.neco ? 'Adapt' : 'Train'} ${a.init.kind === 'model' ? `model #${a.init.id}` : a.init.preset} with ${a.neco ? 'NeCo' : a.dora ? 'Dora' : 'DINO'}, ${a.steps} steps`,
  async run(ctx) {
    const { project, args: a } = ctx;
    const plan = planRun(project, a);
    const store = new FrameStore(project.cacheDir);
    const { frames, vit } = plan;
    const previews = [frames[0], frames[Math.floor(frames.length / 2)]].map((f) => {
      const g = f as TrainFrame;
      return store.image(g.media, g.idx, g.w, g.h);
    });
    const settings = {
      steps: a.steps,
      checkpointEvery: a.checkpointEvery,
      previewEvery: a.previewEvery,
      seed: a.seed,
      device: a.device,
      previews: { vit, frames: previews },
    };
    if (a.neco) {
      const row = a.init.kind === 'model' ? project.models.get(a.init.id) : undefined;
      const base =
        row && plan.loaded ? { id: row.id, name: row.name, sha256: row.sha256, weights: plan.loaded.weights } : null;
      return train(ctx, settings, new NecoObjective(a, plan, store, base, ctx.jobId, initParams));
    }
    return train(ctx, settings, new DinoObjective(a, plan, store, ctx.jobId));
  },
};
