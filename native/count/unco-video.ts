/**
 * Job `count.uncoVideo`: every (Nth) frame of an item counted with a trained UnCo counter (unco-counter.ts), the
 * exemplars boxed on one frame and taken from it for every frame. Per-frame counts are the job's items (keyed
 * `mediaId:frameIdx`, committed in small batches), so a cancelled or interrupted job resumes where it stopped and
 * `count.results` gives the curve over time and the CSV.
 */

import { FlaneurError } from '../api/errors.js';
import { CountUncoVideoArgs } from '../api/unco.js';
import { FeatureExtractor, loadRegisteredModel } from '../features/extract.js';
import type { JobHandler } from '../jobs/types.js';
import { FrameStore } from '../media/frame-store.js';
import type { Project } from '../store/project.js';
import { countFrames } from './batch.js';
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
    const frames = [...Array(count).keys()].filter((i) => i % a.every === 0).map((i) => ({ id: a.mediaId, i }));
    const counter = await UncoCounter.load(info, ctx.runtime);
    const { model } = loadRegisteredModel(project, info.modelId);
    const extractor = await FeatureExtractor.create(model, UNCO_SIZE, ctx.runtime, 'square');
    try {
      // The exemplars' features once, from their frame, for every frame.
      const exemplars = await counter.exemplars(extractor, store.image(a.mediaId, a.exemplarFrameIdx, w, h), a.boxes);
      await countFrames(ctx, frames, `counting with the trained counter on ${extractor.provider}`, async (id, i) => ({
        count: (await counter.countWith(extractor, store.image(id, i, w, h), exemplars)).count,
      }));
    } finally {
      await extractor.release();
      await counter.release();
    }
  },
};
