/** Similar frames, similar patches, near-duplicates. */
import { CliError } from '../errors.js';
import { command, frameNumber, type Session } from '../session.js';

async function named<T extends { mediaId: number; frameIdx: number }>(s: Session, rows: readonly T[]) {
  const names = await s.byId(rows.map((r) => r.mediaId));
  return rows.map((r) => ({
    ...r,
    item: names.get(r.mediaId)?.name ?? String(r.mediaId),
    frame: frameNumber(r.frameIdx),
  }));
}

export const similar = command(async (s) => {
  const { media, frameIdx, frame } = await s.frame(s.inv.positionals[0] as string, 1);
  const k = s.num('k', { int: true, min: 1, max: 200 });
  const features = s.vectors();
  const r = await s.call('retrieve.images', {
    runId: await s.runId(),
    mediaId: media.id,
    frameIdx,
    ...(k ? { k } : {}),
    ...(features ? { features } : {}),
  });
  const results = await named(s, r.results);
  s.out({ query: { mediaId: media.id, item: media.name, frame }, runId: r.runId, features: r.features, results }, () =>
    results.map((x) => `${x.sim.toFixed(4)}\t${x.item}:${x.frame}`).join('\n'),
  );
});

export const patch = command(async (s) => {
  const { media, frameIdx, frame } = await s.frame(s.inv.positionals[0] as string);
  const [x, y] = s.numbers('at', s.opt('at') as string, 2) as [number, number];
  // In the source file's pixels (or the stored frame's with --stored-pixels): the same place of the picture.
  const { width: w, height: h, words } = s.pixels(media);
  if (x < 0 || y < 0 || x >= w || y >= h)
    throw new CliError(`The point ${x},${y} is not inside ${words}.`, 'INVALID_ARGUMENT');
  const k = s.num('k', { int: true, min: 1, max: 100 });
  const r = await s.call('retrieve.patches', {
    runId: await s.runId(),
    mediaId: media.id,
    frameIdx,
    point: [x / w, y / h],
    ...(k ? { k } : {}),
  });
  const row = Math.floor(r.patch / r.grid.gridW);
  const col = r.patch % r.grid.gridW;
  const results = await named(s, r.results);
  s.out({ query: { mediaId: media.id, item: media.name, frame, x, y, patch: r.patch, row, col }, ...r, results }, () =>
    [
      `patch (row ${row}, column ${col}) of ${media.name}:${frame}; ${r.framesSearched} of ${r.framesTotal} frames searched`,
      ...results.map((p) => `${p.sim.toFixed(4)}\t${p.item}:${p.frame}\tpatch ${p.patch}`),
    ].join('\n'),
  );
});

export const duplicates = command(async (s) => {
  const min = s.num('min', { min: 0, max: 1 });
  const limit = s.num('limit', { int: true, min: 1, max: 10000 });
  const r = await s.call('retrieve.duplicates', {
    runId: await s.runId(),
    ...(min !== undefined ? { threshold: min } : {}),
    ...(limit ? { limit } : {}),
  });
  const names = await s.byId(r.pairs.flatMap((p) => [p.a.mediaId, p.b.mediaId]));
  const label = (f: { mediaId: number; frameIdx: number }) =>
    `${names.get(f.mediaId)?.name ?? f.mediaId}:${frameNumber(f.frameIdx)}`;
  const pairs = r.pairs.map((p) => ({ ...p, aLabel: label(p.a), bLabel: label(p.b) }));
  s.out({ ...r, pairs }, () =>
    pairs.length
      ? pairs.map((p) => `${p.sim.toFixed(4)}\t${p.aLabel}\t${p.bLabel}`).join('\n')
      : `(no pairs at ${r.threshold} or above)`,
  );
});

/** The head, language model and run a text command used, on stderr (as --model / --run defaults are said). */
export function saidPair(
  s: Session,
  r: { headName: string; head: number; textModelName: string; textModel: number; runId: number; computed: number },
) {
  s.note(
    `ShareLock head #${r.head} "${r.headName}" with language model #${r.textModel} "${r.textModelName}", feature run #${r.runId}${r.computed ? ` (${r.computed} text${r.computed === 1 ? '' : 's'} encoded now)` : ''}`,
  );
}

/** The text-pair options of `retrieve text` and `classify --zero-shot`. */
export function pairOptions(s: Session) {
  const head = s.num('head', { int: true, min: 1 });
  const textModel = s.num('llm', { int: true, min: 1 });
  const runId = s.num('run', { int: true, min: 1 });
  return {
    ...(head ? { head } : {}),
    ...(textModel ? { textModel } : {}),
    ...(runId ? { runId } : {}),
  };
}

export const text = command(async (s) => {
  const query = s.inv.positionals[0] as string;
  const k = s.num('top', { int: true, min: 1, max: 1000 });
  const r = await s.call('retrieve.text', { text: query, ...pairOptions(s), ...(k ? { k } : {}) });
  saidPair(s, r);
  const results = await named(s, r.results);
  s.out({ ...r, results }, () =>
    results.length
      ? results.map((x) => `${x.sim.toFixed(4)}\t${x.item}:${x.frame}`).join('\n')
      : '(no frames in the feature run)',
  );
});
