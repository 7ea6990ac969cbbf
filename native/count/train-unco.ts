/**
 * UnCo as an objective of the one trainer (train/trainer.ts): the `train.unco` job trains the counting decoder
 * (unco-step.ts) on Self-Collages of the project's own frames with the frozen backbone of a registered model; the
 * known N of each collage is the only signal. The trainer does the rest as for DINO, Dora and NeCo: progress and
 * train_log, checkpoints every N steps and when stopped (exact resume), previews (here: a collage, its target and
 * the prediction), the provider in the phase and the GPU→CPU fallback, and the export (`export/decoder.*`, the
 * job's `export` item, which Count lists as a trained counter: unco-counter.ts).
 *
 * Every step: `batch` collages drawn from the run's generator (collage.ts), their patch features from the frozen
 * backbone, the exemplars' features (unco-data.ts), one step of the decoder graph. Every `evalEvery` steps (and at
 * the first and last): the MAE on `evalCollages` held-out collages drawn from a generator of their own (never
 * trained on), beside always answering their mean count; it is train_log's monitor column and a progress counter.
 *
 * Where we differ from the official recipe (lukasknobel/SelfCollages, train_UnCounTR.py) and why: the library is
 * the project's frames (not ImageNet and SelfMask: the frozen encoder's attention, collage-objects.ts); a small
 * decoder by default (a CPU budget; 'official' gives UnCounTRModel.py's sizes); one exemplar size (the patch
 * features under the box) rather than 64 px crops through the backbone; the density scaling per object is 100 on
 * the decoder's coarser map (3000 at 224 px officially) so that a cell's target is of the same order; batch and
 * steps are the user's (officially 128 × 50 epochs of 10,000); the head's last bias starts at the collages' mean
 * density (officially 0: from 0 the small decoder settled on one answer for every input, CONTEXT.md); `pool` > 0
 * trains on that many collages drawn once (as the official fixed dataset) instead of new ones every step.
 */
import fs from 'node:fs';
import path from 'node:path';
import { FlaneurError } from '../api/errors.js';
import { TrainUncoArgs } from '../api/unco.js';
import { Rng } from '../base/rng.js';
import { FeatureExtractor } from '../features/extract.js';
import { cosineSchedule } from '../graph/optim.js';
import type { JobHandler } from '../jobs/types.js';
import { encodePng } from '../media/png.js';
import { type ImportedViT, importViTFile } from '../models/import-vit.js';
import type { TensorToWrite } from '../models/safetensors.js';
import { ModelSession, ort, type RuntimeSettings } from '../runtime/session.js';
import type { Project } from '../store/project.js';
import type { CheckpointExtras, LoadedCheckpoint } from '../train/checkpoint.js';
import { previewFile } from '../train/previews.js';
import type { TrainState } from '../train/step-runner.js';
import {
  type ExportedEncoder,
  type Objective,
  type ObjectiveSessions,
  type StepOutcome,
  type TrainCheckpoint,
  train,
} from '../train/trainer.js';
import type { CollageLibrary, CollageOptions } from './collage.js';
import { CollagePool, collageBatch } from './unco-data.js';
import { UNCO_SIZE, uncoLibrary } from './unco-library.js';
import {
  buildUncoForward,
  buildUncoStep,
  initUncoParams,
  type UncoBatch,
  type UncoConfig,
  type UncoStepGraph,
  UncoStepRunner,
} from './unco-step.js';

type Args = TrainUncoArgs;

export { UNCO_SIZE };

/** The decoder of a run: its sizes from `decoder`, the backbone's dimension and patch grid. */
export function uncoConfig(
  a: Pick<Args, 'decoder' | 'shots' | 'batch' | 'scaling'>,
  vit: { dim: number; patchSize: number },
): UncoConfig {
  const grid = Math.floor(UNCO_SIZE / vit.patchSize);
  const official = a.decoder === 'official';
  const patch = official ? vit.patchSize : 2;
  if (!Number.isInteger(Math.log2(patch)))
    throw new FlaneurError(
      'INVALID_ARGUMENT',
      `The official UnCo decoder upsamples by the patch size, which must be a power of two (this model's is ${vit.patchSize}); use the small decoder.`,
      { field: 'decoder' },
    );
  return {
    encoderDim: vit.dim,
    grid,
    patch,
    ...(official
      ? { embed: 512, depth: 2, heads: 16, mlpRatio: 4, upsamplingDim: 256 }
      : { embed: 64, depth: 2, heads: 4, mlpRatio: 4, upsamplingDim: 32 }),
    shots: a.shots,
    batch: a.batch,
    scaling: a.scaling,
  };
}

