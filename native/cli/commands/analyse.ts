/** The embedding map, kNN classification and FUNGI features. */
import fs from 'node:fs';
import { CliError, UsageError } from '../errors.js';
import { command, formatJob, frameNumber, type Session } from '../session.js';
import { pairOptions, saidPair } from './retrieve.js';

const csvField = (v: string) => (/[",\n]/.test(v) ? `"${v.replaceAll('"', '""')}"` : v);

export const map = command(async (s) => {
  const method = s.opt('method');
  if (method !== undefined && method !== 'umap' && method !== 'pca')
    throw new UsageError(`map: --method is umap or pca, not ${method}`);
  const features = s.vectors();
  const clusters = s.num('clusters', { int: true, min: 1, max: 100 });
  const seed = s.num('seed', { int: true, min: 0 });
  const job = await s.call('map.build', {
    runId: await s.runId(),
    ...(features ? { features } : {}),
    ...(method ? { method } : {}),
    ...(clusters ? { clusters } : {}),
    ...(seed !== undefined ? { seed } : {}),
  });
  const done = await s.waitJob(job);
  const made = (await s.jobItems(done.id)).find((i) => i.key === 'map')?.result as { mapId: number };
  const m = await s.call('map.get', { id: made.mapId });
  const names = await s.byId(m.points.map((p) => p.mediaId));
  const out = s.opt('out') as string;
  const lines = [
    'media_id,path,frame,x,y,cluster',
    ...m.points.map(
      (p) =>
        `${p.mediaId},${csvField(names.get(p.mediaId)?.path ?? '')},${frameNumber(p.frameIdx)},${p.x},${p.y},${p.cluster}`,
    ),
  ];
  fs.writeFileSync(out, `${lines.join('\n')}\n`);
  s.out({ job: done, mapId: m.id, method: m.method, features: m.features, points: m.points.length, out }, () =>
    [formatJob(done), `${m.points.length} points (${m.method}, ${m.features}) in ${out}`].join('\n'),
  );
});

/** Class names from a file: one a line, blank lines and `#` comments skipped. */
function classNames(file: string): string[] {
  let raw: string;
  try {
    raw = fs.readFileSync(file, 'utf8');
  } catch {
    throw new CliError(`Cannot read the class names file ${file}.`, 'NOT_FOUND');
  }
  const names = raw
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  if (names.length < 2)
    throw new CliError(
      `${file} names ${names.length} class(es); zero-shot needs at least two, one a line.`,
      'INVALID_ARGUMENT',
    );
  return names;
}

const zeroShot = async (s: Session, file: string) => {
  if (s.opt('train') || s.opt('vectors') || s.opt('k') || s.opt('size'))
    throw new UsageError('classify: --zero-shot takes no --train, --vectors, --k or --size (it classifies by name)');
  const test = s.opt('test');
  const r = await s.call('classify.zeroShot', {
    classes: classNames(file),
    ...pairOptions(s),
    ...(test ? { root: test } : {}),
  });
  saidPair(s, r);
  const names = await s.byId(r.predictions.map((p) => p.mediaId));
  const predictions = r.predictions.map((p) => ({
    ...p,
    item: names.get(p.mediaId)?.name ?? String(p.mediaId),
    frame: frameNumber(p.frameIdx),
    class: r.classes[p.predicted] as string,
  }));
  const result = {
    method: r.method,
    head: r.head,
    textModel: r.textModel,
    runId: r.runId,
    classes: r.classes,
    templates: r.templates,
    evaluated: r.evaluated,
    accuracy: test ? r.accuracy : null,
    confusion: test ? r.confusion : null,
    unmatched: r.unmatched,
    unmatchedFolders: r.unmatchedFolders,
    misclassified: r.misclassified.map((m) => ({ ...m, frame: frameNumber(m.frameIdx) })),
    predictions,
  };
  s.out(result, () =>
    [
      ...(test
        ? [
            `accuracy ${(100 * r.accuracy).toFixed(2)}% over ${r.evaluated} frames (zero-shot from ${r.classes.length} class names, ${r.templates.length} prompt templates)`,
            ...(r.unmatched
              ? [`${r.unmatched} labelled frames not scored: no class is named ${r.unmatchedFolders.join(', ')}`]
              : []),
            `confusion (rows: truth, columns: predicted): ${r.classes.join(', ')}`,
            ...r.confusion.map(
              (row, i) => `  ${(r.classes[i] ?? '').padEnd(16)} ${row.map((v) => String(v).padStart(5)).join('')}`,
            ),
          ]
        : [`zero-shot from ${r.classes.length} class names, ${r.templates.length} prompt templates`]),
      ...predictions.map((p) => `${p.class}\t${(100 * p.confidence).toFixed(1)}%\t${p.item}:${p.frame}`),
    ].join('\n'),
  );
};

export const classify = command(async (s) => {
  const names = s.opt('zero-shot');
  if (names !== undefined) return zeroShot(s, names);
  if (!s.opt('train'))
    throw new UsageError('classify: give --train DIR (kNN from examples) or --zero-shot classes.txt');
  const features = s.vectors();
  const k = s.num('k', { int: true, min: 1, max: 200 });
  const test = s.opt('test');
  const r = await s.call('classify.knn', {
    runId: await s.runId(),
    root: s.opt('train') as string,
    ...(test ? { queryRoot: test } : {}),
    ...(features ? { features } : {}),
    ...(k ? { k } : {}),
  });
  const unlabelled = r.unlabelled ?? { total: 0, files: [] };
  if (unlabelled.total) {
    s.note(`${unlabelled.total} file(s) under the class folders label nothing:`);
    for (const f of unlabelled.files.slice(0, 5)) s.note(`  ${f.path}: ${f.reason}`);
  }
  const result = {
    features: r.features,
    classes: r.classes,
    unlabelled,
    evaluated: r.evaluated,
    accuracy: r.accuracy,
    confusion: r.confusion,
    misclassified: r.misclassified.map((m) => ({ ...m, frame: frameNumber(m.frameIdx) })),
  };
  s.out(result, () =>
    [
      `accuracy ${(100 * r.accuracy).toFixed(2)}% over ${r.evaluated} frames (${test ? 'test folder' : 'leave-one-out'}, ${r.features})`,
      `confusion (rows: truth, columns: predicted): ${r.classes.join(', ')}`,
      ...r.confusion.map(
        (row, i) => `  ${(r.classes[i] ?? '').padEnd(16)} ${row.map((v) => String(v).padStart(5)).join('')}`,
      ),
    ].join('\n'),
  );
});

export const fungi = command(async (s) => {
  const runId = await s.runId(false);
  const run = (await s.call('features.runs', {})).find((r) => r.id === runId);
  if (!run) throw new UsageError(`fungi: no feature run ${runId}`);
  const items = await s.items(s.inv.positionals);
  const seed = s.num('seed', { int: true, min: 0 });
  const size = s.num('size', { int: true, min: 16, max: 1024 });
  const job = await s.call('features.fungi', {
    modelId: run.modelId,
    ...(items.length ? { media: items.map((m) => m.id) } : {}),
    ...(seed !== undefined ? { seed } : {}),
    size: size ?? run.inputSize,
  });
  const done = await s.waitJob(job);
  const runs = await s.call('fungi.runs', {});
  const f = runs.filter((r) => r.modelId === run.modelId).pop();
  s.out({ job: done, fungi: f ?? null }, () =>
    [
      formatJob(done),
      f ? `FUNGI run #${f.id}: ${f.frames} frames, ${f.dim} dims${f.pcaDim ? ` (PCA ${f.pcaDim})` : ''}` : '',
    ]
      .filter(Boolean)
      .join('\n'),
  );
});
