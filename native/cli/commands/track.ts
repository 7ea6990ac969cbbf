/** Discovering and tracking objects through a video (Dora), with the Player's exports. */
import fs from 'node:fs';
import path from 'node:path';
import type { CommandArgs } from '../../api/contract.js';
import { UsageError } from '../errors.js';
import { command, FIRST_FRAME, formatJob, type Session } from '../session.js';

export const track = command(async (s) => {
  const [media] = await s.items([s.inv.positionals[0] as string]);
  if (!media) return;
  const objects = s.num('objects', { int: true, min: 1, max: 16 });
  const size = s.num('size', { int: true, min: 16, max: 2048 });
  const seed = s.num('seed', { int: true, min: 0 });
  const job = await s.call('track.start', {
    modelId: await s.modelId(),
    mediaId: media.id,
    ...(objects ? { objects } : {}),
    ...(size ? { size } : {}),
    ...(seed !== undefined ? { seed } : {}),
  });
  const done = await s.waitJob(job);
  const run = (await s.jobItems(done.id)).find((i) => i.key === 'run')?.result as {
    runId: number;
    objects: number;
    frames: number;
  };
  const mot = s.opt('mot');
  const masksDir = s.opt('masks');
  let motRows: number | null = null;
  if (mot) {
    // The same bytes as the Player's "Export MOT CSV" download.
    const { csv } = await s.call('track.mot', { runId: run.runId });
    fs.writeFileSync(mot, csv);
    motRows = csv.split('\n').length - 1;
  }
  // At the video's own resolution, as segment apply writes its masks.
  const masks = masksDir
    ? await s.call('track.exportMasks', { runId: run.runId, dir: masksDir, resolution: 'source' })
    : null;
  s.out({ job: done, ...run, mot: mot ? path.resolve(mot) : null, motRows, masks }, () =>
    [
      formatJob(done),
      `track run #${run.runId}: ${run.objects} objects over ${run.frames} frames`,
      ...(mot ? [`${motRows} boxes in ${mot}`] : []),
      ...(masks ? [`${masks.frames} instance masks in ${masks.dir}`] : []),
    ].join('\n'),
  );
});

/** `flaneur track propagate`: start masks followed through the video (DINO's protocol; a job). */
export const propagate = command(async (s) => {
  const [media] = await s.items([s.inv.positionals[0] as string]);
  if (!media) return;
  const masks = s.opt('masks');
  const trackRun = s.num('track-run', { int: true, min: 1 });
  if (!masks && trackRun === undefined)
    throw new UsageError('track propagate: give the start masks: --masks FILE.png|DIR or --track-run R');
  const from = s.num('from-frame', { int: true, min: FIRST_FRAME });
  let fromFrame = from === undefined ? 0 : from - FIRST_FRAME;
  let start: CommandArgs<'track.propagate'>['start'];
  if (masks) {
    let file = masks;
    if (fs.existsSync(masks) && fs.statSync(masks).isDirectory()) {
      // A folder of masks named by frame (DAVIS: 00000.png is the first frame): the one of --from-frame, else the first.
      const pngs = fs
        .readdirSync(masks)
        .filter((f) => /\.png$/i.test(f))
        .sort();
      const pick =
        from === undefined ? pngs[0] : pngs.find((f) => /^\d+\.png$/i.test(f) && Number.parseInt(f, 10) === fromFrame);
      if (!pick)
        throw new UsageError(
          `track propagate: no mask in ${masks}${from === undefined ? '' : ` for frame ${from} (${String(fromFrame).padStart(5, '0')}.png)`}`,
        );
      if (from === undefined && /^\d+\.png$/i.test(pick)) fromFrame = Number.parseInt(pick, 10);
      file = path.join(masks, pick);
    }
    start = { mask: path.resolve(file) };
  } else {
    start = { trackRun: trackRun as number };
  }
  const params = propagationOptions(s);
  const direction = s.opt('direction');
  if (direction && !['forward', 'backward', 'both'].includes(direction))
    throw new UsageError(`track propagate: --direction is forward, backward or both, not ${direction}`);
  const truth = s.opt('truth');
  const out = s.opt('out');
  const every = s.num('every', { int: true, min: 1, max: 1000 });
  const job = await s.call('track.propagate', {
    modelId: await s.modelId(),
    mediaId: media.id,
    start,
    fromFrame,
    ...params,
    ...(every ? { every } : {}),
    ...(direction ? { direction: direction as 'forward' | 'backward' | 'both' } : {}),
    ...(out ? { outDir: path.resolve(out) } : {}),
    ...(truth ? { truth: path.resolve(truth) } : {}),
  });
  const done = await s.waitJob(job);
  const run = (await s.jobItems(done.id)).find((i) => i.key === 'run')?.result as {
    dir: string;
    frames: number;
    objects: number;
    coco: string;
    mot: string;
    score: { J: number; F: number; JF: number; frames: number } | null;
  };
  s.out({ job: done, ...run }, () =>
    [
      formatJob(done),
      `${run.objects} object(s) over ${run.frames} frames: palette PNGs in ${run.dir}, COCO RLE ${run.coco}, MOT boxes ${run.mot}`,
      ...(run.score
        ? [
            `J ${run.score.J.toFixed(3)}  F ${run.score.F.toFixed(3)}  J&F ${run.score.JF.toFixed(3)} (${run.score.frames} frames scored)`,
          ]
        : []),
    ].join('\n'),
  );
});

/** The propagation parameters shared by `track propagate` and `eval davis` (unset: the engine's defaults). */
export function propagationOptions(s: Session): Partial<CommandArgs<'eval.davis'>> {
  const context = s.num('context', { int: true, min: 0, max: 64 });
  const topk = s.num('topk', { int: true, min: 1, max: 100 });
  const radius = s.num('radius', { int: true, min: 0, max: 256 });
  const temperature = s.num('temperature', { min: 1e-6, max: 10 });
  const firstRadius = s.num('first-radius', { int: true, min: 0, max: 256 });
  const firstPrior = s.num('first-prior', { min: 0, max: 1 });
  const reidentify = s.opt('reidentify') === 'off' ? null : s.num('reidentify', { min: -1, max: 1 });
  const size = s.num('size', { int: true, min: 224, max: 896 });
  const upsample = s.opt('upsample');
  if (upsample && upsample !== 'input' && upsample !== 'source')
    throw new UsageError(`${s.inv.command.name}: --upsample is input or source, not ${upsample}`);
  // DINO's protocol exactly (the papers' figures), the options given beside it on top.
  const dino = s.flag('dino')
    ? { context: 7, topk: 5, radius: radius ?? 12, temperature: 0.1, firstPrior: 0, reidentify: null }
    : {};
  return {
    ...dino,
    ...(s.flag('dino') ? { firstRadius: firstRadius ?? radius ?? 12 } : {}),
    ...(firstRadius !== undefined ? { firstRadius } : {}),
    ...(firstPrior !== undefined ? { firstPrior } : {}),
    ...(reidentify !== undefined ? { reidentify } : {}),
    ...(context !== undefined ? { context } : {}),
    ...(topk !== undefined ? { topk } : {}),
    ...(radius !== undefined ? { radius } : {}),
    ...(temperature !== undefined ? { temperature } : {}),
    ...(size !== undefined ? { size } : {}),
    ...(upsample ? { upsample: upsample as 'input' | 'source' } : {}),
  };
}
