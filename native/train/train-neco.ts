/**
 * The NeCo objective of the `train.dino` job (args.neco): adapts an encoder's patch features to the project's frames
 * with patch neighbour consistency (vpariza/NeCo). Same machinery as DINO and Dora: seeded crops, the step graph on
 * ONNX Runtime, per-step metrics in SQLite, checkpoints (with the queue) every N steps and when stopped, exact
 * resume, teacher attention previews, and at the end the encoder exported with its provenance for the engine to
 * register.
 *
 * Where we differ from the official code (say so in the closing note too):
 * - the exported encoder is the student backbone (the official validation and checkpoints use `self.model`, the
 *   student) — DINO runs export the teacher;
 * - random generator: our seeded mulberry32 for crops, jitter, queue pushes and draws (torch's in the official);
 * - crops come from the project's sampled frames (one frame per image), boxes with the official overlap rule; a crop
 *   that cannot meet it in 100 tries is centred on the first global crop instead of looping forever;
 * - learning rates follow a cosine from the base to 0 over the run's steps (CosineAnnealingLR with final_lr 0).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { TrainDinoArgs } from '../api/contract.js';
import { FlaneurError } from '../api/errors.js';
import { cosineSchedule } from '../graph/optim.js';
import type { JobContext } from '../jobs/types.js';
import type { FrameStore } from '../media/frame-store.js';
import { type NecoHeadConfig, necoPairs } from '../models/neco.js';
import { encodeSafetensors, type TensorToWrite } from '../models/safetensors.js';
import { type ViTConfig, vitParamShapes } from '../models/vit.js';
import { buildViTOnnx } from '../models/vit-onnx.js';
import { loadCheckpoint, markPendingRegistration, saveCheckpoint } from './checkpoint.js';
import { TeacherAttention } from './dora-clips.js';
import { TrainingDevice } from './gpu-fallback.js';
import { type Box, NecoQueue, necoViewInto, relativeBoxes, roiBatch, sampleNecoBoxes } from './neco-data.js';
import { buildNecoStep, type NecoStepConfig, NecoStepRunner, necoParamShapes } from './neco-step.js';
import { writePreviews } from './previews.js';
import { Rng } from './rng.js';
import { initialState, type TrainState } from './step-runner.js';

type Args = TrainDinoArgs;

export interface NecoCheckpoint {
  file: string;
  step: number;
}

export interface NecoInputs {
  frames: { media: number; idx: number; w: number; h: number }[];
  mediaCount: number;
  store: FrameStore;
  vit: ViTConfig;
  /** The registered model it starts from (its weights go into student and teacher). */
  base: { id: number; name: string; sha256: string; weights: Map<string, Float32Array> } | null;
  initParams: (shapes: Map<string, number[]>, rng: Rng) => Map<string, Float32Array>;
}

/** The multiple of the patch size nearest to 98 (NeCo's local crop: 98 = 7 x 14 for DINOv2, 96 for patch 16). */
export function necoLocalSize(patch: number): number {
  return Math.max(1, Math.round(98 / patch)) * patch;
}

