/** The catalog: hashing, ingest, listing, media tools. */
import type { CommandArgs } from '../../api/contract.js';
import { UsageError } from '../errors.js';
import { command, formatJob } from '../session.js';

export const hash = command(async (s) => {
  const algorithm = s.opt('algorithm') as CommandArgs<'ingest.hashFolder'>['algorithm'];
  const job = await s.call('ingest.hashFolder', {
    root: s.inv.positionals[0] as string,
    ...(algorithm ? { algorithm } : {}),
  });
  const done = await s.waitJob(job);
  s.out(done, () => formatJob(done));
});

export const add = command(async (s) => {
  const policies = ['fps', 'every', 'keyframes', 'scene'].filter((k) => s.inv.values[k] !== undefined);
  if (policies.length > 1)
    throw new UsageError(`add: choose one sampling policy, not ${policies.map((p) => `--${p}`).join(' and ')}`);
  const sampling: CommandArgs<'library.add'>['sampling'] = s.flag('keyframes')
    ? { policy: 'keyframes' }
    : s.opt('every')
      ? { policy: 'every', n: s.num('every', { int: true, min: 1 }) as number }
      : s.opt('scene')
        ? { policy: 'scene', threshold: s.num('scene', { min: 0.01, max: 1 }) as number }
        : { policy: 'fps', fps: s.num('fps', { min: 0.001, max: 240 }) ?? 1 };
  const job = await s.call('library.add', {
    paths: s.inv.positionals,
    sampling,
    frameSize: { mode: s.flag('square') ? 'square' : 'short-side', size: s.num('size', { int: true }) ?? 224 },
  });
  const done = await s.waitJob(job);
  s.out(done, () => formatJob(done));
});

export const library = command(async (s) => {
  const list = await s.call('library.list', { limit: 1000, ...(s.flag('problems') ? { withProblem: true } : {}) });
  s.out(list, () =>
    [
      `${list.counts.images} images, ${list.counts.videos} videos, ${list.counts.frames} frames, ${list.counts.failed} failed`,
      ...list.items.map(
        (m) =>
          `#${m.id}\t${m.status}\t${m.kind}\t${m.frameCount} frames${m.frameWidth ? ` ${m.frameWidth}x${m.frameHeight}` : ''}\t${m.name}${m.problem ? `\t[${m.problem.code}] ${m.problem.message}` : ''}`,
      ),
    ].join('\n'),
  );
});

export const mediaTools = command(
  async (s) => {
    const t = await s.call('media.tools', {});
    s.out(
      t,
      () =>
        `ffmpeg:  ${t.ffmpeg.version} (${t.ffmpeg.source}: ${t.ffmpeg.path})\nffprobe: ${t.ffprobe.version} (${t.ffprobe.source}: ${t.ffprobe.path})`,
    );
  },
  { project: false },
);
