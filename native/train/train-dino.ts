/**
 * Job: DINO self-distillation on the project's sampled frames. Multi-crop augmentation from a seeded generator,
 * the step graph on ONNX Runtime, metrics per step in SQLite, checkpoints every N steps and whenever the job is
 * stopped, exact resume (state, generator, schedules), and at the end the teacher exported as an encoder
 * (.safetensors in official names + an inference ONNX) for the engine to register.
 */
import fs from 'node:fs';
import path from 'node:path';
import { TrainDinoArgs } from '../api/contract.js';
import { FlaneurError } from '../api/errors.js';
import { cosineSchedule } from '../graph/optim.js';
import type { JobHandler } from '../jobs/types.js';
import { FrameStore } from '../media/frame-store.js';
import type { DinoHeadConfig } from '../models/dino-head.js';
import { importViTFile } from '../models/import-vit.js';
import { encodeSafetensors, type TensorToWrite } from '../models/safetensors.js';
import { presetConfig, type ViTConfig, vitParamShapes } from '../models/vit.js';
import { buildViTOnnx } from '../models/vit-onnx.js';
import type { MediaRow } from '../store/media-repo.js';
import type { Project } from '../store/project.js';
import { augmentInto, DINO_JITTER } from './augment.js';
import { loadCheckpoint, markPendingRegistration, saveCheckpoint } from './checkpoint.js';
import { buildDinoStep, dinoParamShapes } from './dino-step.js';
import { type ClipSource, doraBatch, TeacherAttention } from './dora-clips.js';
import { TrainingDevice } from './gpu-fallback.js';
import { writePreviews } from './previews.js';
import { Rng } from './rng.js';
import { initialState, StepRunner, type TrainState } from './step-runner.js';
import { runNeco } from './train-neco.js';

type Args = typeof TrainDinoArgs._zod.output;

interface TrainCheckpoint {
  /** The JSON file of the last checkpoint (relative to the project). */
  file: string;
  step: number;
}

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
  const rng = new Rng(a.seed * 2654435761 + 1);
  const params = initParams(dinoParamShapes({ vit, head }), rng);
  if (loaded) for (const [k, v] of loaded.weights) params.set(k, v);
  return { params, rng };
}

