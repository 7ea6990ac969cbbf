/**
 * Job: discover objects on the first frame of a video with Dora's procedure and track them through every frame by
 * cross-attention; boxes and patch masks per frame in SQLite; resumable from the last tracked frame (the
 * prototypes are kept with the run).
 */
import { z } from 'zod';
import { FlaneurError } from '../api/errors.js';
import { Rng } from '../base/rng.js';
import { loadRegisteredModel } from '../features/extract.js';
import type { JobHandler } from '../jobs/types.js';
import { FrameStore } from '../media/frame-store.js';
import { DORA_DEFAULTS, discover, maskBox, trackMasks } from '../models/dora.js';
import { AttentionExtractor } from './attention.js';

export const TrackArgs = z.object({
  modelId: z.int().positive(),
  mediaId: z.int().positive(),
  size: z.int().min(16).max(2048).default(224),
  /** Heads whose attention seeds the objects; default: `objects` distinct heads drawn with `seed`. */
  heads: z.array(z.int().min(0)).optional(),
  objects: z.int().min(1).max(16).default(3),
  epsilon: z.number().positive().default(DORA_DEFAULTS.epsilon),
  iterations: z.int().min(1).max(1000).default(DORA_DEFAULTS.iterations),
  seed: z.int().min(0).default(0),
});
export type TrackArgs = z.output<typeof TrackArgs>;

export function pickHeads(total: number, k: number, seed: number): number[] {
  return new Rng(seed + 1)
    .shuffle([...Array(total).keys()])
    .slice(0, Math.min(k, total))
    .sort((a, b) => a - b);
}

export const trackJob: JobHandler<TrackArgs, { runId: number }> = {
  kind: 'track.dora',
  args: TrackArgs,
  title: (a) => `Discover and track objects in media #${a.mediaId}`,
  async run(ctx) {
    const { project, args: a } = ctx;
    const media = project.media.get(a.mediaId);
    if (!media?.frameWidth || !media.frameHeight || media.frameCount === 0)
      throw new FlaneurError('NOT_FOUND', `Media ${a.mediaId} has no frames.`, { field: 'mediaId' });
    const { model } = loadRegisteredModel(project, a.modelId);
    const heads = a.heads ?? pickHeads(model.config.heads, a.objects, a.seed);
    if (heads.some((h) => h >= model.config.heads))
      throw new FlaneurError('INVALID_ARGUMENT', `The model has ${model.config.heads} heads.`, { field: 'heads' });
    const W = media.frameWidth;
    const H = media.frameHeight;
    // The frame's aspect ratio is kept: a 16:9 video at 224 is tracked on a 14×25 patch grid.
    const ex = await AttentionExtractor.create(model, a.size, ctx.runtime, { width: W, height: H });
    const store = new FrameStore(project.cacheDir);
    const frame = (i: number) => store.image(media.id, i, W, H);
    try {
      let runId = ctx.checkpoint?.runId ?? 0;
      let prototypes: Float32Array;
      const existing = runId ? project.tracks.run(runId) : undefined;
      if (existing) {
        prototypes = Float32Array.from((existing.params as { prototypes: number[] }).prototypes);
      } else {
        const first = await ex.run(frame(0));
        prototypes = discover(first.q, first.attention, first.gridH * first.gridW, first.dim, {
          heads,
          epsilon: a.epsilon,
          iterations: a.iterations,
        });
        runId = project.tracks.createRun({
          mediaId: media.id,
          modelId: a.modelId,
          params: {
            heads,
            epsilon: a.epsilon,
            iterations: a.iterations,
            size: a.size,
            resize: 'aspect',
            prototypes: Array.from(prototypes),
          },
          grid: { gridH: first.gridH, gridW: first.gridW },
        });
        ctx.commit([], { runId });
      }
      const start = project.tracks.lastFrame(runId) + 1;
      ctx.phase(`tracking on ${ex.provider}`, { total: media.frameCount, unit: 'frames', done: start });
      for (let i = start; i < media.frameCount; i++) {
        ctx.throwIfAborted();
        const f = await ex.run(frame(i));
        const n = f.gridH * f.gridW;
        const masks = trackMasks(prototypes, f.k, n, f.dim);
        const boxes = heads.map((_, c) => {
          const mask = masks.subarray(c * n, (c + 1) * n);
          const box = maskBox(mask, f, W, H) ?? [0, 0, 0, 0];
          return {
            object: c + 1,
            frameIdx: i,
            box,
            area: mask.reduce((s, v) => s + v, 0),
            mask: Uint8Array.from(mask),
          };
        });
        project.tracks.addFrame(runId, boxes);
        ctx.progress(i + 1, media.frameCount, { run: runId });
      }
      ctx.commit([{ key: 'run', status: 'ok', result: { runId, objects: heads.length, frames: media.frameCount } }], {
        runId,
      });
    } finally {
      await ex.release();
    }
  },
};
