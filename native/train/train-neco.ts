/**
 * The NeCo objective of the `train.dino` job (args.neco): adapts an encoder's patch features to the project's frames
 * with patch neighbour consistency (vpariza/NeCo). The one trainer (trainer.ts) runs it as DINO and Dora: seeded
 * crops, the step graph on ONNX Runtime, per-step metrics, checkpoints (with the queue, `extras`) every N steps and
 * when stopped, exact resume, teacher attention previews, and the encoder exported with its provenance.
 *
 * Where we differ from the official code (say so in the closing note too):
 * - the exported encoder is the student backbone (the official validation and checkpoints use `self.model`, the
 *   student) — DINO runs export the teacher;
 * - random generator: our seeded mulberry32 for crops, jitter, queue pushes and draws (torch's in the official);
 * - crops come from the project's sampled frames (one frame per image), boxes with the official overlap rule; a crop
 *   that cannot meet it in 100 tries is centred on the first global crop instead of looping forever;
 * - learning rates follow a cosine from the base to 0 over the run's steps (CosineAnnealingLR with final_lr 0).
 */
import type { TrainDinoArgs } from '../api/contract.js';
import { FlaneurError } from '../api/errors.js';
import type { Rng } from '../base/rng.js';
import { cosineSchedule } from '../graph/optim.js';
import type { FrameStore } from '../media/frame-store.js';
import { type NecoHeadConfig, necoPairs } from '../models/neco.js';
import type { TensorToWrite } from '../models/safetensors.js';
import { type ViTConfig, vitParamShapes } from '../models/vit.js';
import type { RuntimeSettings } from '../runtime/session.js';
import type { LoadedCheckpoint } from './checkpoint.js';
import { type Box, NecoQueue, necoViewInto, relativeBoxes, roiBatch, sampleNecoBoxes } from './neco-data.js';
import {
  buildNecoStep,
  type NecoBatch,
  type NecoStepConfig,
  type NecoStepGraph,
  NecoStepRunner,
  necoParamShapes,
} from './neco-step.js';
import { initialState, type TrainState } from './step-runner.js';
import { dropPathMask, type ExportedEncoder, type Objective, type StepOutcome, vitEncoderOnnx } from './trainer.js';

type Args = TrainDinoArgs;

/** The registered model a NeCo run starts from (its weights go into student and teacher). */
export interface NecoBase {
  id: number;
  name: string;
  sha256: string;
  weights: Map<string, Float32Array>;
}

/** The multiple of the patch size nearest to 98 (NeCo's local crop: 98 = 7 x 14 for DINOv2, 96 for patch 16). */
export function necoLocalSize(patch: number): number {
  return Math.max(1, Math.round(98 / patch)) * patch;
}

/** NeCo's head and local crop size, validated (crop sizes, queue) before a run or an export starts. */
export function necoSetup(
  a: Pick<Args, 'neco' | 'globalSize' | 'batch'>,
  vit: Pick<ViTConfig, 'patchSize' | 'dim'>,
): { head: NecoHeadConfig; localSize: number } {
  const n = a.neco;
  if (!n) throw new Error('NeCo settings missing');
  const P = vit.patchSize;
  const localSize = n.localSize ?? necoLocalSize(P);
  if (a.globalSize % P || localSize % P)
    throw new FlaneurError(
      'INVALID_ARGUMENT',
      `Crop sizes must be multiples of the patch size ${P} (global ${a.globalSize}, local ${localSize}).`,
      { field: 'globalSize' },
    );
  if (n.queue < a.batch * n.aligned * n.aligned)
    throw new FlaneurError(
      'INVALID_ARGUMENT',
      `The queue (${n.queue}) must hold at least batch × ${n.aligned * n.aligned} patches (${a.batch * n.aligned * n.aligned}); raise the queue or lower the batch.`,
      { field: 'neco' },
    );
  return { head: { inDim: vit.dim, hiddenDim: n.headHidden, outDim: n.outDim, layers: 3 }, localSize };
}

/**
 * NeCo's step-0 parameters: DINO's initialisation of the ViT and the NeCo head from the run's generator, then the
 * model's weights (as the official run: the pretrained weights go into the student and the teacher; the heads start
 * equal too). Shared with `train.export`.
 */
