/**
 * Job: segment every frame (or every Nth) of chosen media with a bank, writing class-id PNG masks
 * (`masks/<media id>-<frame number>.png`) and a COCO JSON file, at the stored frame size or the source's; frames
 * with a truth mask are scored (IoU per class, per frame and over all of them, at the frame size as the Segment
 * view does). Resumable per frame (frames whose PNG exists are read back, not recomputed).
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { FlaneurError } from '../api/errors.js';
import { frameFileStem, frameNumber } from '../api/frames.js';
import { ExtractorCache } from '../features/extractor-cache.js';
import { ExactKnn } from '../features/knn.js';
import type { ItemResult, JobHandler } from '../jobs/types.js';
import { encodePng } from '../media/png.js';
import { prepareFolderDestination } from '../store/destination.js';
import { sourceSize } from '../store/media-repo.js';
import { CocoWriter } from './export.js';
import { IoUMeter, upsampleArgmax } from './labels.js';
import { readMask } from './masks.js';
import { segmentFrame } from './service.js';

export const SegmentBatchArgs = z.object({
  bankId: z.int().positive(),
  media: z.array(z.int().positive()).optional(),
  every: z.int().min(1).default(1),
  /** Output folder; default: <project>/exports/segment-<bank>. */
  outDir: z.string().min(1).optional(),
  k: z.int().min(1).max(200).default(30),
  temperature: z.number().positive().default(0.02),
  /** Size of the written masks: the stored frames' (default) or the source file's (nearest-neighbour). */
  resolution: z.enum(['frame', 'source']).default('frame'),
  /**
   * Truth masks (grayscale class ids) of some frames: these frames are segmented too, and scored at the resolution
   * of the written masks (the source's with resolution 'source', as benchmarks score; the frame's otherwise).
   */
  truth: z
    .array(z.object({ mediaId: z.int().positive(), frameIdx: z.int().min(0), mask: z.string().min(1) }))
    .optional(),
});
export type SegmentBatchArgs = z.output<typeof SegmentBatchArgs>;

/** Moved to store/ (track/ needs it too); kept here for existing importers. */
export { sourceSize };

export const segmentBatchJob: JobHandler<SegmentBatchArgs, { frames: number }> = {
  kind: 'segment.batch',
  args: SegmentBatchArgs,
  title: (a) => `Segment ${a.media ? `${a.media.length} item(s)` : 'the library'} with bank #${a.bankId}`,
  async run(ctx) {
    const { project, args: a } = ctx;
    const bank = project.features.bank(a.bankId);
    if (!bank) throw new FlaneurError('NOT_FOUND', `No memory bank ${a.bankId}.`, { field: 'bankId' });
    const out = prepareFolderDestination(
      a.outDir ?? path.join(project.dir, 'exports', `segment-${a.bankId}`),
      'outDir',
    );
    fs.mkdirSync(path.join(out, 'masks'), { recursive: true });
    const media = (a.media ?? project.media.list({ status: 'done', limit: 100000 }).items.map((m) => m.id))
      .map((id) => project.media.get(id))
      .filter((m): m is NonNullable<typeof m> => Boolean(m && m.status === 'done' && m.frameWidth && m.frameHeight));
    const truthOf = new Map((a.truth ?? []).map((t) => [`${t.mediaId}:${t.frameIdx}`, t.mask]));
    const todo = media.flatMap((m) =>
      [...Array(m.frameCount).keys()]
        .filter((i) => i % a.every === 0 || truthOf.has(`${m.id}:${i}`))
        .map((i) => ({ m, i })),
    );
    ctx.phase('segmenting', { total: todo.length, unit: 'frames' });
    const C = bank.classes.length;
    const coco = new CocoWriter(bank.classes);
    const total = new IoUMeter(C);
    const recorded = ctx.finishedKeys();
    let scores: ItemResult[] = [];
    const knn = new ExactKnn(() => ctx.runtime);
    // Frames without stored features are extracted on the way, with one warm session for the whole job.
    const extractors = new ExtractorCache(() => ctx.runtime);
    let done = 0;
    try {
      for (const { m, i } of todo) {
        ctx.throwIfAborted();
        const w = m.frameWidth as number;
        const h = m.frameHeight as number;
        const src = a.resolution === 'source' ? sourceSize(m) : { width: w, height: h };
        const file = path.join(out, 'masks', `${m.id}-${frameFileStem(i)}.png`);
        let mask: Uint8Array;
        let written: Uint8Array;
        if (fs.existsSync(file) && src.width === w && src.height === h) {
          mask = (await readMask(file, w, h, { kind: 'ids' }, 256)).labels;
          written = mask;
        } else {
          const r = await segmentFrame(project, knn, {
            extractors,
            bankId: a.bankId,
            mediaId: m.id,
            frameIdx: i,
            k: a.k,
            temperature: a.temperature,
          });
          mask = r.mask as Uint8Array;
          // At the source's resolution the patch scores are upsampled again (bilinear, as at the frame's): finer
          // boundaries than scaling the frame-size mask.
          written =
            r.scores && r.grid && (src.width !== w || src.height !== h)
              ? upsampleArgmax(r.scores, r.grid, C, src.width, src.height)
              : mask;
          writeReplacing(file, encodePng(written, src.width, src.height, 6, 1));
        }
        const truthFile = truthOf.get(`${m.id}:${i}`);
        if (truthFile) {
          // The written mask against the truth read at its size: the source's (benchmarks score at the images' own
          // resolution), or the frame's as the Segment view scores.
          const read = await readMask(truthFile, src.width, src.height, { kind: 'auto' }, C, bank.classes);
          const truth = read.labels;
          const one = new IoUMeter(C);
          one.add(written, truth);
          total.add(written, truth);
          const key = `iou:${m.id}:${i}`;
          if (!recorded.has(key))
            scores.push({
              key,
              status: 'ok',
              result: {
                mediaId: m.id,
                frameIdx: i,
                mean: one.mean(),
                perClass: one.perClass(),
                size: [src.width, src.height],
                ...(read.warnings.length ? { warnings: read.warnings } : {}),
              },
            });
        }
        coco.add(
          {
            file_name: `${m.path}#frame=${frameNumber(i)}`,
            width: src.width,
            height: src.height,
            media_id: m.id,
            frame_index: i,
          },
          written,
        );
        done++;
        ctx.progress(done, todo.length);
        if (done % 25 === 0) {
          ctx.commit(scores, { frames: done });
          scores = [];
        }
      }
    } finally {
      await knn.release();
      await extractors.release();
    }
    const cocoFile = path.join(out, 'coco.json');
    writeReplacing(cocoFile, JSON.stringify(coco.toJSON()));
    const scored = a.truth?.length
      ? { mean: total.mean(), perClass: total.perClass(), classes: bank.classes, resolution: a.resolution }
      : null;
    ctx.commit(
      [...scores, { key: 'export', status: 'ok', result: { dir: out, coco: cocoFile, masks: done, iou: scored } }],
      {
        frames: done,
      },
    );
  },
};

/**
 * Writes `file` in the output folder the user chose without following links planted there: the bytes go to a new
 * temporary file (created exclusively, so an existing name or link is never opened) that then replaces `file`
 * itself; a symlink named coco.json is replaced, its target left untouched.
 */
function writeReplacing(file: string, data: string | Uint8Array): void {
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  fs.writeFileSync(tmp, data, { flag: 'wx' });
  try {
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}
