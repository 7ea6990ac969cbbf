/**
 * The worker thread of prepare-ahead.ts: reads or decodes an item's frames (planFramesOf) and posts them back as
 * preprocessed batches, never more than `ahead` batches before the job thread has taken them.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { FrameStore } from '../media/frame-store.js';
import type { RgbImage } from '../media/image.js';
import { type PrepareMessage, type PrepareRequest, prepareBatch } from './prepare-ahead.js';
import { planFramesOf } from './source-frames.js';

const req = workerData as PrepareRequest;
const port = parentPort;
if (!port) throw new Error('prepare-worker runs as a worker thread');

let credit = req.ahead;
let wake: (() => void) | null = null;
port.on('message', (m: unknown) => {
  if (m === 'more') {
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
  const input = prepareBatch(images, req.spec);
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