/** The collages of a run (collage.ts options) from its arguments. */
export function uncoCollageOptions(
  a: Pick<Args, 'maxCount' | 'total' | 'pasteSize' | 'rotation' | 'scaling'>,
): CollageOptions {
  return {
    size: UNCO_SIZE,
    minCount: 1,
    maxCount: a.maxCount,
    total: a.total,
    types: { min: 1, max: 3 },
    pasteSize: a.pasteSize,
    rotation: a.rotation,
    scaling: a.scaling,
  };
}

/** A density map as a heat image (black → red → yellow), scaled to its own maximum, `size` px square. */
export function densityImage(map: Float32Array, side: number, size: number): Uint8Array {
  let max = 0;
  for (const v of map) max = Math.max(max, v);
  const out = new Uint8Array(size * size * 3);
  for (let y = 0; y < size; y++)
    for (let x = 0; x < size; x++) {
      const v = Math.max(
        0,
        (map[Math.floor((y * side) / size) * side + Math.floor((x * side) / size)] as number) / (max || 1),
      );
      const o = (y * size + x) * 3;
      out[o] = Math.round(255 * Math.min(1, 2 * v));
      out[o + 1] = Math.round(255 * Math.max(0, 2 * v - 1));
    }
  return out;
}

/** The sessions of a run on one provider: the step, the frozen backbone and the held-out evaluation. */
interface UncoSessions extends ObjectiveSessions {
  runner: UncoStepRunner;
  extractor: FeatureExtractor;
  forward: ModelSession;
  /** The held-out collages' features and counts (the same on every provider: their own generator). */
  heldout: { batch: UncoBatch; counts: number[]; rgb: Uint8Array };
  /** The training collages drawn once (`pool` > 0; their own generator, so a resumed run has the same). */
  pool: CollagePool | null;
}

interface Evaluation {
  mae: number;
  /** The first held-out collage's predicted density map. */
  first: Float32Array;
}

/** UnCo's counting decoder on a frozen backbone, trained on Self-Collages, as an objective of the trainer. */
export class UncoObjective implements Objective<UncoSessions, UncoBatch> {
  private graph: UncoStepGraph | null = null;
  readonly config: UncoConfig;
  private readonly collage: CollageOptions;
  private readonly lr: (step: number) => number;
  private heldoutMae = Number.NaN;
  private heldoutMeanMae = Number.NaN;
  readonly imagesPerStep: number;
  readonly divergedHint = 'lower the learning rate';
  /** Called as the collage pool is built (collages done). */
  onPoolProgress?: (done: number) => void;

  constructor(
    private readonly a: Args,
    private readonly model: { id: number; name: string; sha256: string; vit: ImportedViT },
    private readonly library: CollageLibrary,
    private readonly frames: number,
    private readonly jobId: number,
  ) {
    this.config = uncoConfig(a, model.vit.config);
    this.collage = uncoCollageOptions(a);
    this.imagesPerStep = a.batch;
    this.lr = cosineSchedule(a.lr, 0, a.steps, Math.round(a.warmup * a.steps));
  }

  private get built(): UncoStepGraph {
    if (!this.graph) throw new Error('the UnCo step graph is not built');
    return this.graph;
  }

  build(): UncoStepGraph {
    this.graph = buildUncoStep(this.config);
    return this.graph;
  }

