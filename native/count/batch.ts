/**
 * Job: count in every (Nth) frame of chosen media with the prototype of exemplars drawn on one frame, at the
 * threshold chosen there. Per-frame counts are the job's items (resumable), for the plot over time, the histogram
 * and the CSV export.
 */
import { z } from 'zod';
import { FeatureExtractor, loadRegisteredModel } from '../features/extract.js';
import type { ItemResult, JobContext, JobHandler } from '../jobs/types.js';
import { FrameStore } from '../media/frame-store.js';
import { countWithExemplars, countWithPrototypes, defaultThreshold, exemplarPrototypes } from './count.js';

export const CountBatchArgs = z.object({
  modelId: z.int().positive(),
  exemplar: z.object({
    mediaId: z.int().positive(),
    frameIdx: z.int().min(0),
    boxes: z.array(z.tuple([z.number(), z.number(), z.number(), z.number()])).min(1),
  }),
  media: z.array(z.int().positive()).min(1),
  /** Negative exemplar boxes on the exemplar frame, and a region of interest (frame pixels) for every frame. */
  negatives: z.array(z.tuple([z.number(), z.number(), z.number(), z.number()])).default([]),
  roi: z
    .array(z.tuple([z.number(), z.number()]))
    .min(3)
    .optional(),
  every: z.int().min(1).default(1),
  scales: z.array(z.int()).default([224, 448]),
  threshold: z.number().optional(),
});
export type CountBatchArgs = z.output<typeof CountBatchArgs>;

export const countBatchJob: JobHandler<CountBatchArgs, { frames: number }> = {
  kind: 'count.batch',
  args: CountBatchArgs,
  title: (a) => `Count in ${a.media.length} item(s) with ${a.exemplar.boxes.length} exemplar(s)`,
  async run(ctx) {
    const { project, args: a } = ctx;
    const { model } = loadRegisteredModel(project, a.modelId);
    const store = new FrameStore(project.cacheDir);
    const read = (mediaId: number, idx: number) => {
      const m = project.media.get(mediaId);
      if (!m?.frameWidth || !m.frameHeight) throw new Error(`media ${mediaId} has no frames`);
      return store.image(mediaId, idx, m.frameWidth, m.frameHeight);
    };
    const extractors = await Promise.all(a.scales.map((s) => FeatureExtractor.create(model, s, ctx.runtime)));
    try {
      const exImg = read(a.exemplar.mediaId, a.exemplar.frameIdx);
      const protos = await exemplarPrototypes(extractors, exImg, a.exemplar.boxes);
      const negatives = await Promise.all(a.negatives.map((b) => exemplarPrototypes(extractors, exImg, [b])));
      const onExemplar = await countWithExemplars(
        extractors,
        exImg,
        a.exemplar.boxes,
        a.threshold === undefined ? {} : { threshold: a.threshold },
      );
      const threshold = a.threshold ?? defaultThreshold(onExemplar.map, a.exemplar.boxes);
      const radius = 0.5 * Math.min(...a.exemplar.boxes.map((b) => Math.min(b[2], b[3])));
      const frames = a.media.flatMap((id) => {
        const m = project.media.get(id);
        return m ? [...Array(m.frameCount).keys()].filter((i) => i % a.every === 0).map((i) => ({ id, i })) : [];
      });
      await countFrames(ctx, frames, `counting on ${extractors[0]?.provider ?? 'cpu'}`, async (id, i) => {
        const r = await countWithPrototypes(extractors, read(id, i), protos, radius, threshold, {
          negatives,
          ...(a.roi ? { roi: a.roi } : {}),
        });
        return { count: r.count, threshold };
      });
    } finally {
      for (const e of extractors) await e.release();
    }
  },
};

/**
 * The per-frame loop of a counting job (`count.batch`, `count.uncoVideo`): every frame not recorded by an earlier
 * attempt counted in order, its stored item `{ mediaId, frameIdx, pts, ...counted }`, committed 8 at a time with
 * progress in frames; cancellable between frames.
 */
export async function countFrames(
  ctx: JobContext<unknown, { frames: number }>,
  frames: readonly { id: number; i: number }[],
  phase: string,
  count: (mediaId: number, frameIdx: number) => Promise<{ count: number } & Record<string, unknown>>,
): Promise<void> {
  const done = ctx.finishedKeys();
  let n = frames.filter((f) => done.has(`${f.id}:${f.i}`)).length;
  ctx.phase(phase, { total: frames.length, unit: 'frames', done: n });
  let batch: ItemResult[] = [];
  for (const f of frames) {
    const key = `${f.id}:${f.i}`;
    if (done.has(key)) continue;
    ctx.throwIfAborted();
    const counted = await count(f.id, f.i);
    const pts = ctx.project.media.frames(f.id, f.i, 1)[0]?.pts ?? 0;
    batch.push({ key, status: 'ok', result: { mediaId: f.id, frameIdx: f.i, pts, ...counted } });
    n++;
    ctx.progress(n, frames.length);
    if (batch.length >= 8) {
      ctx.commit(batch, { frames: n });
      batch = [];
    }
  }
  if (batch.length) ctx.commit(batch, { frames: n });
}
