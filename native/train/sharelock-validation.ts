/**
 * ShareLock's validation and early stopping, as the official code runs them (JonaRuthardt/ShareLock: datasets.py
 * holds out the first `val_split_num` images of a seeded shuffle; `validation_step` logs the training loss of a
 * held-out batch in eval mode; train.py keeps the checkpoint of the lowest `validation_loss` — the model tested at
 * the end — and stops after `early_stopping_patience` validations without a fall of `min_delta` = 0.1).
 *
 * Here: a `valFraction` of the images (with all their pairs) held out with the run's seed, the loss of the
 * held-out pairs in batches of the training batch size (fixed order, the mean weighted by batch size: Lightning's
 * epoch mean) every `valEvery` steps and at the last, the best head kept (it is the one exported), and the
 * counters and the best head saved in each checkpoint so that a resume goes on where it was.
 */
import { FlaneurError } from '../api/errors.js';
import { Rng } from '../base/rng.js';
import { GraphBuilder } from '../graph/builder.js';
import { toOnnx } from '../graph/onnx.js';
import { ModelSession, ort, type RuntimeSettings } from '../runtime/session.js';
import {
  l2Normalize,
  languageProjector,
  type ShareLockConfig,
  shareLockBufferShapes,
  shareLockLoss,
  shareLockParamShapes,
} from '../text/sharelock.js';
import type { CheckpointExtras, LoadedCheckpoint } from './checkpoint.js';
import type { TrainState } from './step-runner.js';

/** Pairs as rows of the data's image and text features: pair i is (image[i], textOf[i]). */
export interface PairRows {
  image: Int32Array;
  textOf: Int32Array;
}

/**
 * The pairs split by image: `fraction` of the images (at least one) drawn with the seed, and every pair of those
 * images, held out. Refused when either side would have fewer than two pairs (a contrastive loss needs two).
 */
export function holdOutImages(
  pairs: PairRows,
  images: number,
  fraction: number,
  seed: number,
): { train: PairRows; val: PairRows } {
  const n = Math.min(images - 1, Math.max(1, Math.round(images * fraction)));
  const order = new Rng((seed * 2654435761 + 13) >>> 0).shuffle([...Array(images).keys()]);
  const held = new Set(order.slice(0, n));
  const pick = (keep: (i: number) => boolean): PairRows => {
    const idx = [...pairs.image.keys()].filter((p) => keep(pairs.image[p] as number));
    return {
      image: Int32Array.from(idx, (p) => pairs.image[p] as number),
      textOf: Int32Array.from(idx, (p) => pairs.textOf[p] as number),
    };
  };
  const train = pick((i) => !held.has(i));
  const val = pick((i) => held.has(i));
  if (n < 1 || train.image.length < 2 || val.image.length < 2)
    throw new FlaneurError(
      'INVALID_ARGUMENT',
      `A validation share of ${fraction} of ${images} images leaves ${train.image.length} pairs to train on and ${val.image.length} to validate with; each needs at least two. Give more data or another valFraction.`,
      { field: 'valFraction' },
    );
  return { train, val };
}

/**
 * The validation graph: text features, image features and the head's parameters and running statistics as
 * inputs (one session for the whole run) → the contrastive loss of the batch in eval mode (running statistics,
 * no dropout), with the training step's projector and loss.
 */
export function buildShareLockValidation(c: ShareLockConfig): Uint8Array {
  const b = new GraphBuilder('sharelock_validation');
  const text = b.input('text', 'float32', ['n', c.textDim]);
  const image = b.input('image', 'float32', ['n', c.visionDim]);
  const shapes = new Map([...shareLockParamShapes(c), ...shareLockBufferShapes(c)]);
  const param = (name: string) => b.value(name) ?? b.input(name, 'float32', shapes.get(name) as number[]);
  const projected = languageProjector(b, c, text, param);
  b.output(shareLockLoss(b, l2Normalize(b, image), projected).loss, 'loss');
  return toOnnx(b.build());
}

export interface ValidationOptions {
  /** Validate at every multiple of this step, and at the last step. */
  every: number;
  steps: number;
  /** Rows per validation batch (the training micro-batch). */
  batch: number;
  /** Validations without a fall of `minDelta` below the best before stopping; 0: never stop early. */
  patience: number;
  minDelta: number;
}

export interface Features {
  vision: Float32Array;
  text: Float32Array;
}

/** One validation's outcome: the loss for the log, and why to stop (null: go on). */
export interface Validation {
  loss: number;
  stop: string | null;
}

export class ShareLockValidator {
  private session: ModelSession | null = null;
  /** The head of the lowest validation loss so far (ModelCheckpoint). */
  private best: { loss: number; step: number; params: Map<string, Float32Array> } | null = null;
  /** EarlyStopping's best score (moves only by more than minDelta) and its count of validations since. */
  private stopBest = Number.POSITIVE_INFINITY;
  private wait = 0;