  async open(runtime: RuntimeSettings): Promise<UncoSessions> {
    const c = this.config;
    const E = this.a.evalCollages;
    const runner = await UncoStepRunner.create(this.built, c, runtime);
    const extractor = await FeatureExtractor.create(this.model.vit, UNCO_SIZE, runtime, 'square');
    const forward = await ModelSession.create(buildUncoForward({ ...c, batch: E }).onnx, runtime, {
      cpuFallback: false,
    });
    // The held-out collages: a generator of their own, so they are never among the training collages' draws.
    const evalRng = new Rng(this.a.seed * 2654435761 + 0x5eed);
    const { batch, collages } = await collageBatch(extractor, this.library, this.collage, { ...c, batch: E }, evalRng);
    const counts = collages.map((k) => k.count);
    const mean = counts.reduce((s, n) => s + n, 0) / E;
    this.heldoutMeanMae = counts.reduce((s, n) => s + Math.abs(n - mean), 0) / E;
    const pool =
      this.a.pool > 0
        ? await CollagePool.build(
            extractor,
            this.library,
            this.collage,
            c,
            this.a.pool,
            new Rng(this.a.seed * 2246822519 + 0x9001),
            this.onPoolProgress,
          )
        : null;
    return {
      pool,
      runner,
      extractor,
      forward,
      heldout: { batch, counts, rgb: (collages[0] as { rgb: Uint8Array }).rgb },
      get provider() {
        return runner.provider;
      },
      sync: (state) => runner.sync(state),
      teacherWeights: () => new Map(),
      release: async () => {
        await runner.release();
        await extractor.release();
        await forward.release();
      },
    };
  }

  initialState(rng: Rng): TrainState {
    // N is uniform in [1, maxCount]: the output starts at that mean density.
    const params = initUncoParams(this.config, rng, { meanCount: (1 + this.a.maxCount) / 2 });
    const zeros = (n: string) => new Float32Array((this.built.params.get(n) as number[]).reduce((a, d) => a * d, 1));
    return {
      step: 0,
      params,
      // No teacher: the checkpoint's teacher copy is the parameters themselves.
      teacher: params,
      m: new Map(this.built.trainable.map((n) => [n, zeros(n)])),
      v: new Map(this.built.trainable.map((n) => [n, zeros(n)])),
      center: new Float32Array(0),
    };
  }

  /** The last held-out MAE beside the state, so a resumed run's train_log goes on with it. */
  readonly extras = {
    save: (): CheckpointExtras =>
      Number.isFinite(this.heldoutMae) ? { counters: { heldoutMae: this.heldoutMae } } : {},
    restore: (from: LoadedCheckpoint | null) => {
      this.heldoutMae = from?.meta.counters?.heldoutMae ?? Number.NaN;
    },
  };

  async draw(rng: Rng, _state: TrainState, s: UncoSessions): Promise<UncoBatch> {
    if (s.pool) return s.pool.batch(this.config, rng);
    return (await collageBatch(s.extractor, this.library, this.collage, this.config, rng)).batch;
  }

  /** The decoder on the held-out collages (the parameters where the step keeps them). */
  private async evaluate(s: UncoSessions, state: TrainState): Promise<Evaluation> {
    const c = this.config;
    const E = this.a.evalCollages;
    const { batch, counts } = s.heldout;
    const feeds: Record<string, ort.Tensor> = {
      latent: new ort.Tensor('float32', batch.latent, [E, c.grid * c.grid, c.encoderDim]),
    };
    if (c.shots > 0 && batch.exemplars)
      feeds.exemplars = new ort.Tensor('float32', batch.exemplars, [E, c.shots, c.encoderDim]);
    for (const [n, w] of s.runner.weights(state))
      feeds[`p/${n}`] =
        w instanceof Float32Array ? new ort.Tensor('float32', w, this.built.params.get(n) as number[]) : w;
    const out = await s.forward.run(feeds, ['pred', 'count']);
    if (!out.pred || !out.count) throw new Error('the UnCo forward graph gave no density or count');
    const got = out.count.data as Float32Array;
    const side = this.built.size;
    const mae = counts.reduce((a, n, i) => a + Math.abs((got[i] as number) - n), 0) / E;
    return { mae, first: (out.pred.data as Float32Array).slice(0, side * side) };
  }

  async step(s: UncoSessions, state: TrainState, batch: UncoBatch): Promise<StepOutcome> {
    const step = state.step;
    const lr = this.lr(step);
    const wd = this.a.weightDecay;
    const m = await s.runner.step(state, batch, { lr, wd });
    if (state.step === 1 || state.step % this.a.evalEvery === 0 || state.step === this.a.steps)
      this.heldoutMae = (await this.evaluate(s, state)).mae;
    return {
      loss: m.loss,
      gradNorm: m.gradNorm,
      lr,
      wd,
      ema: 0,
      // The held-out collage MAE (the curve of the Train view).
      monitor: this.heldoutMae,
      progress: { grad_norm: m.gradNorm, heldout_mae: this.heldoutMae, heldout_mean_mae: this.heldoutMeanMae },
    };
  }

