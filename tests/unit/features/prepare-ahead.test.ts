/**
 * Decode-ahead (native/features/prepare-ahead.ts): the batches a worker thread prepares are, in order, exactly the
 * ones the job thread would prepare itself from the same stored frames; an early stop ends the worker, and so does
 * closing one never iterated; a frame that is not on disk is a failure the job sees.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { PrepareAhead, type PrepareRequest, prepareBatch } from '../../../native/features/prepare-ahead.js';
import { FrameStore } from '../../../native/media/frame-store.js';
import { inputShape } from '../../../native/models/preprocess.js';
import type { MediaRow } from '../../../native/store/media-repo.js';
import { tmpDir } from '../../helpers/tmp.js';

const W = 40;
const H = 30;

function storedVideo(dir: string, frames: number): MediaRow {
  const store = new FrameStore(dir);
  const writer = store.openForAppend(1, 0, W * H * 3);
  for (let f = 0; f < frames; f++)
    writer.append(Uint8Array.from({ length: W * H * 3 }, (_, i) => (i * 7 + f * 31) % 256));
  writer.close();
  return {
    id: 1,
    kind: 'video',
    path: '/nowhere.mp4',
    bytes: 0,
    mtimeMs: 0,
    contentHash: null,
    status: 'done',
    problem: null,
    probe: null,
    sampling: null,
    frameWidth: W,
    frameHeight: H,
    frameCount: frames,
    addedAt: '',
    updatedAt: '',
  };
}

function request(dir: string, media: MediaRow, idx: number[]): PrepareRequest {
  return {
    media,
    plan: { from: 'stored', width: W, height: H },
    idx,
    pts: [],
    cacheDir: dir,
    spec: { shape: inputShape(W, H, 16, 8, 'aspect'), mean: [0.4, 0.5, 0.6], std: [0.2, 0.25, 0.3] },
    batch: 3,
    ahead: 1,
  };
}

describe('prepareAhead', () => {
  const root = tmpDir();
  let n = 0;
  const fresh = () => path.join(root, String(n++));
  it('gives the batches the job thread would prepare, in order, the last one short, and takes their buffers back', async () => {
    const dir = fresh();
    const media = storedVideo(dir, 12);
    const idx = [0, 1, 2, 4, 5, 6, 7, 8, 9, 10, 11];
    const req = request(dir, media, idx);
    const got: { idx: number[]; input: Float32Array }[] = [];
    const given: Float32Array[] = [];
    for await (const b of new PrepareAhead(req, { fromStore: 0 })) {
      // Slower than the worker: it must wait for us (at most `ahead` batches waiting), and the order holds.
      await new Promise((r) => setTimeout(r, 20));
      got.push({ idx: b.idx, input: b.input.slice() });
      given.push(b.input);
    }
    expect(got.map((b) => b.idx)).toEqual([
      [0, 1, 2],
      [4, 5, 6],
      [7, 8, 9],
      [10, 11],
    ]);
    const store = new FrameStore(dir);
    // The third batch is prepared into the first one's buffer, given back: filled again, it is still exactly that.
    for (const b of got) {
      const want = prepareBatch(
        b.idx.map((i) => store.image(1, i, W, H)),
        req.spec,
      );
      expect(b.input).toEqual(want);
    }
    // A batch's buffer went back to the thread once the next batch was asked for (the first two: the thread was
    // still waiting to prepare more then; after its last batch it may have ended and takes nothing back).
    expect(given.slice(0, 2).map((input) => input.length)).toEqual([0, 0]);
  });

  it('stops its worker when the consumer stops early', async () => {
    const dir = fresh();
    const media = storedVideo(dir, 30);
    let taken = 0;
    for await (const _ of new PrepareAhead(request(dir, media, [...Array(30).keys()]), { fromStore: 0 })) {
      taken++;
      if (taken === 2) break;
    }
    expect(taken).toBe(2);
  });

  it('can be closed without being iterated (a job that fails before it reaches the item)', async () => {
    const dir = fresh();
    const media = storedVideo(dir, 30);
    const ahead = new PrepareAhead(request(dir, media, [...Array(30).keys()]), { fromStore: 0 });
    await new Promise((r) => setTimeout(r, 50));
    await ahead.close();
  });

  it('fails with the reason when a frame is not on disk', async () => {
    const dir = fresh();
    const media = storedVideo(dir, 2);
    const run = async () => {
      for await (const _ of new PrepareAhead(request(dir, media, [0, 1, 5]), { fromStore: 0 })) {
        // the third frame is missing
      }
    };
    await expect(run()).rejects.toThrow(/frame 5 of media 1 is not on disk/);
  });
});