  constructor(
    private readonly c: ShareLockConfig,
    private readonly features: Features,
    private readonly val: PairRows,
    private readonly o: ValidationOptions,
  ) {}

  async open(runtime: RuntimeSettings): Promise<void> {
    this.session ??= await ModelSession.create(buildShareLockValidation(this.c), runtime);
  }

  /** The held-out pairs' loss with these parameters (and running statistics). */
  async loss(params: ReadonlyMap<string, Float32Array>): Promise<number> {
    const s = this.session;
    if (!s) throw new Error('the ShareLock validation session is not open');
    const { c, features: f, val, o } = this;
    const shapes = new Map([...shareLockParamShapes(c), ...shareLockBufferShapes(c)]);
    const weights: Record<string, ort.Tensor> = {};
    for (const [name, shape] of shapes)
      weights[name] = new ort.Tensor('float32', params.get(name) as Float32Array, shape);
    // Lightning's epoch mean of a logged value: the batches' losses weighted by their sizes
    let sum = 0;
    let seen = 0;
    const n = val.image.length;
    for (let at = 0; at < n; at += o.batch) {
      const rows = Math.min(o.batch, n - at);
      // a last batch of one pair has a loss of 0 whatever the head: it is left out
      if (rows < 2) break;
      const text = new Float32Array(rows * c.textDim);
      const vision = new Float32Array(rows * c.visionDim);
      for (let r = 0; r < rows; r++) {
        const t = val.textOf[at + r] as number;
        const im = val.image[at + r] as number;
        text.set(f.text.subarray(t * c.textDim, (t + 1) * c.textDim), r * c.textDim);
        vision.set(f.vision.subarray(im * c.visionDim, (im + 1) * c.visionDim), r * c.visionDim);
      }
      const out = await s.run({
        ...weights,
        text: new ort.Tensor('float32', text, [rows, c.textDim]),
        image: new ort.Tensor('float32', vision, [rows, c.visionDim]),
      });
      sum += (((out.loss as ort.Tensor).data as Float32Array)[0] as number) * rows;
      seen += rows;
    }
    return sum / seen;
  }

  /** After a step: null when the step does not validate, else the loss and whether to stop. */
  async validate(state: TrainState): Promise<Validation | null> {
    const { o } = this;
    if (state.step % o.every !== 0 && state.step !== o.steps) return null;
    const loss = await this.loss(state.params);
    if (!this.best || loss < this.best.loss)
      this.best = { loss, step: state.step, params: new Map([...state.params].map(([k, v]) => [k, v.slice()])) };
    if (loss < this.stopBest - o.minDelta) {
      this.stopBest = loss;
      this.wait = 0;
    } else this.wait++;
    const stop =
      o.patience > 0 && this.wait >= o.patience
        ? `early stopping at step ${state.step}: the validation loss did not fall ${o.minDelta} below ${this.stopBest.toFixed(4)} in ${o.patience} validations; the head is the one of step ${this.best.step} (validation loss ${this.best.loss.toFixed(4)})`
        : null;
    return { loss, stop };
  }

  /** The best head's parameters (null before the first validation). */
  bestParams(): { step: number; loss: number; params: ReadonlyMap<string, Float32Array> } | null {
    return this.best;
  }

  save(): CheckpointExtras {
    const b = this.best;
    const shapes = new Map([...shareLockParamShapes(this.c), ...shareLockBufferShapes(this.c)]);
    return {
      tensors: new Map(
        b ? [...b.params].map(([k, v]) => [`best.${k}`, { shape: shapes.get(k) as number[], data: v }]) : [],
      ),
      counters: {
        valBestLoss: b?.loss ?? Number.NaN,
        valBestStep: b?.step ?? -1,
        valStopBest: Number.isFinite(this.stopBest) ? this.stopBest : -1,
        valWait: this.wait,
      },
    };
  }

  restore(from: LoadedCheckpoint | null): void {
    const k = from?.meta.counters;
    this.best = null;
    this.stopBest = Number.POSITIVE_INFINITY;
    this.wait = 0;
    if (!from || !k || k.valBestStep === undefined || k.valBestStep < 0) return;
    const names = [...shareLockParamShapes(this.c).keys(), ...shareLockBufferShapes(this.c).keys()];
    this.best = {
      loss: k.valBestLoss as number,
      step: k.valBestStep,
      params: new Map(names.map((n) => [n, from.extra(`best.${n}`)])),
    };
    this.stopBest = (k.valStopBest as number) < 0 ? Number.POSITIVE_INFINITY : (k.valStopBest as number);
    this.wait = k.valWait ?? 0;
  }

  async release(): Promise<void> {
    await this.session?.release();
    this.session = null;
  }
}
