/**
 * Job: segment every frame (or every Nth) of chosen media with a bank, writing class-id PNG masks and a COCO JSON
 * file; resumable per frame (frames whose PNG exists are read back, not recomputed).
 */
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { FlaneurError } from '../api/errors.js';
import { ExtractorCache } from '../features/extractor-cache.js';
import { ExactKnn } from '../features/knn.js';
import type { JobHandler } from '../jobs/types.js';
import { encodePng } from '../media/png.js';
import { prepareFolderDestination } from '../store/destination.js';
import { CocoWriter } from './export.js';
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
});
export type SegmentBatchArgs = z.output<typeof SegmentBatchArgs>;

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
    const todo = media.flatMap((m) =>
      [...Array(m.frameCount).keys()].filter((i) => i % a.every === 0).map((i) => ({ m, i })),
    );
    ctx.phase('segmenting', { total: todo.length, unit: 'frames' });
    const coco = new CocoWriter(bank.classes);
    const knn = new ExactKnn();
    // Frames without stored features are extracted on the way, with one warm session for the whole job.
    const extractors = new ExtractorCache(() => ctx.runtime);
    let done = 0;
    try {
      for (const { m, i } of todo) {
        ctx.throwIfAborted();
        const w = m.frameWidth as number;
        const h = m.frameHeight as number;
        const file = path.join(out, 'masks', `${m.id}-${String(i).padStart(6, '0')}.png`);
        let mask: Uint8Array;
        if (fs.existsSync(file)) {
          mask = await readMask(file, w, h, { kind: 'gray' }, 256);
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
          fs.writeFileSync(`${file}.tmp`, encodePng(mask, w, h, 6, 1));
          fs.renameSync(`${file}.tmp`, file);
        }
        coco.add({ file_name: `${m.path}#frame=${i}`, width: w, height: h, media_id: m.id, frame_index: i }, mask);
        done++;
        ctx.progress(done, todo.length);
        if (done % 25 === 0) ctx.commit([], { frames: done });
      }
    } finally {
      await knn.release();
      await extractors.release();
    }
    const cocoFile = path.join(out, 'coco.json');
    fs.writeFileSync(cocoFile, JSON.stringify(coco.toJSON()));
    ctx.commit([{ key: 'export', status: 'ok', result: { dir: out, coco: cocoFile, masks: done } }], { frames: done });
  },
};