export function necoStartingParams(
  vit: ViTConfig,
  head: NecoHeadConfig,
  base: ReadonlyMap<string, Float32Array> | null,
  rng: Rng,
  initParams: (shapes: Map<string, number[]>, rng: Rng) => Map<string, Float32Array>,
): Map<string, Float32Array> {
  const params = initParams(necoParamShapes({ vit, head }), rng);
  if (base) for (const [k, v] of base) if (params.has(k)) params.set(k, v);
  return params;
}

interface NecoDraw {
  batch: NecoBatch;
  plan: ReturnType<NecoQueue['plan']>;
}

type NecoSessions = NecoStepRunner;

/** Patch neighbour consistency (NeCo) as an objective of the trainer. */
export class NecoObjective implements Objective<NecoSessions, NecoDraw> {
  private graph: NecoStepGraph | null = null;
  private readonly config: NecoStepConfig;
  private readonly n: NonNullable<Args['neco']>;
  private readonly queue: NecoQueue;
  private readonly lr: (step: number) => number;
  private readonly lrHead: (step: number) => number;
  private readonly wd: (step: number) => number;
  private readonly ema: (step: number) => number;
  readonly imagesPerStep: number;
  readonly divergedHint = 'lower the learning rates or the steepness';

  constructor(
    private readonly a: Args,
    private readonly data: {
      frames: { media: number; idx: number; w: number; h: number }[];
      media: readonly unknown[];
      vit: ViTConfig;
    },
    private readonly store: FrameStore,
    private readonly base: NecoBase | null,
    private readonly jobId: number,
    private readonly initParams: (shapes: Map<string, number[]>, rng: Rng) => Map<string, Float32Array>,
  ) {
    const n = a.neco;
    if (!n) throw new Error('NeCo objective without NeCo settings');
    this.n = n;
    const { head, localSize } = necoSetup(a, data.vit);
    this.config = {
      vit: data.vit,
      head,
      batch: a.batch,
      globalSize: a.globalSize,
      globalCrops: 2,
      localSize,
      localCrops: n.localCrops,
      aligned: n.aligned,
      steepness: { student: n.steepness, teacher: n.steepness },
      dropPath: a.dropPath > 0,
    };
    this.queue = new NecoQueue(2, n.queue, n.outDim);
    this.imagesPerStep = (2 + n.localCrops) * a.batch;
    this.lr = cosineSchedule(n.lrBackbone, 0, a.steps);
    this.lrHead = cosineSchedule(n.lrHead, 0, a.steps);
    this.wd = cosineSchedule(n.weightDecay, n.weightDecayEnd, a.steps);
    this.ema = cosineSchedule(n.emaStart, n.emaEnd, a.steps);
  }

  private get built(): NecoStepGraph {
    if (!this.graph) throw new Error('the NeCo step graph is not built');
    return this.graph;
  }

  build(): NecoStepGraph {
    this.graph = buildNecoStep(this.config);
    return this.graph;
  }

  open(runtime: RuntimeSettings): Promise<NecoSessions> {
    return NecoStepRunner.create(this.built, this.config, runtime);
  }

  initialState(rng: Rng): TrainState {
    const { vit, head } = this.config;
    return initialState(this.built, necoStartingParams(vit, head, this.base?.weights ?? null, rng, this.initParams));
  }

  /** The queue (`x.queue.<g>`, `counters.queueEntries`) beside the state in checkpoints. */
  readonly extras = {
    save: () => ({
      tensors: new Map<string, TensorToWrite>(
        this.queue.rows.map((q, g) => [`queue.${g}`, { shape: [this.n.queue, this.n.outDim], data: q }]),
      ),
      counters: { queueEntries: this.queue.entries },
    }),
    restore: (from: LoadedCheckpoint | null) => {
      this.queue.rows.forEach((q, g) => {
        if (from) q.set(from.extra(`queue.${g}`));
        else q.fill(0);
      });
      this.queue.entries = from?.meta.counters?.queueEntries ?? 0;
    },
  };