  /** What the counter learns from: the first held-out collage, its target and the prediction, side by side. */
  async preview(dir: string, s: UncoSessions, state: TrainState): Promise<void> {
    const S = UNCO_SIZE;
    const { first } = await this.evaluate(s, state);
    const side = this.built.size;
    const target = s.heldout.batch.density.subarray(0, side * side);
    const img = new Uint8Array(3 * S * S * 3);
    const parts = [s.heldout.rgb, densityImage(target, side, S), densityImage(first, side, S)];
    for (let y = 0; y < S; y++)
      parts.forEach((p, i) => {
        img.set(p.subarray(y * S * 3, (y + 1) * S * 3), (y * 3 * S + i * S) * 3);
      });
    const file = previewFile(dir, state.step, 0);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(`${file}.tmp`, encodePng(img, 3 * S, S));
    fs.renameSync(`${file}.tmp`, file);
  }

  /** The decoder with its configuration and provenance (the backbone it reads). */
  export(state: TrainState): ExportedEncoder {
    const { a, model } = this;
    const c = this.config;
    const tensors = new Map<string, TensorToWrite>();
    for (const [name, shape] of this.built.params)
      tensors.set(name, { shape, data: state.params.get(name) as Float32Array });
    const { batch: _batch, ...config } = c;
    return {
      kind: 'decoder',
      tensors,
      metadata: {
        trained_by: 'flaneur train.unco',
        unco_config: JSON.stringify(config),
        backbone_model: String(model.id),
        backbone_sha256: model.sha256,
        heldout_mae: String(this.heldoutMae),
        heldout_mean_mae: String(this.heldoutMeanMae),
      },
      onnx: buildUncoForward({ ...c, batch: 1 }).onnx,
      name: a.name ?? `UnCo counter on ${model.name}${c.shots ? '' : ' (automatic)'} (job ${this.jobId})`,
      origin: `UnCo counting decoder trained on Self-Collages of ${this.frames} frames (${this.library.objects.length} objects found without labels), ${a.steps} steps of ${a.batch} collage${a.batch === 1 ? '' : 's'}, frozen backbone model #${model.id} "${model.name}" (job ${this.jobId}).`,
      baseModel: model.id,
    };
  }
}

/** The registered model a run reads (its frozen backbone). */
export function uncoBackbone(project: Project, id: number | undefined) {
  const row = id === undefined ? undefined : project.models.get(id);
  if (!row)
    throw new FlaneurError(
      'NOT_FOUND',
      id === undefined ? 'Choose the model whose features the counter reads.' : `No model ${id} in this project.`,
      { field: 'model' },
    );
  const man = row.manifest as { architecture: { heads: number; lnEps: number } };
  const vit = importViTFile(path.join(project.dir, row.file), {
    heads: man.architecture.heads,
    lnEps: man.architecture.lnEps,
  });
  return { id: row.id, name: row.name, sha256: row.sha256, vit };
}

export const trainUncoJob: JobHandler<Args, TrainCheckpoint> = {
  kind: 'train.unco',
  args: TrainUncoArgs,
  title: (a) =>
    `Train an UnCo counter${a.shots ? '' : ' (automatic)'}${a.model ? ` on model #${a.model}` : ''}, ${a.steps} steps`,
  async run(ctx) {
    const { project, args: a } = ctx;
    const model = uncoBackbone(project, a.model);
    // Unco's decoder is checked before the library is built (a model whose patch is no power of two).
    uncoConfig(a, model.vit.config);
    const { library, frames } = await uncoLibrary(project, a, model.vit, ctx.runtime, (n) =>
      ctx.phase('finding objects for the collages', { unit: 'frames', total: n }),
    );
    const { steps, checkpointEvery, previewEvery, seed, device } = a;
    const objective = new UncoObjective(a, model, library, frames, ctx.jobId);
    objective.onPoolProgress = (done) =>
      ctx.phase('drawing the collages it trains on', { unit: 'collages', total: a.pool, done });
    return train(ctx, { steps, checkpointEvery, previewEvery, seed, device, previews: null }, objective);
  },
};
