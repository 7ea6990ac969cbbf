/** Feature extraction, runs, and export to .npy / .safetensors. */
import { UsageError } from '../errors.js';
import { command, formatJob, runLabel } from '../session.js';

export const extract = command(async (s) => {
  const items = await s.itemsOrAll();
  const size = s.num('size', { int: true, min: 16, max: 2048 });
  const batch = s.num('batch', { int: true, min: 0, max: 256 });
  const job = await s.call('features.extract', {
    modelId: await s.modelId(),
    ...(items ? { media: items.map((m) => m.id) } : {}),
    ...(size ? { size } : {}),
    ...(s.flag('square') ? { resize: 'square' as const } : {}),
    ...(batch !== undefined ? { batch } : {}),
  });
  const done = await s.waitJob(job);
  const notes = await s.extractionNotes(done);
  const runs = await s.call('features.runs', {});
  const first = (await s.call('jobs.items', { id: done.id, status: 'ok', limit: 1 })).items[0];
  const runId = (first?.result as { runId?: number } | null)?.runId;
  const run =
    runs.find((r) => r.id === runId) ??
    runs.filter((r) => r.modelId === job.args.modelId && r.inputSize === (size ?? 224)).pop();
  s.out({ job: done, run: run ?? null, notes }, () =>
    [formatJob(done), run ? `run #${run.id}: ${runLabel(run)}, ${run.frames} frames` : ''].filter(Boolean).join('\n'),
  );
});

export const runs = command(async (s) => {
  // The resize policy is named one way: `resize` ('aspect' or 'square'), also inside `preprocessing`, whose stored
  // provenance says 'squash' for square runs.
  const list = (await s.call('features.runs', {})).map((r) => ({
    ...r,
    preprocessing: { ...r.preprocessing, resize: r.resize },
  }));
  s.out(
    list,
    () =>
      list.map((r) => `#${r.id}\t${runLabel(r)}\tdim ${r.dim}\t${r.frames} frames`).join('\n') || '(no feature runs)',
  );
});

export const exportFeatures = command(async (s) => {
  const what = s.opt('what') ?? 'patches';
  const format = s.opt('format') ?? 'npy';
  if (what !== 'cls' && what !== 'patches' && what !== 'both')
    throw new UsageError(`features export: --what is cls, patches or both, not ${what}`);
  if (format !== 'npy' && format !== 'safetensors')
    throw new UsageError(`features export: --format is npy or safetensors, not ${format}`);
  const items = await s.items(s.inv.positionals);
  const job = await s.call('features.export', {
    runId: await s.runId(),
    outDir: s.opt('out') as string,
    what,
    format,
    ...(items.length ? { media: items.map((m) => m.id) } : {}),
  });
  const done = await s.waitJob(job);
  const dir = job.args.outDir as string;
  const frames = done.progress.total ?? 0;
  s.out({ job: done, dir, frames }, () => `${frames} frames in ${dir} (manifest.json)`);
});
