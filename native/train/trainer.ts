/**
 * The one training loop of the `train.dino` job, whatever the objective (DINO, Dora, NeCo; ShareLock and UnCo to
 * come): the run's generator, state from the last checkpoint or fresh, the steps with their metrics in SQLite and in
 * the job's progress, checkpoints every N steps and when stopped (exact resume: state, generator, the objective's
 * extras), attention previews, the provider in the phase and the switch to the CPU when the GPU fails mid-run, and
 * the export with its provenance for the engine to register. The objective says only what is its own: the step
 * graph and its sessions, how a batch is drawn, what a step's metrics are called, and what is exported
 * (CONTEXT.md, "Objectives").
 *
 * A failure that is not the device's (a full disk, a folder that cannot be written, a bug) ends the job with its
 * reason; only a GPU failing in a step, a state read-back or a preview pass sends the run to the CPU.
 */
import fs from 'node:fs';
import path from 'node:path';
import { FlaneurError } from '../api/errors.js';
import { Rng } from '../base/rng.js';
import type { JobContext } from '../jobs/types.js';
import type { RgbLike } from '../models/preprocess.js';
import { encodeSafetensors, type TensorToWrite } from '../models/safetensors.js';
import { type ViTConfig, vitParamShapes } from '../models/vit.js';
import { buildViTOnnx } from '../models/vit-onnx.js';
import type { RuntimeSettings } from '../runtime/session.js';
import {
  type CheckpointExtras,
  type LoadedCheckpoint,
  loadCheckpoint,
  markPendingRegistration,
  type StepParams,
  saveCheckpoint,
} from './checkpoint.js';
import { TeacherAttention, type TeacherWeights } from './dora-clips.js';
import { TrainingDevice } from './gpu-fallback.js';
import { writePreviews } from './previews.js';
import type { TrainState } from './step-runner.js';

/** A training job's resume position: the JSON file of its last checkpoint (relative to the project) and its step. */
export interface TrainCheckpoint {
  file: string;
  step: number;
}

/** An objective's sessions on one provider (the step graph's, and any teacher passes its batches need). */
export interface ObjectiveSessions {
  /** The provider the step really runs on. */
  readonly provider: string;
  /** Brings the host copy of the state up to date (state kept in GPU memory between steps). */
  sync(state: TrainState): Promise<void>;
  /** The teacher's parameters as the preview pass takes them (host arrays or tensors on the same device). */
  teacherWeights(state: TrainState): TeacherWeights;
  release(): Promise<void>;
}

/** One step's numbers, named: what goes into train_log and into the job's progress. */
export interface StepOutcome {
  loss: number;
  gradNorm: number;
  lr: number;
  wd: number;
  ema: number;
  /** train_log's `teacherEntropy` column (DINO: the collapse monitor; NeCo: the queue's filled share). */
  monitor: number;
  /** Progress counters beside `loss` (e.g. teacher_entropy, grad_norm, mask_cover). */
  progress: Record<string, number>;
}

/** What a run exports: an encoder for the engine to register. */
export interface ExportedEncoder {
  /** The tensors of `export/encoder.safetensors`. */
  tensors: Map<string, TensorToWrite>;
  /** Its metadata (the trainer adds job, steps, provider and any GPU fallback). */
  metadata: Record<string, string>;
  /** The inference graph written as `export/encoder.onnx`. */
  onnx: Uint8Array;
  /** The export item's result beside the files: name, and the provenance the engine records (origin, baseModel). */
  name: string;
  origin?: string;
  baseModel?: number;
  /**
   * 'decoder' (UnCo's counting decoder): written as `export/decoder.safetensors` + `decoder.onnx`, listed from the
   * job's export item (`decoder`), not registered as a model. Default 'encoder'.
   */
  kind?: 'encoder' | 'decoder';
}

/** A training objective behind the one trainer. `B` is a step's batch, `S` its sessions. */
export interface Objective<S extends ObjectiveSessions = ObjectiveSessions, B = unknown> {
  /** Builds the step graph (called once, in the 'building the training graph' phase); checkpoints hold its state. */
  build(): StepParams;
  /** Opens the step's sessions (and any teacher passes) on a provider. */
  open(runtime: RuntimeSettings): Promise<S>;
  /** The step-0 state, drawing initial parameters from the run's generator. */
  initialState(rng: Rng): TrainState;
  /** Objective state saved beside the training state (NeCo: the queue), and restored from a checkpoint or reset. */
  extras?: { save(): CheckpointExtras; restore(from: LoadedCheckpoint | null): void };
  /** Draws one step's batch from the generator (may run the teacher on `sessions`, as Dora does). */
  draw(rng: Rng, state: TrainState, sessions: S): Promise<B>;
  /** Runs one step on the device (the state is updated in place) and names its metrics. */
  step(sessions: S, state: TrainState, batch: B): Promise<StepOutcome>;
  /** Images one step sees (for images/s). */
  readonly imagesPerStep: number;
  /** What the user can do when the loss is not finite (ends "The loss became NaN at step N; …"). */
  readonly divergedHint: string;
  /** The encoder to export from the final state (host copy, synced). */
  export(state: TrainState): ExportedEncoder;
  /** The objective's own previews (instead of the teacher's attention) written into `dir` at a preview step. */
  preview?(dir: string, sessions: S, state: TrainState): Promise<void>;
  /**
   * Validation after a step (host state synced): null when the step does not validate, else the held-out loss for
   * the training log and, to end the run early as finished, why (recorded in the export item and its metadata).
   */
  validate?(sessions: S, state: TrainState): Promise<{ loss: number; stop: string | null } | null>;
}

