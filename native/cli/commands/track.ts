/** Discovering and tracking objects through a video (Dora), with the Player's exports. */
import fs from 'node:fs';
import path from 'node:path';
import { command, formatJob } from '../session.js';

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
