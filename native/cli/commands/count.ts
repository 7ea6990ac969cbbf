/** Counting: from exemplar boxes or automatically on one frame, and over every frame of a video. */
import fs from 'node:fs';
import { UsageError } from '../errors.js';
import { command, formatJob, frameNumber, splitFrameRef } from '../session.js';
import { countVideoWithCounter, countWithCounter } from './count-unco.js';

export const count = command(async (s) => {
  const counter = s.num('counter', { int: true, min: 1 });
  if (counter !== undefined) return countWithCounter(s, counter);
  const ref = s.inv.positionals[0] as string;
  const auto = s.flag('auto');
  if (auto === s.list('box').length > 0) throw new UsageError('count: give --box x,y,w,h (repeatable) or --auto');
  const { media, frameIdx } =
    splitFrameRef(ref).frame !== null ? await s.frame(ref) : { media: await s.itemOrAdd(ref), frameIdx: 0 };
  const given = s.boxes(media);
  const negatives = s.boxes(media, 'negative');
  if (auto && negatives.length > 0) throw new UsageError('count: --negative goes with --box (exemplar counting)');
  const px = s.pixels(media);
  const roi = polygon(s.opt('roi'), px);
  const modelId = await s.modelId();
  const threshold = s.num('threshold', { min: -2, max: 2 });
  const size = s.num('size', { int: true, min: 16, max: 2048 });
  const r = auto
    ? await s.call('count.auto', {
        modelId,
        mediaId: media.id,
        frameIdx,
        ...(size ? { scale: size } : {}),
        ...(roi ? { roi } : {}),
      })
    : await s.call('count.exemplar', {
        modelId,
        mediaId: media.id,
        frameIdx,
        boxes: given,
        ...(negatives.length > 0 ? { negatives } : {}),
        ...(roi ? { roi } : {}),
        ...(size ? { size } : {}),
        ...(threshold !== undefined ? { threshold } : {}),
      });
  const result = {
    item: media.name,
    mediaId: media.id,
    frame: frameNumber(frameIdx),
    count: r.count,
    threshold: r.threshold,
    range: r.range,
    /** The pixels of the boxes and points: the source file's, or the stored frame's with --stored-pixels. */
    pixels: s.flag('stored-pixels') ? ('stored' as const) : ('source' as const),
    width: px.width,
    height: px.height,
    points: r.points.map((p) => ({ ...p, x: p.x / px.sx, y: p.y / px.sy })),
    /** The input size counted at and its tiles (null for fixed sizes). */
    scale: r.scale,
  };
  s.out(
    result,
    () =>
      `${r.count} in ${media.name}:${frameNumber(frameIdx)} (threshold ${r.threshold.toFixed(3)}, similarities ${r.range[0].toFixed(3)} to ${r.range[1].toFixed(3)}${r.scale ? `; at ${r.scale.inputWidth}x${r.scale.inputHeight} px in ${r.scale.tiles} tile${r.scale.tiles === 1 ? '' : 's'}` : ''}${roi ? '; inside the region' : ''})`,
  );
});

/** `--roi x,y,x,y,x,y…` in typed pixels → the polygon's corners in stored-frame pixels. */
export function polygon(raw: string | undefined, px: { sx: number; sy: number }): [number, number][] | undefined {
  if (raw === undefined) return undefined;
  const v = raw.split(',').map((p) => Number(p.trim()));
  if (v.length < 6 || v.length % 2 !== 0 || v.some((p) => !Number.isFinite(p)))
    throw new UsageError(
      `count: --roi takes the corners of a polygon as x,y pairs, at least 3 (x1,y1,x2,y2,x3,y3), not ${raw}`,
    );
  return Array.from({ length: v.length / 2 }, (_, i) => [
    (v[2 * i] as number) * px.sx,
    (v[2 * i + 1] as number) * px.sy,
  ]);
}

/** The count CSV of the Count view: media_id, frame, time_s, count. */
export function countsCsv(rows: readonly { mediaId: number; frameIdx: number; pts: number; count: number }[]): string {
  return [
    'media_id,frame,time_s,count',
    ...rows.map((r) => `${r.mediaId},${frameNumber(r.frameIdx)},${r.pts.toFixed(3)},${r.count}`),
  ].join('\n');
}

export const video = command(async (s) => {
  const [media] = await s.items([s.inv.positionals[0] as string]);
  if (!media) return;
  const { frameIdx } = await s.frame(`${media.id}:${s.num('frame', { int: true }) ?? 1}`);
  const counter = s.num('counter', { int: true, min: 1 });
  if (counter !== undefined) return countVideoWithCounter(s, counter, media, frameIdx);
  const boxes = s.boxes(media);
  if (boxes.length === 0)
    throw new UsageError(
      'count video: missing --box (the exemplar to count; only --counter of an automatic counter needs none)',
    );
  const every = s.num('every', { int: true, min: 1 });
  const threshold = s.num('threshold', { min: -2, max: 2 });
  const negatives = s.boxes(media, 'negative');
  const roi = polygon(s.opt('roi'), s.pixels(media));
  const job = await s.call('count.batch', {
    modelId: await s.modelId(),
    exemplar: { mediaId: media.id, frameIdx, boxes },
    media: [media.id],
    ...(negatives.length > 0 ? { negatives } : {}),
    ...(roi ? { roi } : {}),
    ...(every ? { every } : {}),
    ...(threshold !== undefined ? { threshold } : {}),
  });
  const done = await s.waitJob(job);
  const rows = await s.call('count.results', { jobId: done.id });
  const out = s.opt('out') as string;
  fs.writeFileSync(out, `${countsCsv(rows)}\n`);
  s.out(
    { job: done, out, frames: rows.length, counts: rows.map((r) => ({ ...r, frame: frameNumber(r.frameIdx) })) },
    () => [formatJob(done), `${rows.length} frame counts in ${out}`].join('\n'),
  );
});