export interface TrainerSettings {
  steps: number;
  checkpointEvery: number;
  previewEvery: number;
  /** The run's seed: the generator starts at `seed * 2654435761 + 1`. */
  seed: number;
  /** The provider for this run (overrides the Device view's; falls back to the CPU). */
  device?: RuntimeSettings['provider'] | undefined;
  /** Teacher attention previews of these frames, for a ViT objective; null for none. */
  previews: { vit: ViTConfig; frames: RgbLike[] } | null;
}

/** The run's generator as DINO's initialisation draws from it (shared with `train.export`). */
export function runGenerator(seed: number): Rng {
  return new Rng(seed * 2654435761 + 1);
}

/** A write of the run's files that failed: the full disk as everywhere, a folder that cannot be written in words. */
function writeError(err: unknown, what: string): unknown {
  const e = err as NodeJS.ErrnoException;
  const notFolder = e?.code === 'ENOTDIR' || e?.code === 'EEXIST';
  if (notFolder || e?.code === 'EACCES' || e?.code === 'EPERM' || e?.code === 'EROFS' || e?.code === 'EISDIR')
    return new FlaneurError(
      'IO_ERROR',
      `Flaneur cannot write the ${what} (${e.path ?? 'the run folder'}: ${notFolder ? 'not a folder' : 'not writable'}). Make the project's checkpoints folder writable, then resume the job: the steps before the last checkpoint are kept.`,
      { details: e.message, cause: err },
    );
  return err;
}

/** A ViT backbone's inference graph for an exported encoder (square inputs of `size`; CLS and patch tokens). */
export function vitEncoderOnnx(vit: ViTConfig, backbone: ReadonlyMap<string, TensorToWrite>, size: number): Uint8Array {
  const weights = new Map([...backbone].map(([k, v]) => [k, v.data]));
  return buildViTOnnx({ config: vit, weights }, { height: size, width: size, outputs: { cls: true, patches: true } });
}

/**
 * Drop-path keep masks [depth, rows] from the generator: the drop rate grows linearly over depth to `rate`, as DINO's
 * VisionTransformer; a kept row is scaled by 1 / (1 - p).
 */
export function dropPathMask(rng: Rng, depth: number, rate: number, rows: number): Float32Array {
  const out = new Float32Array(depth * rows);
  for (let d = 0; d < depth; d++) {
    const p = depth > 1 ? (rate * d) / (depth - 1) : rate;
    for (let r = 0; r < rows; r++) out[d * rows + r] = rng.next() < p ? 0 : 1 / (1 - p);
  }
  return out;
}

const PREVIEW = 224;

