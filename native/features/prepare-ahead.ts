/**
 * Decode-ahead for feature extraction: an item's frames are read (or decoded again from the source) and
 * preprocessed into model inputs on a worker thread, batch by batch, while the model runs on the job's thread
 * (onnxruntime-node's `run` holds the thread that calls it). At most `ahead` prepared batches wait at any time, so
 * memory stays a few batches whatever the item's length.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { FlaneurError } from '../api/errors.js';
import type { RgbImage } from '../media/image.js';
import { type InputShape, preprocessInto } from '../models/preprocess.js';
import type { MediaRow } from '../store/media-repo.js';
import type { FramePlan } from './source-frames.js';

/** What a batch's preprocessing needs: the input shape and the model's normalisation. */
export interface PrepareSpec {
  shape: InputShape;
  mean: readonly [number, number, number];
  std: readonly [number, number, number];
}

/**
 * Images stretched to one input shape and normalised, [N, 3, H, W] (what FeatureExtractor.runAt feeds the model);
 * into `into` when given (its length must be N × 3 × H × W).
 */
export function prepareBatch(images: readonly RgbImage[], spec: PrepareSpec, into?: Float32Array): Float32Array {
  const { shape } = spec;
  const plane = 3 * shape.width * shape.height;
  const input = into ?? new Float32Array(images.length * plane);
  images.forEach((img, i) => {
    preprocessInto(
      img,
      {
        size: shape.width,
        height: shape.height,
        mode: 'stretch',
        filter: 'bilinear',
        mean: spec.mean,
        std: spec.std,
      },
      input,
      i * plane,
    );
  });
  return input;
}

/** One item's frames to prepare (all plain data: it crosses to the worker thread). */
export interface PrepareRequest {
  media: MediaRow;
  plan: FramePlan;
  /** Frame numbers wanted, in order. */
  idx: number[];
  /** Recorded timestamps (seconds) by frame number, for frames decoded again from a video. */
  pts: (number | undefined)[];
  cacheDir: string;
  spec: PrepareSpec;
  batch: number;
  /** Prepared batches allowed to wait for the model. */
  ahead: number;
}

export interface PreparedBatch {
  idx: number[];
  /** [idx.length, 3, H, W] */
  input: Float32Array;
}

/** Job thread → worker: one more batch may be prepared; a batch's buffer given back to be filled again. */
export type PrepareReply = { type: 'more' } | { type: 'reuse'; buffer: ArrayBuffer };

/** Worker → job thread. */
export type PrepareMessage =
  | { type: 'batch'; idx: number[]; input: Float32Array }
  | { type: 'done'; fromStore: number }
  | { type: 'error'; message: string };

/** The worker's entry beside this file: the .ts source under tsx, the built .js otherwise. */
const WORKER_ENTRY = new URL(`./prepare-worker.${import.meta.url.endsWith('.ts') ? 'ts' : 'js'}`, import.meta.url);

/**
 * The prepared batches of one item, in order, made on a worker thread up to `ahead` batches in advance. The thread
 * starts at once (its first batches are ready by the time the model wants them); `stats` gets the count of frames
 * the decode did not give again (read from the store). Iterate once; `close` (also when the iteration ends early:
 * an error, a cancelled job) stops the thread, iterated or not. A batch's `input` is the consumer's until it asks
 * for the next batch: then its buffer goes back to the thread to be filled again (a new 6 MB batch a time costs
 * page faults where large blocks are freshly mapped, as in job workers: MALLOC_MMAP_THRESHOLD_).
 */
export class PrepareAhead implements AsyncIterable<PreparedBatch> {
  private readonly worker: Worker;
  private readonly queue: PrepareMessage[] = [];
  private wake: (() => void) | null = null;
  private failure: Error | null = null;

  constructor(
    private readonly req: PrepareRequest,
    private readonly stats: { fromStore: number },
    private readonly signal?: AbortSignal,
  ) {
    // From the sources, the thread loads TypeScript through tsx's API (a worker ignores the process's --import).
    const tsx = WORKER_ENTRY.pathname.endsWith('.ts')
      ? pathToFileURL(
          path.join(path.dirname(createRequire(import.meta.url).resolve('tsx/package.json')), 'dist/esm/api/index.mjs'),
        ).href
      : null;
    this.worker = tsx
      ? new Worker(
          `import(${JSON.stringify(tsx)}).then((t) => { t.register(); return import(${JSON.stringify(WORKER_ENTRY.href)}); })`,
          { eval: true, workerData: req },
        )
      : new Worker(WORKER_ENTRY, { workerData: req });
    this.worker.on('message', (m: PrepareMessage) => {
      this.queue.push(m);
      this.notify();
    });
    this.worker.on('error', (err) => {
      this.failure = err;
      this.notify();
    });
    this.worker.on('exit', (code) => {
      if (code !== 0 && !this.failure)
        this.failure = new Error(`the frame preparation thread stopped (exit code ${code})`);
      this.notify();
    });
  }

  private notify(): void {
    this.wake?.();
    this.wake = null;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<PreparedBatch> {
    const onAbort = () => this.notify();
    this.signal?.addEventListener('abort', onAbort);
    try {
      for (;;) {
        const m = this.queue.shift();
        if (!m) {
          if (this.failure) throw this.failure;
          this.signal?.throwIfAborted();
          await new Promise<void>((resolve) => {
            this.wake = resolve;
          });
          continue;
        }
        if (m.type === 'error')
          throw new FlaneurError('INTERNAL', `Preparing the frames of media ${this.req.media.id} failed: ${m.message}`);
        if (m.type === 'done') {
          this.stats.fromStore += m.fromStore;
          return;
        }
        // One more batch may be prepared now that this one is taken.
        this.worker.postMessage({ type: 'more' } satisfies PrepareReply);
        yield { idx: m.idx, input: m.input };
        // The consumer asked for the next batch: it is done with this one's buffer.
        const buffer = m.input.buffer as ArrayBuffer;
        this.worker.postMessage({ type: 'reuse', buffer } satisfies PrepareReply, [buffer]);
      }
    } finally {
      this.signal?.removeEventListener('abort', onAbort);
      await this.close();
    }
  }

  async close(): Promise<void> {
    await this.worker.terminate();
  }
}