export const trainDinoJob: JobHandler<Args, TrainCheckpoint> = {
  kind: 'train.dino',
  args: TrainDinoArgs,
  title: (a) =>
    `${a.neco ? 'Adapt' : 'Train'} ${a.init.kind === 'model' ? `model #${a.init.id}` : a.init.preset} with ${a.neco ? 'NeCo' : a.dora ? 'Dora' : 'DINO'}, ${a.steps} steps`,
  async run(ctx) {
    const { project, args } = ctx;
    const a = args;

    const { media, frames, loaded, vit, head } = planRun(project, a);
    const store = new FrameStore(project.cacheDir);

    if (a.neco) {
      const row = a.init.kind === 'model' ? project.models.get(a.init.id) : undefined;
      return runNeco(ctx, a, {
        frames,
        mediaCount: media.length,
        store,
        vit,
        base: row && loaded ? { id: row.id, name: row.name, sha256: row.sha256, weights: loaded.weights } : null,
        initParams,
      });
    }
    const dora = a.dora;
    const G = dora ? Math.min(dora.objects, vit.heads) : 2;
    ctx.phase('building the training graph', { unit: 'steps', total: a.steps });
    const L = a.localCrops;
    const graph = buildDinoStep({
      vit,
      head,
      batch: a.batch,
      globalSize: a.globalSize,
      globalCrops: G,
      dora: Boolean(dora),
      localSize: a.localSize,
      localCrops: L,
      dropPath: a.dropPath > 0,
      koleo: a.koleo,
      freezeLastLayer: a.freezeLastLayerSteps > 0,
    });
    const shapes = {
      globals: [G * a.batch, 3, a.globalSize, a.globalSize],
      locals: L > 0 ? [L * a.batch, 3, a.localSize, a.localSize] : null,
      dpGlobal: a.dropPath > 0 ? [vit.depth, G * a.batch] : null,
      dpLocal: a.dropPath > 0 && L > 0 ? [vit.depth, L * a.batch] : null,
    };
    const PREVIEW_SIZE = 224 - (224 % vit.patchSize);
    // The step graph's session and the teacher passes, on one provider (the run's device, or the CPU after a GPU
    // failure).
    const open = async (runtime: typeof ctx.runtime) => ({
      runner: await StepRunner.create(graph, shapes, runtime),
      // Dora: the teacher's one pass per step gives the attention for the masks and the logits for the loss.
      attention: dora ? await TeacherAttention.create(vit, a.globalSize, runtime, head, false) : null,
      previewAttention:
        a.previewEvery > 0 ? await TeacherAttention.create(vit, PREVIEW_SIZE, runtime, undefined, false) : null,
    });
    const close = async (s: Awaited<ReturnType<typeof open>>) => {
      await s.runner.release();
      await s.attention?.release();
      await s.previewAttention?.release();
    };
    let sessions = await open(a.device ? { ...ctx.runtime, provider: a.device } : ctx.runtime);
    const previewFrames = [frames[0], frames[Math.floor(frames.length / 2)]].map((f) => {
      const g = f as (typeof frames)[number];
      return store.image(g.media, g.idx, g.w, g.h);
    });
    const backboneShapes = vitParamShapes(vit);
    const sources: ClipSource[] = media.map((m) => {
      const mm = m as NonNullable<typeof m>;
      const w = mm.frameWidth as number;
      const h = mm.frameHeight as number;
      return {
        frames: mm.frameCount,
        read: (i: number) => store.image(mm.id, i, w, h),
      };
    });
    const dir = path.join(project.checkpointsDir, `train-${ctx.jobId}`);

    // State: from a checkpoint, or fresh.
    const begin = (from: TrainCheckpoint | null): { state: TrainState; rng: Rng } => {
      if (from?.file && fs.existsSync(path.join(project.dir, from.file))) {
        const ck = loadCheckpoint(path.join(project.dir, from.file), graph);
        project.trainLog.truncateAfter(ctx.jobId, ck.state.step);
        return { state: ck.state, rng: new Rng(ck.meta.rngState) };
      }
      const { params, rng } = startingParams(a, vit, head, loaded);
      project.trainLog.truncateAfter(ctx.jobId, 0);
      return { state: initialState(graph, params), rng };
    };
    let { state, rng } = begin(ctx.checkpoint);

    const lr = cosineSchedule((a.lr * (2 * a.batch)) / 256, a.minLr, a.steps, Math.min(a.warmupSteps, a.steps));
    const wd = cosineSchedule(a.weightDecay, a.weightDecayEnd, a.steps);
    const ema = cosineSchedule(a.emaStart, a.emaEnd, a.steps);
    const mean = vit.mean;
    const std = vit.std;
    const dropMask = (rows: number): Float32Array => {
      // Linearly increasing drop rate over depth, as DINO's VisionTransformer.
      const out = new Float32Array(vit.depth * rows);
      for (let d = 0; d < vit.depth; d++) {
        const p = vit.depth > 1 ? (a.dropPath * d) / (vit.depth - 1) : a.dropPath;
        for (let r = 0; r < rows; r++) out[d * rows + r] = rng.next() < p ? 0 : 1 / (1 - p);
      }
      return out;
    };

    let last: TrainCheckpoint | null = ctx.checkpoint;
    const checkpoint = async () => {
      await sessions.runner.sync(state);
      const file = saveCheckpoint(dir, graph, state, rng.state);
      last = { file: path.relative(project.dir, file), step: state.step };
      ctx.commit([], last);
    };

    const preview = async () => {
      const { previewAttention, runner } = sessions;
      if (previewAttention)
        await writePreviews(
          dir,
          state.step,
          previewFrames,
          vit,
          PREVIEW_SIZE,
          previewAttention,
          runner.teacherWeights(state),
          backboneShapes,
        );
    };
    // The provider the step really runs on, in the phase; a GPU that fails mid-job (device lost, out of memory): the
    // job goes on on the CPU from its last checkpoint (or from the start).
    const device = new TrainingDevice(ctx, a.steps, {
      provider: () => sessions.runner.provider,
      step: () => state.step,
      last: () => last,
      resumeOnCpu: async () => {
        await close(sessions).catch(() => undefined);
        sessions = await open({ ...ctx.runtime, provider: 'cpu' });
        ({ state, rng } = begin(last));
      },
    });
    device.showPhase();
    if (state.step === 0) await preview();
    const gPlane = 3 * a.globalSize * a.globalSize;
    const lPlane = 3 * a.localSize * a.localSize;
    try {
      while (state.step < a.steps) {
        ctx.throwIfAborted();
        const { runner, attention } = sessions;
        const t0 = performance.now();
        let globals: Float32Array;
        let locals: Float32Array | undefined;
        let teacherLogits: Float32Array | undefined;
        let maskCover: number | undefined;
        if (dora && attention) {
          const batch = await doraBatch(
            sources,
            a.batch / dora.framesPerClip,
            a.globalSize,
            { size: a.localSize, scale: [0.05, 0.4], count: L },
            dora,
            { mean, std, patch: vit.patchSize, heads: vit.heads },
            rng,
            (views, count) => attention.run(views, count, runner.teacherWeights(state), graph.params),
          );
          globals = batch.masked;
          locals = batch.locals;
          teacherLogits = batch.teacherLogits;
          maskCover = batch.maskCover;
        } else {
          globals = new Float32Array(2 * a.batch * gPlane);
          locals = L > 0 ? new Float32Array(L * a.batch * lPlane) : undefined;
          for (let i = 0; i < a.batch; i++) {
            const f = frames[rng.int(frames.length)] as (typeof frames)[number];
            const img = store.image(f.media, f.idx, f.w, f.h);
            for (let g = 0; g < 2; g++)
              augmentInto(
                img,
                { size: a.globalSize, scale: [0.4, 1] },
                DINO_JITTER,
                0.2,
                mean,
                std,
                rng,
                globals,
                (g * a.batch + i) * gPlane,
              );
            for (let l = 0; l < L; l++)
              augmentInto(
                img,
                { size: a.localSize, scale: [0.05, 0.4] },
                DINO_JITTER,
                0.2,
                mean,
                std,
                rng,
                locals as Float32Array,
                (l * a.batch + i) * lPlane,
              );
          }
        }
        const step = state.step;
        const s = {
          lr: lr(step),
          wd: wd(step),
          ema: ema(step),
          center_momentum: a.centerMomentum,
          student_temp: a.studentTemp,
          teacher_temp: a.teacherTemp,
          max_norm: a.clip,
          // DINO's freeze_last_layer, in the step graph.
          freeze_last: step < a.freezeLastLayerSteps ? 1 : 0,
        };
        let m: Awaited<ReturnType<StepRunner['step']>>;
        try {
          m = await runner.step(
            state,
            {
              globals,
              ...(teacherLogits ? { teacherLogits } : {}),
              ...(locals ? { locals } : {}),
              ...(shapes.dpGlobal ? { dpGlobal: dropMask(G * a.batch) } : {}),
              ...(shapes.dpLocal ? { dpLocal: dropMask(L * a.batch) } : {}),
            },
            s,
          );
        } catch (err) {
          await device.onFailure(err);
          continue;
        }
        if (!Number.isFinite(m.loss))
          throw new FlaneurError(
            'INTERNAL',
            `The loss became ${m.loss} at step ${state.step}; lower the learning rate.`,
          );
        const imgsPerS = ((G + L) * a.batch) / ((performance.now() - t0) / 1000);
        project.trainLog.add(ctx.jobId, {
          step: state.step,
          loss: m.loss,
          lr: s.lr,
          wd: s.wd,
          ema: s.ema,
          gradNorm: m.gradNorm,
          teacherEntropy: m.teacherEntropy,
          imgsPerS,
        });
        ctx.progress(state.step, a.steps, {
          loss: m.loss,
          teacher_entropy: m.teacherEntropy,
          grad_norm: m.gradNorm,
          ...(maskCover === undefined ? {} : { mask_cover: maskCover }),
        });
        try {
          if (a.previewEvery > 0 && (state.step % a.previewEvery === 0 || state.step === a.steps)) await preview();
          if (state.step % a.checkpointEvery === 0 || state.step === a.steps) await checkpoint();
        } catch (err) {
          await device.onFailure(err);
        }
      }
      await sessions.runner.sync(state);
    } catch (err) {
      // Stopped (cancel or shutdown) between steps: keep the exact position so a resume loses nothing.
      if (ctx.signal.aborted && state.step > (last?.step ?? -1)) await checkpoint();
      throw err;
    } finally {
      await close(sessions);
    }

    // Export the teacher backbone (DINO evaluates the teacher).
    const out = path.join(dir, 'export');
    fs.mkdirSync(out, { recursive: true });
    const backbone = new Map<string, TensorToWrite>();
    const vitShapes = dinoParamShapes({ vit, head });
    for (const [name, shape] of vitShapes)
      if (!name.startsWith('head.')) backbone.set(name, { shape, data: state.teacher.get(name) as Float32Array });
    // DINOv3: the RoPE periods are part of the architecture, kept in the file as the official checkpoints do.
    if (vit.ropePeriods) {
      backbone.set('rope_embed.periods', { shape: [vit.ropePeriods.length], data: Float32Array.from(vit.ropePeriods) });
    }
    const encoder = path.join(out, 'encoder.safetensors');
    fs.writeFileSync(
      encoder,
      encodeSafetensors(backbone, {
        heads: String(vit.heads),
        trained_by: 'flaneur train.dino',
        job: String(ctx.jobId),
        steps: String(a.steps),
        provider: sessions.runner.provider,
        ...(device.fallback ? { fallback: JSON.stringify(device.fallback) } : {}),
      }),
    );
    const weights = new Map([...backbone].map(([k, v]) => [k, v.data]));
    fs.writeFileSync(
      path.join(out, 'encoder.onnx'),
      buildViTOnnx(
        { config: vit, weights },
        { height: a.globalSize, width: a.globalSize, outputs: { cls: true, patches: true } },
      ),
    );
    const name =
      a.name ??
      `${a.dora ? 'Dora' : 'DINO'} ${a.init.kind === 'scratch' ? a.init.preset : `from #${a.init.id}`} (job ${ctx.jobId})`;
    const result = {
      encoder: path.relative(project.dir, encoder),
      onnx: path.relative(project.dir, path.join(out, 'encoder.onnx')),
      name,
    };
    markPendingRegistration(encoder);
    ctx.commit([{ key: 'export', status: 'ok', result }], last ?? { file: '', step: state.step });
  },
};
