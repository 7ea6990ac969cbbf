/** Counting with a trained UnCo counter (`flaneur count --counter JOB`) and training one (`flaneur train --objective unco`). */
import fs from 'node:fs';
import path from 'node:path';
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
 * `flaneur count video ITEM --counter JOB`: the `count.uncoVideo` job (every (Nth) frame counted with the counter,
 * the exemplars boxed on one frame (`--frame`) and taken from it for every frame), followed until it ends; the CSV
 * of the similarity method (media_id, frame, time_s, count), counts with two decimals.
 */
export async function countVideoWithCounter(s: Session, jobId: number, media: MediaInfo, exemplarFrameIdx: number) {
  const every = s.num('every', { int: true, min: 1 }) ?? 1;
  const boxes = s.boxes(media);
  const done = await s.waitJob(
    await s.call('count.uncoVideo', { jobId, mediaId: media.id, boxes, exemplarFrameIdx, every }),
  );
  const rows = (await s.call('count.results', { jobId: done.id })).map((r) => ({
    ...r,
    frame: frameNumber(r.frameIdx),
    count: Number(r.count.toFixed(2)),
  }));
  const out = s.opt('out') as string;
  fs.writeFileSync(
    out,
    `${['media_id,frame,time_s,count', ...rows.map((r) => `${r.mediaId},${r.frame},${r.pts.toFixed(3)},${r.count}`)].join('\n')}\n`,
  );
  s.out({ job: done, out, method: 'unco', counter: jobId, frames: rows.length, counts: rows }, () =>
    [formatJob(done), `${rows.length} frame counts in ${out} (UnCo counter of job ${jobId})`].join('\n'),
  );
}

/**
 * `flaneur train --objective unco --preview DIR`: the collages of these settings without training (train.uncoPreview):
 * collage-K.png, density-K.png and counts.json (N, the density target's sum, distractors, exemplar boxes).
 */
async function previewUnco(s: Session, dir: string, args: CommandArgs<'train.uncoPreview'>): Promise<void> {
  const collages = s.num('collages', { int: true, min: 1, max: 16 });
  const r = await s.call('train.uncoPreview', { ...args, ...(collages ? { collages } : {}) });
  fs.mkdirSync(dir, { recursive: true });
  const png = (url: string) => Buffer.from(url.slice(url.indexOf(',') + 1), 'base64');
  const files = r.collages.map((k, i) => {
    const [collage, density] = [`collage-${i + 1}.png`, `density-${i + 1}.png`];
    fs.writeFileSync(path.join(dir, collage), png(k.png));
    fs.writeFileSync(path.join(dir, density), png(k.densityPng));
    const { png: _p, densityPng: _d, ...rest } = k;
    return { collage, density, ...rest };
  });
  const { collages: _c, ...library } = r;
  const summary = { ...library, seed: args.seed ?? 0, collages: files };
  fs.writeFileSync(path.join(dir, 'counts.json'), `${JSON.stringify(summary, null, 2)}\n`);
  s.out({ dir, ...summary }, () =>
    [
      `${files.length} Self-Collages in ${dir} (from ${r.objects} objects of ${r.types} types found in ${r.frames} frames):`,
      ...files.map(
        (f) =>
          `  ${f.collage}: N = ${f.count} (density target sums to ${f.targetSum.toFixed(2)}), ${f.distractors} distractors${f.overlapping ? ', overlapping' : ''}`,
      ),
    ].join('\n'),
  );
}

/** The options of `flaneur train --objective unco` shared by training, `--preview` and `train export`. */
function uncoOptions(s: Session) {
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
  const collageArgs = {
    ...(model ? { model } : {}),
    ...(media ? { media } : {}),
    ...(seed !== undefined ? { seed } : {}),
  };
  const args: CommandArgs<'train.unco'> = {
    ...collageArgs,
    ...(steps ? { steps } : {}),
    ...(batch ? { batch } : {}),
    ...(shots !== undefined ? { shots } : {}),
  };
  return { collageArgs, args };
}

/**
 * `flaneur train export DIR --objective unco`: the train.uncoExport job (collages built here, the frozen backbone,
 * the decoder's start and the PyTorch program), followed until it ends.
 */
export async function exportUnco(s: Session, dir: string): Promise<void> {
  const pool = s.num('pool', { int: true, min: 1 });
  const done = await s.waitJob(
    await s.call('train.uncoExport', { ...uncoOptions(s).args, dir, ...(pool ? { pool } : {}) }),
  );
  s.out(
    done,
    () =>
      `${formatJob(done)}\nRun it where the GPUs are:  cd ${dir} && torchrun --standalone --nproc_per_node=N train_unco.py --config unco.json\n(see ${path.join(dir, 'README.md')}; bring the counter back with \`flaneur train import ${dir}\`)`,
  );
}

/** `flaneur train import DIR` of an UnCo export: its trained decoder as a counter. */
export async function importUnco(s: Session, from: string): Promise<void> {
  const name = s.opt('name');
  const done = await s.waitJob(await s.call('train.uncoImport', { path: from, ...(name ? { name } : {}) }));
  const counter = (await s.call('count.counters', {})).find((c) => c.jobId === done.id);
  s.out({ job: done, counter }, () =>
    [
      formatJob(done),
      counter
        ? `counter of job ${done.id}: ${counter.name}; count with \`flaneur count IMAGE --counter ${done.id}\``
        : 'no counter brought back',
    ].join('\n'),
  );
}

/** `flaneur train --objective unco`: the `train.unco` job from the options of `flaneur train`. */
export async function trainUnco(s: Session): Promise<void> {
  const { collageArgs, args } = uncoOptions(s);
  const preview = s.opt('preview');
  if (preview !== undefined) return previewUnco(s, path.resolve(preview), collageArgs);
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
