/**
 * The worker thread of prepare-ahead.ts: reads or decodes an item's frames (planFramesOf) and posts them back as
 * preprocessed batches, never more than `ahead` batches before the job thread has taken them.
 */
import fs from 'node:fs';
import os from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { FrameStore } from '../media/frame-store.js';
import type { RgbImage } from '../media/image.js';
import { type PrepareMessage, type PrepareReply, type PrepareRequest, prepareBatch } from './prepare-ahead.js';
import { planFramesOf } from './source-frames.js';

/**
 * How much lower this thread's scheduling priority is than the job's (nice; the ffmpeg it starts inherits it). On
 * two cores the model's threads wait for each other at every operator: a decode thread sharing a core slows the whole
 * model, so it should run in the model's gaps (the job thread storing tokens, between runs), not beside it. 10 and
 * not 19: on a machine loaded by other programs a thread at 19 gets ~1.5 % of a busy core's share and the model
 * would wait for its batches. `FLANEUR_PREPARE_NICE` overrides it (benches: 0 compares with the same priority).
 */
const PREPARE_NICE = Number(process.env.FLANEUR_PREPARE_NICE ?? 10);

/** Lowers this thread's priority (Linux: a thread's id from /proc/thread-self; elsewhere a process's, so not done). */
function lowerThreadPriority(nice: number): void {
  if (process.platform !== 'linux' || !(nice > 0)) return;
  try {
    const tid = Number(fs.readlinkSync('/proc/thread-self').split('/').pop());
    if (Number.isInteger(tid) && tid > 0) os.setPriority(tid, Math.min(19, os.getPriority(tid) + nice));
  } catch {
    // Not permitted or no /proc: the thread keeps the job's priority.
  }
}

lowerThreadPriority(PREPARE_NICE);
const req = workerData as PrepareRequest;
const port = parentPort;
if (!port) throw new Error('prepare-worker runs as a worker thread');

let credit = req.ahead;
let wake: (() => void) | null = null;
/** Buffers of full batches the job thread gave back (at most the batches in flight: ahead + 1). */
const spare: ArrayBuffer[] = [];
port.on('message', (m: PrepareReply) => {
  if (m.type === 'reuse') spare.push(m.buffer);
  else if (m.type === 'more') {
    credit++;
    wake?.();
    wake = null;
  }
});

async function send(idx: number[], images: RgbImage[]): Promise<void> {
  while (credit <= 0)
    await new Promise<void>((resolve) => {
      wake = resolve;
    });
  credit--;
  const { width, height } = req.spec.shape;
  const length = images.length * 3 * width * height;
  const buffer = spare.pop();
  const into = buffer && buffer.byteLength === length * 4 ? new Float32Array(buffer) : undefined;
  const input = prepareBatch(images, req.spec, into);
  const msg: PrepareMessage = { type: 'batch', idx, input };
  port?.postMessage(msg, [input.buffer as ArrayBuffer]);
}

try {
  const store = new FrameStore(req.cacheDir);
  const stats = { fromStore: 0 };
  let idx: number[] = [];
  let images: RgbImage[] = [];
  for await (const f of planFramesOf(req.media, req.plan, req.idx, store, (i) => req.pts[i], stats)) {
    idx.push(f.idx);
    images.push(f.image);
    if (idx.length >= req.batch) {
      await send(idx, images);
      idx = [];
      images = [];
    }
  }
  if (idx.length > 0) await send(idx, images);
  port.postMessage({ type: 'done', fromStore: stats.fromStore } satisfies PrepareMessage);
} catch (err) {
  port.postMessage({ type: 'error', message: (err as Error).message } satisfies PrepareMessage);
}
port.unref();
