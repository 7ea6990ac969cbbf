/** Language models and ShareLock heads (`flaneur text …`), and text features. */
import fs from 'node:fs';
import { MAX_TEXTS_PER_CALL, TEXT_FEATURES_JOB_THRESHOLD, type TextModelInfo } from '../../api/contract.js';
import { CliError, UsageError } from '../errors.js';
import { command, formatBytes, formatJob, type Session } from '../session.js';

function line(m: TextModelInfo): string {
  const what =
    m.kind === 'llm'
      ? `language model, ${m.llm?.arch} width ${m.llm?.dim}, ${formatBytes(m.bytes)}${m.llm?.fits ? '' : ' (too large for this machine)'}`
      : `ShareLock head for ${m.head?.textModel.name ?? '?'} + ${m.head?.vision.name ?? '?'}`;
  return `#${m.id}\t${m.kind}\t${m.name}\t${what}`;
}

export const textModels = command(async (s) => {
  const list = await s.call('text.models.list', {});
  s.out(list, () => list.map(line).join('\n') || '(no language models or ShareLock heads: `flaneur text import FILE`)');
});

export const textImport = command(async (s) => {
  const info = await s.call('text.models.import', {
    path: s.inv.positionals[0] as string,
    ...(s.opt('name') ? { name: s.opt('name') } : {}),
  });
  s.out(info, () =>
    [`${info.existed ? 'already in the project: ' : ''}${line(info)}`, info.summary, info.origin ?? '']
      .filter(Boolean)
      .join('\n'),
  );
});

export const textRemove = command(async (s) => {
  const id = s.numbers('id', s.inv.positionals[0] as string, 1)[0] as number;
  const left = await s.call('text.models.remove', { id });
  s.out(left, () => [`Removed text model #${id}.`, ...left.map(line)].join('\n'));
});

/** The language model of `--model` (or `option`), else the project's newest one. */
async function llmId(s: Session, option = 'model'): Promise<number> {
  const given = s.num(option, { int: true, min: 1 });
  if (given !== undefined) return given;
  const llm = (await s.call('text.models.list', {})).filter((m) => m.kind === 'llm').at(-1);
  if (!llm)
    throw new CliError('No language model in this project: `flaneur text import FILE.gguf` first.', 'NOT_FOUND');
  return llm.id;
}

export const textFeatures = command(async (s) => {
  const file = s.opt('file');
  const texts = file
    ? fs
        .readFileSync(file, 'utf8')
        .split(/\r?\n/)
        .map((t) => t.trim())
        .filter(Boolean)
    : s.inv.positionals;
  if (texts.length === 0) throw new UsageError('text features: give texts, or --file with one text per line');
  const model = await llmId(s);
  const vectors = s.json;
  const features: number[][] = [];
  let computed = 0;
  let dim = 0;
  if (texts.length > TEXT_FEATURES_JOB_THRESHOLD) {
    // a long list: encoded as a job (progress, cancel; what is encoded stays cached), then read from the cache
    const job = await s.waitJob(await s.call('text.features.start', { model, texts }));
    const item = (await s.call('jobs.items', { id: job.id })).items.find((i) => i.key === 'features');
    computed = (item?.result as { computed?: number } | null)?.computed ?? 0;
  }
  for (let at = 0; at < texts.length; at += MAX_TEXTS_PER_CALL) {
    const part = texts.slice(at, at + MAX_TEXTS_PER_CALL);
    const r = await s.call('text.features', { model, texts: part, vectors });
    features.push(...r.features);
    computed += r.computed; // 0 after the job, unless a text was dropped from the cache since
    dim = r.dim;
    if (texts.length > part.length) s.note(`${Math.min(at + part.length, texts.length)} / ${texts.length} texts`);
  }
  s.out(
    { model, dim, computed, texts, features },
    () =>
      `${texts.length} texts: ${computed} encoded now, the rest from the project's cache (language model #${model}, ${dim}-d features; --json prints them)`,
  );
});

/**
 * `flaneur train --objective sharelock`: a ShareLock head on a feature run (the vision side) and a language model,
 * from a labelled folder (--classes, with --unseen held out) and/or a captions file (--captions). Waits; the head
 * is registered when the job ends.
 */
export async function trainShareLock(s: Session): Promise<void> {
  const classes = s.opt('classes');
  const captions = s.opt('captions');
  if (!classes && !captions)
    throw new UsageError(
      'train --objective sharelock: give --classes DIR (labelled folders), --captions FILE, or both',
    );
  const unseen = s
    .opt('unseen')
    ?.split(',')
    .map((c) => c.trim())
    .filter(Boolean);
  const steps = s.num('steps', { int: true, min: 1 });
  const batch = s.num('batch', { int: true, min: 2 });
  const seed = s.num('seed', { int: true, min: 0 });
  const hidden = s.num('hidden', { int: true, min: 1 });
  const layers = s.num('layers', { int: true, min: 1, max: 16 });
  const valFraction = s.num('val-fraction', { min: 0, max: 0.5 });
  const valEvery = s.num('val-every', { int: true, min: 1 });
  const patience = s.num('patience', { int: true, min: 0 });
  const before = new Set((await s.call('text.models.list', {})).map((m) => m.id));
  const job = await s.call('train.sharelock', {
    textModel: await llmId(s, 'text-model'),
    runId: await s.runId(false),
    ...(classes ? { classes: { root: classes, ...(unseen?.length ? { unseen } : {}) } } : {}),
    ...(captions
      ? { captions: { file: captions, ...(s.opt('images-dir') ? { imagesDir: s.opt('images-dir') } : {}) } }
      : {}),
    ...(steps ? { steps } : {}),
    ...(batch ? { batch } : {}),
    ...(seed !== undefined ? { seed } : {}),
    ...(hidden ? { hidden } : {}),
    ...(layers ? { layers } : {}),
    ...(valFraction !== undefined ? { valFraction } : {}),
    ...(valEvery ? { valEvery } : {}),
    ...(patience !== undefined ? { patience } : {}),
    ...(s.opt('name') ? { name: s.opt('name') } : {}),
  });
  const done = await s.waitJob(job);
  await s.engine.modelsRegistered();
  const { items } = await s.call('jobs.items', { id: done.id });
  const data = items.find((i) => i.key === 'data')?.result as {
    seen?: string[];
    unseen?: string[];
    pairs?: number;
  } | null;
  const exported = items.find((i) => i.key === 'export')?.result as {
    stopped?: { step: number; reason: string };
  } | null;
  const head = (await s.call('text.models.list', {})).find((m) => m.kind === 'sharelock-head' && !before.has(m.id));
  s.out({ job: done, data, head: head ?? null }, () =>
    [
      formatJob(done),
      data?.seen?.length
        ? `trained on: ${data.seen.join(', ')}; held out (unseen): ${data.unseen?.join(', ') || 'none'}`
        : '',
      exported?.stopped ? `stopped early: ${exported.stopped.reason}` : '',
      head ? `head #${head.id} ${head.name}` : 'the head is registered when the project opens next',
    ]
      .filter(Boolean)
      .join('\n'),
  );
}
