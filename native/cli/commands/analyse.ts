/** The embedding map, kNN classification and FUNGI features. */
import fs from 'node:fs';
import { UsageError } from '../errors.js';
import { command, formatJob, frameNumber } from '../session.js';

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

export const classify = command(async (s) => {
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
