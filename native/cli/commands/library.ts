/** The catalog: hashing, ingest, listing, media tools. */
import type { CommandArgs, JobInfo, MediaInfo } from '../../api/contract.js';
import { UsageError } from '../errors.js';
import { command, formatJob, type Session } from '../session.js';

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
  const dups = await duplicatesOf(s, [done]);
  s.out({ ...done, duplicates: dups }, () =>
    [
      formatJob(done),
      ...dups.slice(0, 20).map((d) => `skipped ${d.path}: a duplicate of #${d.duplicateOf} ${d.of} (same content)`),
      ...(dups.length > 20 ? [`… and ${dups.length - 20} more duplicates (\`flaneur library --problems\`)`] : []),
    ].join('\n'),
  );
});

interface Duplicate {
  path: string;
  duplicateOf: number;
  of: string;
}

/** Files these import jobs skipped because an item of the catalog has the same content, with that item. */
async function duplicatesOf(s: Session, jobs: readonly JobInfo[]): Promise<Duplicate[]> {
  const found = new Map<string, number>();
  for (const j of jobs)
    for (const i of await s.jobItems(j.id, 'skipped')) {
      const id = (i.result as { duplicateOf?: number } | null)?.duplicateOf;
      if (i.error?.code === 'DUPLICATE' && typeof id === 'number') found.set(i.key, id);
    }
  const items = await s.byId([...found.values()]);
  return [...found].flatMap(([p, id]) => {
    const m = items.get(id);
    return m && m.path !== p ? [{ path: p, duplicateOf: id, of: m.name }] : [];
  });
}

export const library = command(async (s) => {
  const limit = s.num('limit', { int: true, min: 1 });
  const offset = s.num('offset', { int: true, min: 0 }) ?? 0;
  const problems = s.flag('problems');
  // Pages of 1,000 (the engine's page) until --limit or the end: never a silent stop.
  const items: MediaInfo[] = [];
  let list = await s.call('library.list', { offset, limit: Math.min(1000, limit ?? 1000), withProblem: problems });
  items.push(...list.items);
  while (list.items.length > 0 && offset + items.length < list.total && (limit === undefined || items.length < limit)) {
    list = await s.call('library.list', {
      offset: offset + items.length,
      limit: Math.min(1000, (limit ?? Number.POSITIVE_INFINITY) - items.length),
      withProblem: problems,
    });
    items.push(...list.items);
  }
  const duplicates = problems
    ? await duplicatesOf(
        s,
        await s
          .call('jobs.list', { states: ['done', 'failed', 'cancelled', 'interrupted'], limit: 1000 })
          .then((js) => js.filter((j) => j.kind === 'ingest.media')),
      )
    : [];
  const partial = offset > 0 || offset + items.length < list.total;
  s.out({ total: list.total, offset, items, counts: list.counts, ...(problems ? { duplicates } : {}) }, () =>
    [
      `${list.counts.images} images, ${list.counts.videos} videos, ${list.counts.frames} frames, ${list.counts.failed} failed`,
      ...(partial
        ? [
            `items ${items.length ? offset + 1 : 0} to ${offset + items.length} of ${list.total} (--offset N for others)`,
          ]
        : []),
      ...items.map(
        (m) =>
          `#${m.id}\t${m.status}\t${m.kind}\t${m.frameCount} frames${m.frameWidth ? ` ${m.frameWidth}x${m.frameHeight}` : ''}\t${m.name}${m.problem ? `\t[${m.problem.code}] ${m.problem.message}` : ''}`,
      ),
      ...duplicates.map((d) => `duplicate\t${d.path}\tsame content as #${d.duplicateOf} ${d.of} (skipped)`),
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