export async function runNeco(ctx: JobContext<Args, NecoCheckpoint>, a: Args, d: NecoInputs): Promise<void> {
  const { project } = ctx;
  const n = a.neco;
  if (!n) throw new Error('runNeco without NeCo settings');
  const vit = d.vit;
  const P = vit.patchSize;
  const localSize = n.localSize ?? necoLocalSize(P);
  if (a.globalSize % P || localSize % P)
    throw new FlaneurError(
      'INVALID_ARGUMENT',
      `Crop sizes must be multiples of the patch size ${P} (global ${a.globalSize}, local ${localSize}).`,
      { field: 'globalSize' },
    );
  const head: NecoHeadConfig = { inDim: vit.dim, hiddenDim: n.headHidden, outDim: n.outDim, layers: 3 };
  const G = 2;
  const L = n.localCrops;
  const B = a.batch;
  if (n.queue < B * n.aligned * n.aligned)
    throw new FlaneurError(
      'INVALID_ARGUMENT',
      `The queue (${n.queue}) must hold at least batch × ${n.aligned * n.aligned} patches (${B * n.aligned * n.aligned}); raise the queue or lower the batch.`,
      { field: 'neco' },
    );
  const config: NecoStepConfig = {
    vit,
    head,
    batch: B,
    globalSize: a.globalSize,
    globalCrops: G,
    localSize,
    localCrops: L,
    aligned: n.aligned,
    steepness: { student: n.steepness, teacher: n.steepness },
    dropPath: a.dropPath > 0,
  };
  ctx.phase('building the training graph', { unit: 'steps', total: a.steps });
  const graph = buildNecoStep(config);
  const PREVIEW_SIZE = 224 - (224 % P);
  // The step's session and the preview pass, on one provider (the run's device, or the CPU after a GPU failure).
  const open = async (runtime: typeof ctx.runtime) => ({
    runner: await NecoStepRunner.create(graph, config, runtime),
    previewAttention:
      a.previewEvery > 0 ? await TeacherAttention.create(vit, PREVIEW_SIZE, runtime, undefined, false) : null,
  });
  const close = async (s: Awaited<ReturnType<typeof open>>) => {
    await s.runner.release();
    await s.previewAttention?.release();
  };
  let sessions = await open(a.device ? { ...ctx.runtime, provider: a.device } : ctx.runtime);
  const previewFrames = [d.frames[0], d.frames[Math.floor(d.frames.length / 2)]].map((f) => {
    const g = f as (typeof d.frames)[number];
    return d.store.image(g.media, g.idx, g.w, g.h);
  });
  const backboneShapes = vitParamShapes(vit);
  const dir = path.join(project.checkpointsDir, `train-${ctx.jobId}`);
  const pairs = necoPairs(G, L);
  const Ng = graph.dims.globalPatches;
  const queue = new NecoQueue(G, n.queue, n.outDim);

  // State: from a checkpoint (with the queue), or fresh.
  const begin = (from: NecoCheckpoint | null): { state: TrainState; rng: Rng } => {
    if (from?.file && fs.existsSync(path.join(project.dir, from.file))) {
      const ck = loadCheckpoint(path.join(project.dir, from.file), graph);
      for (let g = 0; g < G; g++) queue.rows[g]?.set(ck.extra(`queue.${g}`));
      queue.entries = ck.meta.counters?.queueEntries ?? 0;
      project.trainLog.truncateAfter(ctx.jobId, ck.state.step);
      return { state: ck.state, rng: new Rng(ck.meta.rngState) };
    }
    const rng = new Rng(a.seed * 2654435761 + 1);
    const params = d.initParams(necoParamShapes({ vit, head }), rng);
    if (d.base) for (const [k, v] of d.base.weights) if (params.has(k)) params.set(k, v);
    for (const q of queue.rows) q.fill(0);
    queue.entries = 0;
    project.trainLog.truncateAfter(ctx.jobId, 0);
    // As the official run: the pretrained weights go into the student and the teacher; the heads start equal too.
    return { state: initialState(graph, params), rng };
  };
  let { state, rng } = begin(ctx.checkpoint);

  const lr = cosineSchedule(n.lrBackbone, 0, a.steps);
  const lrHead = cosineSchedule(n.lrHead, 0, a.steps);
  const wd = cosineSchedule(n.weightDecay, n.weightDecayEnd, a.steps);
  const ema = cosineSchedule(n.emaStart, n.emaEnd, a.steps);
  const dropMask = (rows: number): Float32Array => {
    const out = new Float32Array(vit.depth * rows);
    for (let k = 0; k < vit.depth; k++) {
      const p = vit.depth > 1 ? (a.dropPath * k) / (vit.depth - 1) : a.dropPath;
      for (let r = 0; r < rows; r++) out[k * rows + r] = rng.next() < p ? 0 : 1 / (1 - p);
    }
    return out;
  };

  let last: NecoCheckpoint | null = ctx.checkpoint;
  const checkpoint = async () => {
    await sessions.runner.sync(state);
    const tensors = new Map<string, TensorToWrite>(
      queue.rows.map((q, g) => [`queue.${g}`, { shape: [n.queue, n.outDim], data: q }]),
    );
    const file = saveCheckpoint(dir, graph, state, rng.state, { tensors, counters: { queueEntries: queue.entries } });
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

  // The provider in the phase; a GPU that fails mid-job: the run goes on on the CPU from its last checkpoint (state,
  // generator and queue).
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
  const lPlane = 3 * localSize * localSize;
  const specs = [
    { size: a.globalSize, scale: n.globalScale, count: G },
    { size: localSize, scale: n.localScale, count: L },
  ];
  const sizes = [...Array(G).fill(a.globalSize), ...Array(L).fill(localSize)] as number[];
  try {
    while (state.step < a.steps) {
      ctx.throwIfAborted();
      const t0 = performance.now();
      const globals = new Float32Array(G * B * gPlane);
      const locals = L > 0 ? new Float32Array(L * B * lPlane) : undefined;
      const perImage: { gc: Box[][]; all: Box[][] }[] = [];
      for (let i = 0; i < B; i++) {
        const f = d.frames[rng.int(d.frames.length)] as (typeof d.frames)[number];
        const img = d.store.image(f.media, f.idx, f.w, f.h);
        const boxes = sampleNecoBoxes(img.width, img.height, specs, rng);
        boxes.forEach((box, v) => {
          if (v < G) necoViewInto(img, box, a.globalSize, vit.mean, vit.std, rng, globals, (v * B + i) * gPlane);
          else
            necoViewInto(
              img,
              box,
              localSize,
              vit.mean,
              vit.std,
              rng,
              locals as Float32Array,
              ((v - G) * B + i) * lPlane,
            );
        });
        perImage.push(relativeBoxes(boxes, sizes, G));
      }
      const roi = roiBatch(perImage, pairs, {
        patch: P,
        globalGrid: a.globalSize / P,
        localGrid: localSize / P,
        aligned: n.aligned,
      });
      const plan = queue.plan(rng, B, Ng, pairs, n.aligned * n.aligned);
      const refs = queue.references(plan, pairs, B, Ng);
      const step = state.step;
      const s = { lr: lr(step), lrHead: lrHead(step), wd: wd(step), ema: ema(step) };
      let m: Awaited<ReturnType<NecoStepRunner['step']>>;
      try {
        m = await sessions.runner.step(
          state,
          {
            globals,
            ...(locals ? { locals } : {}),
            ...roi,
            ...refs,
            ...(config.dropPath ? { dpGlobal: dropMask(G * B), ...(L > 0 ? { dpLocal: dropMask(L * B) } : {}) } : {}),
          },
          s,
        );
      } catch (err) {
        await device.onFailure(err);
        continue;
      }
      queue.push(plan, m.teacherPatches, B, Ng);
      if (!Number.isFinite(m.loss))
        throw new FlaneurError(
          'INTERNAL',
          `The NeCo loss became ${m.loss} at step ${state.step}; lower the learning rates or the steepness.`,
        );
      const imgsPerS = ((G + L) * B) / ((performance.now() - t0) / 1000);
      project.trainLog.add(ctx.jobId, {
        step: state.step,
        loss: m.loss,
        lr: s.lr,
        wd: s.wd,
        ema: s.ema,
        gradNorm: m.gradNorm,
        // NeCo has no teacher distribution; the column holds the filled share of the queue instead.
        teacherEntropy: queue.entries / n.queue,
        imgsPerS,
      });
      ctx.progress(state.step, a.steps, { loss: m.loss, grad_norm: m.gradNorm, queue_filled: queue.entries / n.queue });
      try {
        if (a.previewEvery > 0 && (state.step % a.previewEvery === 0 || state.step === a.steps)) await preview();
        if (state.step % a.checkpointEvery === 0 || state.step === a.steps) await checkpoint();
      } catch (err) {
        await device.onFailure(err);
      }
    }
    await sessions.runner.sync(state);
  } catch (err) {
    if (ctx.signal.aborted && state.step > (last?.step ?? -1)) await checkpoint();
    throw err;
  } finally {
    await close(sessions);
  }

  // Export the student backbone (what the official code evaluates), with its provenance.
  const out = path.join(dir, 'export');
  fs.mkdirSync(out, { recursive: true });
  const backbone = new Map<string, TensorToWrite>();
  for (const [name, shape] of backboneShapes)
    backbone.set(name, { shape, data: state.params.get(name) as Float32Array });
  const origin = `NeCo adaptation of ${d.base ? `model #${d.base.id} "${d.base.name}" (sha256 ${d.base.sha256.slice(0, 12)})` : 'a randomly initialised ViT'} on ${d.frames.length} frames of ${d.mediaCount} media item${d.mediaCount === 1 ? '' : 's'}, ${a.steps} steps of ${B} image${B === 1 ? '' : 's'} (job ${ctx.jobId}).`;
  const encoder = path.join(out, 'encoder.safetensors');
  fs.writeFileSync(
    encoder,
    encodeSafetensors(backbone, {
      heads: String(vit.heads),
      trained_by: 'flaneur train.dino (neco)',
      job: String(ctx.jobId),
      steps: String(a.steps),
      frames: String(d.frames.length),
      base_model: d.base ? `${d.base.name} (sha256 ${d.base.sha256})` : 'random initialisation',
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
  const name = a.name ?? `NeCo ${d.base ? `from ${d.base.name}` : 'from scratch'} (job ${ctx.jobId})`;
  const result = {
    encoder: path.relative(project.dir, encoder),
    onnx: path.relative(project.dir, path.join(out, 'encoder.onnx')),
    name,
    origin,
    ...(d.base ? { baseModel: d.base.id } : {}),
  };
  markPendingRegistration(encoder);
  ctx.commit([{ key: 'export', status: 'ok', result }], last ?? { file: '', step: state.step });
}