/** Runs `objective` as the job `ctx`: the steps, checkpoints, previews, device fallback and export. */
export async function train<S extends ObjectiveSessions, B>(
  ctx: JobContext<unknown, TrainCheckpoint>,
  settings: TrainerSettings,
  objective: Objective<S, B>,
): Promise<void> {
  const { project } = ctx;
  const { steps } = settings;
  ctx.phase('building the training graph', { unit: 'steps', total: steps });
  const graph = objective.build();
  const pv = settings.previewEvery > 0 ? settings.previews : null;
  const previewSize = pv ? PREVIEW - (PREVIEW % pv.vit.patchSize) : 0;
  const backboneShapes = pv ? vitParamShapes(pv.vit) : new Map<string, number[]>();
  // The objective's sessions and the preview pass, on one provider (the run's, or the CPU after a GPU failure).
  const open = async (runtime: RuntimeSettings) => ({
    step: await objective.open(runtime),
    preview: pv ? await TeacherAttention.create(pv.vit, previewSize, runtime, undefined, false) : null,
  });
  const close = async (s: Awaited<ReturnType<typeof open>>) => {
    await s.step.release();
    await s.preview?.release();
  };
  let sessions = await open(settings.device ? { ...ctx.runtime, provider: settings.device } : ctx.runtime);
  const dir = path.join(project.checkpointsDir, `train-${ctx.jobId}`);

  // State: from a checkpoint, or fresh.
  const begin = (from: TrainCheckpoint | null): { state: TrainState; rng: Rng } => {
    if (from?.file && fs.existsSync(path.join(project.dir, from.file))) {
      const ck = loadCheckpoint(path.join(project.dir, from.file), graph);
      objective.extras?.restore(ck);
      project.trainLog.truncateAfter(ctx.jobId, ck.state.step);
      return { state: ck.state, rng: new Rng(ck.meta.rngState) };
    }
    const rng = runGenerator(settings.seed);
    const state = objective.initialState(rng);
    objective.extras?.restore(null);
    project.trainLog.truncateAfter(ctx.jobId, 0);
    return { state, rng };
  };
  let { state, rng } = begin(ctx.checkpoint);

  let last: TrainCheckpoint | null = ctx.checkpoint;
  const save = () => {
    let file: string;
    try {
      file = saveCheckpoint(dir, graph, state, rng.state, objective.extras?.save());
    } catch (err) {
      throw writeError(err, `checkpoint of step ${state.step}`);
    }
    last = { file: path.relative(project.dir, file), step: state.step };
    ctx.commit([], last);
  };
  const preview = async () => {
    if (objective.preview && settings.previewEvery > 0) {
      try {
        await objective.preview(dir, sessions.step, state);
      } catch (err) {
        throw writeError(err, `preview of step ${state.step}`);
      }
    }
    if (!sessions.preview || !pv) return;
    try {
      await writePreviews(
        dir,
        state.step,
        pv.frames,
        pv.vit,
        previewSize,
        sessions.preview,
        sessions.step.teacherWeights(state),
        backboneShapes,
      );
    } catch (err) {
      throw writeError(err, `attention preview of step ${state.step}`);
    }
  };
  // The provider the step really runs on, in the phase; a GPU that fails mid-job (device lost, out of memory): the
  // job goes on on the CPU from its last checkpoint (or from the start).
  const device = new TrainingDevice(ctx, steps, {
    provider: () => sessions.step.provider,
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
  let stopped: { step: number; reason: string } | null = null;
  try {
    while (state.step < steps && !stopped) {
      ctx.throwIfAborted();
      const t0 = performance.now();
      const batch = await objective.draw(rng, state, sessions.step);
      let m: StepOutcome;
      try {
        m = await objective.step(sessions.step, state, batch);
      } catch (err) {
        await device.onFailure(err);
        continue;
      }
      if (!Number.isFinite(m.loss))
        throw new FlaneurError(
          'INTERNAL',
          `The loss became ${m.loss} at step ${state.step}; ${objective.divergedHint}.`,
        );
      let validation: Awaited<ReturnType<NonNullable<typeof objective.validate>>> = null;
      if (objective.validate) {
        await sessions.step.sync(state);
        validation = await objective.validate(sessions.step, state);
        if (validation?.stop) stopped = { step: state.step, reason: validation.stop };
      }
      project.trainLog.add(ctx.jobId, {
        ...(validation ? { valLoss: validation.loss } : {}),
        step: state.step,
        loss: m.loss,
        lr: m.lr,
        wd: m.wd,
        ema: m.ema,
        gradNorm: m.gradNorm,
        teacherEntropy: m.monitor,
        imgsPerS: objective.imagesPerStep / ((performance.now() - t0) / 1000),
      });
      ctx.progress(state.step, steps, {
        loss: m.loss,
        ...m.progress,
        ...(validation ? { val_loss: validation.loss } : {}),
      });
      const checkpointDue = state.step % settings.checkpointEvery === 0 || state.step === steps || stopped !== null;
      try {
        if (settings.previewEvery > 0 && (state.step % settings.previewEvery === 0 || state.step === steps))
          await preview();
        if (checkpointDue) await sessions.step.sync(state);
      } catch (err) {
        await device.onFailure(err);
        continue;
      }
      if (checkpointDue) save();
    }
    await sessions.step.sync(state);
  } catch (err) {
    // Stopped (cancel or shutdown) between steps: keep the exact position so a resume loses nothing.
    if (ctx.signal.aborted && state.step > (last?.step ?? -1)) {
      await sessions.step.sync(state);
      save();
    }
    throw err;
  } finally {
    await close(sessions);
  }

  const out = path.join(dir, 'export');
  const exported = objective.export(state);
  const kind = exported.kind ?? 'encoder';
  const encoder = path.join(out, `${kind}.safetensors`);
  const onnx = path.join(out, `${kind}.onnx`);
  try {
    fs.mkdirSync(out, { recursive: true });
    fs.writeFileSync(
      encoder,
      encodeSafetensors(exported.tensors, {
        ...exported.metadata,
        job: String(ctx.jobId),
        steps: String(steps),
        provider: sessions.step.provider,
        ...(stopped ? { stopped_early: JSON.stringify(stopped) } : {}),
        ...(device.fallback ? { fallback: JSON.stringify(device.fallback) } : {}),
      }),
    );
    fs.writeFileSync(onnx, exported.onnx);
    if (kind === 'encoder') markPendingRegistration(encoder);
  } catch (err) {
    throw writeError(err, `exported ${kind}`);
  }
  const result = {
    [kind]: path.relative(project.dir, encoder),
    onnx: path.relative(project.dir, onnx),
    name: exported.name,
    ...(exported.origin === undefined ? {} : { origin: exported.origin }),
    ...(exported.baseModel === undefined ? {} : { baseModel: exported.baseModel }),
    ...(stopped ? { stopped } : {}),
  };
  ctx.commit([{ key: 'export', status: 'ok', result }], last ?? { file: '', step: state.step });
}
