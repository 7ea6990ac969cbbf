/** Counting with a trained UnCo counter (`flaneur count --counter JOB`) and training one (`flaneur train --objective unco`). */
import fs from 'node:fs';
import type { CommandArgs, MediaInfo } from '../../api/contract.js';
import { UsageError } from '../errors.js';
import { formatJob, frameNumber, type Session, splitFrameRef } from '../session.js';

/** `flaneur count … --counter JOB`: the density map's sum; with --box exemplars, else automatic (a shots-0 counter). */
export async function countWithCounter(s: Session, jobId: number): Promise<void> {
  const ref = s.inv.positionals[0] as string;
  const { media, frameIdx } =
    splitFrameRef(ref).frame !== null ? await s.frame(ref) : { media: await s.itemOrAdd(ref), frameIdx: 0 };
  const boxes = s.boxes(media);
  const r = await s.call('count.unco', { jobId, mediaId: media.id, frameIdx, boxes });
  const counter = (await s.call('count.counters', {})).find((c) => c.jobId === jobId);
  s.out(
    { item: media.name, mediaId: media.id, frame: frameNumber(frameIdx), method: 'unco', counter, ...r },
    () =>
      `${r.count.toFixed(1)} in ${media.name}:${frameNumber(frameIdx)} (UnCo counter of job ${jobId}${boxes.length ? `, ${boxes.length} exemplar${boxes.length === 1 ? '' : 's'}` : ', automatic'}; density map ${r.side}x${r.side})`,
  );
}

/**
 * `flaneur count video ITEM --counter JOB`: every (Nth) frame counted with the counter, the exemplars boxed on one
 * frame (`--frame`) and taken from it for every frame; the same CSV as the similarity method (counts with a decimal).
 */
export async function countVideoWithCounter(s: Session, jobId: number, media: MediaInfo, exemplarFrameIdx: number) {
  const every = s.num('every', { int: true, min: 1 }) ?? 1;
  const boxes = s.boxes(media);
  const rows: { frame: number; count: number }[] = [];
  for (let f = 0; f < media.frameCount; f += every) {
    const r = await s.call('count.unco', { jobId, mediaId: media.id, frameIdx: f, boxes, exemplarFrameIdx });
    rows.push({ frame: frameNumber(f), count: Number(r.count.toFixed(2)) });
  }
  const out = s.opt('out') as string;
  fs.writeFileSync(
    out,
    `${['media_id,frame,count', ...rows.map((r) => `${media.id},${r.frame},${r.count}`)].join('\n')}\n`,
  );
  s.out(
    { out, method: 'unco', jobId, frames: rows.length, counts: rows },
    () => `${rows.length} frame counts in ${out} (UnCo counter of job ${jobId})`,
  );
}

/** `flaneur train --objective unco`: the `train.unco` job from the options of `flaneur train`. */
export async function trainUnco(s: Session): Promise<void> {
  const model = s.num('base', { int: true, min: 1 }) ?? s.num('from-model', { int: true, min: 1 });
  const media = s
    .opt('media')
    ?.split(',')
    .map((x) => {
      const id = Number(x);
      if (!Number.isInteger(id) || id < 1) throw new UsageError(`train: --media takes media ids like 3,4, not ${x}`);
      return id;
    });
  const steps = s.num('steps', { int: true, min: 1 });
  const batch = s.num('batch', { int: true, min: 1 });
  const seed = s.num('seed', { int: true, min: 0 });
  const shots = s.num('shots', { int: true, min: 0, max: 3 });
  const args: CommandArgs<'train.unco'> = {
    ...(model ? { model } : {}),
    ...(media ? { media } : {}),
    ...(steps ? { steps } : {}),
    ...(batch ? { batch } : {}),
    ...(seed !== undefined ? { seed } : {}),
    ...(shots !== undefined ? { shots } : {}),
  };
  const done = await s.waitJob(await s.call('train.unco', args));
  const counter = (await s.call('count.counters', {})).find((c) => c.jobId === done.id);
  s.out({ ...done, counter }, () =>
    [
      formatJob(done),
      counter
        ? `counter of job ${done.id}: ${counter.name} (held-out collage MAE ${counter.heldoutMae?.toFixed(2)} vs ${counter.heldoutMeanMae?.toFixed(2)} always guessing their mean); count with \`flaneur count IMAGE --counter ${done.id}\``
        : 'no counter exported',
    ].join('\n'),
  );
}
