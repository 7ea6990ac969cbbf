/**
 * Job `count.uncoVideo`: every (Nth) frame of an item counted with a trained UnCo counter (unco-counter.ts), the
 * exemplars boxed on one frame and taken from it for every frame. Per-frame counts are the job's items (keyed
 * `mediaId:frameIdx`, committed in small batches), so a cancelled or interrupted job resumes where it stopped and
 * `count.results` gives the curve over time and the CSV.
 */

import { FlaneurError } from '../api/errors.js';
import { CountUncoVideoArgs } from '../api/unco.js';
import { FeatureExtractor, loadRegisteredModel } from '../features/extract.js';
import type { ItemResult, JobHandler } from '../jobs/types.js';
import { FrameStore } from '../media/frame-store.js';
import type { Project } from '../store/project.js';
import { listUncoCounters, UncoCounter, type UncoCounterInfo } from './unco-counter.js';
import { UNCO_SIZE } from './unco-library.js';

/** The counter of job `jobId` and the item, checked before a job is queued (and again when it runs). */
export function uncoVideoInputs(project: Project, a: CountUncoVideoArgs): { info: UncoCounterInfo; frames: number } {
  const info = listUncoCounters(project).find((c) => c.jobId === a.jobId);
  if (!info)
    throw new FlaneurError('NOT_FOUND', `No trained counter from job ${a.jobId}: train one in the Train view.`, {
      field: 'jobId',
    });
  const m = project.media.get(a.mediaId);
  if (!m?.frameWidth || !m.frameHeight || m.frameCount === 0)
    throw new FlaneurError('NOT_FOUND', `No item ${a.mediaId} with frames to count.`, { field: 'mediaId' });
  if (a.exemplarFrameIdx >= m.frameCount)
    throw new FlaneurError(
      'INVALID_ARGUMENT',
      `The exemplars' frame ${a.exemplarFrameIdx + 1} is past the item's last frame (${m.frameCount}).`,
      { field: 'exemplarFrameIdx' },
    );
  if (info.shots > 0 && a.boxes.length === 0)
    throw new FlaneurError(
      'INVALID_ARGUMENT',
      `${info.name} counts what an exemplar shows: box one, or use a counter trained without exemplars (automatic).`,
      { field: 'boxes' },
    );
  return { info, frames: m.frameCount };
}

export const countUncoVideoJob: JobHandler<CountUncoVideoArgs, { frames: number }> = {
  kind: 'count.uncoVideo',
  args: CountUncoVideoArgs,
  title: (a) =>
    `Count every ${a.every === 1 ? '' : `${a.every}th `}frame of item ${a.mediaId} with the counter of job ${a.jobId}`,
  async run(ctx) {
    const { project, args: a } = ctx;
    const { info, frames: count } = uncoVideoInputs(project, a);
    const m = project.media.get(a.mediaId);
    const [w, h] = [m?.frameWidth ?? 0, m?.frameHeight ?? 0];
    const store = new FrameStore(project.cacheDir);
    const frames = [...Array(count).keys()].filter((i) => i % a.every === 0);
    const done = ctx.finishedKeys();
    let n = frames.filter((i) => done.has(`${a.mediaId}:${i}`)).length;
    const counter = await UncoCounter.load(info, ctx.runtime);
    const { model } = loadRegisteredModel(project, info.modelId);
    const extractor = await FeatureExtractor.create(model, UNCO_SIZE, ctx.runtime, 'square');
    try {
      // The exemplars' features once, from their frame, for every frame.
      const exemplars = await counter.exemplars(extractor, store.image(a.mediaId, a.exemplarFrameIdx, w, h), a.boxes);
      ctx.phase(`counting with the trained counter on ${extractor.provider}`, {
        total: frames.length,
        unit: 'frames',
        done: n,
      });
      let batch: ItemResult[] = [];
      for (const i of frames) {
        const key = `${a.mediaId}:${i}`;
        if (done.has(key)) continue;
        ctx.throwIfAborted();
        const r = await counter.countWith(extractor, store.image(a.mediaId, i, w, h), exemplars);
        const pts = project.media.frames(a.mediaId, i, 1)[0]?.pts ?? 0;
        batch.push({ key, status: 'ok', result: { mediaId: a.mediaId, frameIdx: i, pts, count: r.count } });
        n++;
        ctx.progress(n, frames.length);
        if (batch.length >= 8) {
          ctx.commit(batch, { frames: n });
          batch = [];
        }
      }
      if (batch.length) ctx.commit(batch, { frames: n });
    } finally {
      await extractor.release();
      await counter.release();
    }
  },
};