  async draw(rng: Rng): Promise<NecoDraw> {
    const { a, n, config } = this;
    const { vit, localSize } = config;
    const G = config.globalCrops;
    const L = n.localCrops;
    const B = a.batch;
    const P = vit.patchSize;
    const Ng = this.built.dims.globalPatches;
    const pairs = necoPairs(G, L);
    const gPlane = 3 * a.globalSize * a.globalSize;
    const lPlane = 3 * localSize * localSize;
    const specs = [
      { size: a.globalSize, scale: n.globalScale, count: G },
      { size: localSize, scale: n.localScale, count: L },
    ];
    const sizes = [...Array(G).fill(a.globalSize), ...Array(L).fill(localSize)] as number[];
    const globals = new Float32Array(G * B * gPlane);
    const locals = L > 0 ? new Float32Array(L * B * lPlane) : undefined;
    const perImage: { gc: Box[][]; all: Box[][] }[] = [];
    for (let i = 0; i < B; i++) {
      const f = this.data.frames[rng.int(this.data.frames.length)] as (typeof this.data.frames)[number];
      const img = this.store.image(f.media, f.idx, f.w, f.h);
      const boxes = sampleNecoBoxes(img.width, img.height, specs, rng);
      boxes.forEach((box, v) => {
        if (v < G) necoViewInto(img, box, a.globalSize, vit.mean, vit.std, rng, globals, (v * B + i) * gPlane);
        else
          necoViewInto(img, box, localSize, vit.mean, vit.std, rng, locals as Float32Array, ((v - G) * B + i) * lPlane);
      });
      perImage.push(relativeBoxes(boxes, sizes, G));
    }
    const roi = roiBatch(perImage, pairs, {
      patch: P,
      globalGrid: a.globalSize / P,
      localGrid: localSize / P,
      aligned: n.aligned,
    });
    const plan = this.queue.plan(rng, B, Ng, pairs, n.aligned * n.aligned);
    const refs = this.queue.references(plan, pairs, B, Ng);
    const batch: NecoBatch = {
      globals,
      ...(locals ? { locals } : {}),
      ...roi,
      ...refs,
      ...(config.dropPath
        ? {
            dpGlobal: dropPathMask(rng, vit.depth, a.dropPath, G * B),
            ...(L > 0 ? { dpLocal: dropPathMask(rng, vit.depth, a.dropPath, L * B) } : {}),
          }
        : {}),
    };
    return { batch, plan };
  }

  async step(runner: NecoSessions, state: TrainState, { batch, plan }: NecoDraw): Promise<StepOutcome> {
    const step = state.step;
    const s = { lr: this.lr(step), lrHead: this.lrHead(step), wd: this.wd(step), ema: this.ema(step) };
    const m = await runner.step(state, batch, s);
    this.queue.push(plan, m.teacherPatches, this.a.batch, this.built.dims.globalPatches);
    const filled = this.queue.entries / this.n.queue;
    return {
      loss: m.loss,
      gradNorm: m.gradNorm,
      lr: s.lr,
      wd: s.wd,
      ema: s.ema,
      // NeCo has no teacher distribution; the column holds the filled share of the queue instead.
      monitor: filled,
      progress: { grad_norm: m.gradNorm, queue_filled: filled },
    };
  }

  /** The student backbone (what the official code evaluates), with its provenance. */
  export(state: TrainState): ExportedEncoder {
    const { a, base, data } = this;
    const { vit } = data;
    const B = a.batch;
    const mediaCount = data.media.length;
    const backbone = new Map<string, TensorToWrite>();
    for (const [name, shape] of vitParamShapes(vit))
      backbone.set(name, { shape, data: state.params.get(name) as Float32Array });
    const origin = `NeCo adaptation of ${base ? `model #${base.id} "${base.name}" (sha256 ${base.sha256.slice(0, 12)})` : 'a randomly initialised ViT'} on ${data.frames.length} frames of ${mediaCount} media item${mediaCount === 1 ? '' : 's'}, ${a.steps} steps of ${B} image${B === 1 ? '' : 's'} (job ${this.jobId}).`;
    return {
      tensors: backbone,
      metadata: {
        heads: String(vit.heads),
        trained_by: 'flaneur train.dino (neco)',
        frames: String(data.frames.length),
        base_model: base ? `${base.name} (sha256 ${base.sha256})` : 'random initialisation',
      },
      onnx: vitEncoderOnnx(vit, backbone, a.globalSize),
      name: a.name ?? `NeCo ${base ? `from ${base.name}` : 'from scratch'} (job ${this.jobId})`,
      origin,
      ...(base ? { baseModel: base.id } : {}),
    };
  }
}
