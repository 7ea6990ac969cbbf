/** Models, embeddings, training and the execution device. */
import fs from 'node:fs';
import path from 'node:path';
import type { CommandArgs, CommandResult, JobInfo } from '../../api/contract.js';
import { encodeNpy } from '../../features/export.js';
import { explainProviderReason } from '../../runtime/provider-reasons.js';
import { adapterLine } from '../../runtime/webgpu-probe.js';
import { CliError, UsageError } from '../errors.js';
import { command, formatJob, type Session } from '../session.js';
import { exportUnco, importUnco, trainUnco } from './count-unco.js';

const PRESETS = ['vit_ti16', 'vit_s16', 'vit_b16', 'vit_s8', 'tiny'] as const;

const OBJECTIVES = ['dino', 'dora', 'neco'] as const;

/** The arguments of `train.start` from the options of `flaneur train` (shared by `train export`). */
function trainArgs(s: Session, name: string): CommandArgs<'train.start'> {
  const preset = s.opt('preset') ?? 'vit_ti16';
  if (!(PRESETS as readonly string[]).includes(preset))
    throw new UsageError(`${name}: --preset is one of ${PRESETS.join(', ')}, not ${preset}`);
  const objective = s.opt('objective') ?? 'dino';
  if (!(OBJECTIVES as readonly string[]).includes(objective))
    throw new UsageError(`${name}: --objective is one of ${[...OBJECTIVES, 'unco'].join(', ')}, not ${objective}`);
  const from = s.num('base', { int: true, min: 1 }) ?? s.num('from-model', { int: true, min: 1 });
  if (objective === 'neco' && from === undefined && s.opt('preset') === undefined)
    throw new UsageError(`${name}: NeCo adapts a registered model: give --base ID (see \`flaneur model list\`)`);
  const media = s
    .opt('media')
    ?.split(',')
    .map((x) => {
      const id = Number(x);
      if (!Number.isInteger(id) || id < 1) throw new UsageError(`${name}: --media takes media ids like 3,4, not ${x}`);
      return id;
    });
  const steps = s.num('steps', { int: true, min: 1 });
  const batch = s.num('batch', { int: true, min: 1 }) ?? (objective === 'neco' ? 4 : undefined);
  const seed = s.num('seed', { int: true, min: 0 });
  return {
    init: from ? { kind: 'model', id: from } : { kind: 'scratch', preset: preset as (typeof PRESETS)[number] },
    ...(media ? { media } : {}),
    ...(objective === 'neco' ? { neco: {} } : {}),
    ...(objective === 'dora' ? { dora: {} } : {}),
    ...(steps ? { steps } : {}),
    ...(batch ? { batch } : {}),
    ...(seed !== undefined ? { seed } : {}),
  };
}

/**
 * The model a finished training (or import) job registered: the engine registers it when the job ends; waited for
 * here, so that a script finds it as soon as `flaneur train` prints done.
 */
async function trainedModel(s: Session, done: JobInfo): Promise<CommandResult<'models.list'>[number]> {
  await s.engine.modelsRegistered();
  const items = await s.call('jobs.items', { id: done.id });
  const encoder = (items.items.find((i) => i.key === 'export')?.result as { name?: string } | null)?.name;
  // Registered by this process (waited for above), or by the app when it owns the project: a few seconds at most.
  let model: CommandResult<'models.list'>[number] | undefined;
  for (let i = 0; i < 100 && !model; i++) {
    model = (await s.call('models.list', {})).filter((m) => m.name === encoder).at(-1);
    if (!model) await new Promise((r) => setTimeout(r, 100));
  }
  if (!model)
    throw new CliError(
      `The training finished but its model was not registered: ${encoder ?? 'no exported encoder'} (it is registered when the project opens next).`,
      'INTERNAL',
    );
  return model;
}

export const train = command(async (s) => {
  if (s.opt('objective') === 'sharelock') return (await import('./text.js')).trainShareLock(s);
  if (s.opt('objective') === 'unco') return trainUnco(s);
  const job = await s.call('train.start', trainArgs(s, 'train'));
  const done = await s.waitJob(job);
  const model = await trainedModel(s, done);
  const d = await s.call('models.default', {});
  s.out({ ...done, model, isDefault: d?.id === model.id }, () =>
    [
      formatJob(done),
      `model #${model.id} ${model.name}${d?.id === model.id ? " (the project's default model now)" : ''}`,
    ].join('\n'),
  );
});

export const trainExport = command(async (s) => {
  const dir = path.resolve(s.inv.positionals[0] as string);
  if (s.opt('objective') === 'unco') return exportUnco(s, dir);
  const frames = s.opt('frames') ?? 'auto';
  if (frames !== 'auto' && frames !== 'copy' && frames !== 'decode')
    throw new UsageError(`train export: --frames is auto, copy or decode, not ${frames}`);
  const done = await s.waitJob(await s.call('train.export', { ...trainArgs(s, 'train export'), dir, frames }));
  s.out(
    done,
    () =>
      `${formatJob(done)}\nRun it where the GPUs are:  cd ${dir} && torchrun --standalone --nproc_per_node=N train.py --config run.json\n(see ${path.join(dir, 'README.md')}; bring it back with \`flaneur train import ${dir}\`)`,
  );
});

export const trainImport = command(async (s) => {
  const from = path.resolve(s.inv.positionals[0] as string);
  // An UnCo export (unco.json beside its out/), or its decoder file: a counter, not a model.
  if (fs.existsSync(path.join(from, 'unco.json')) || path.basename(from) === 'decoder.safetensors')
    return importUnco(s, from);
  const name = s.opt('name');
  const done = await s.waitJob(
    await s.call('train.import', { path: path.resolve(s.inv.positionals[0] as string), ...(name ? { name } : {}) }),
  );
  const model = await trainedModel(s, done);
  s.out({ job: done, model }, () => `${formatJob(done)}\nmodel #${model.id} ${model.name}\n${model.origin ?? ''}`);
});

export const modelImport = command(async (s) => {
  const heads = s.num('heads', { int: true, min: 1 });
  const before = new Set((await s.call('models.list', {})).map((m) => m.id));
  const info = await s.call('models.import', {
    path: s.inv.positionals[0] as string,
    ...(s.opt('name') ? { name: s.opt('name') } : {}),
    ...(s.opt('licence') ? { licence: s.opt('licence') } : {}),
    ...(heads ? { heads } : {}),
  });
  const a = info.architecture;
  // The same weights (SHA-256) registered before, or meanwhile by a training job: that model, said so.
  const already = before.has(info.id);
  s.out(
    { ...info, alreadyRegistered: already },
    () =>
      `${already ? 'already in the project (same SHA-256): ' : ''}#${info.id} ${info.name}: ${a.family} ViT, patch ${a.patchSize}, dim ${a.dim}, depth ${a.depth}, ${a.heads} heads${a.registers ? `, ${a.registers} registers` : ''} (${(info.params / 1e6).toFixed(1)}M params, ${info.scheme} names, ${info.sourceDtype})`,
  );
});

/** The starter model of a project made without it (`project create --no-starter-model`, or before it had one). */
export const modelStarter = command(async (s) => {
  const before = new Set((await s.call('models.list', {})).map((m) => m.id));
  const m = await s.call('models.addBundled', {});
  const already = before.has(m.id);
  s.out(
    { ...m, alreadyRegistered: already },
    () => `${already ? 'already in the project: ' : ''}#${m.id} ${m.name}: ${m.about?.verdict ?? ''}`,
  );
});

export const modelList = command(async (s) => {
  const list = await s.call('models.list', {});
  const d = await s.call('models.default', {});
  s.out(
    list.map((m) => ({ ...m, isDefault: m.id === d?.id })),
    () =>
      list
        .map(
          (m) =>
            `${m.id === d?.id ? '*' : ' '}#${m.id}\t${m.name}\t${m.architecture.family} p${m.architecture.patchSize} d${m.architecture.dim}\t${(m.params / 1e6).toFixed(1)}M\t${m.sha256.slice(0, 12)}`,
        )
        .join('\n') || '(no models)',
  );
});

export const modelDefault = command(async (s) => {
  const given = s.inv.positionals[0];
  if (given !== undefined && s.flag('clear'))
    throw new UsageError('model default: give a model id or --clear, not both');
  let d: CommandResult<'models.default'>;
  if (given !== undefined) {
    const id = Number(given);
    if (!Number.isInteger(id) || id < 1) throw new UsageError(`model default: a model id is a number, not ${given}`);
    d = await s.call('models.setDefault', { id });
  } else if (s.flag('clear')) d = await s.call('models.setDefault', { id: null });
  else d = await s.call('models.default', {});
  s.out(d, () =>
    d
      ? `default model: #${d.id} ${d.name}${d.chosen === 'newest' ? ' (the newest; none chosen)' : ''}`
      : 'no model yet: import one with `flaneur model import FILE`',
  );
});

export const embed = command(async (s) => {
  const size = s.num('size', { int: true });
  const res = await s.call('models.embed', {
    id: await s.modelId(),
    paths: s.inv.positionals,
    ...(size ? { size } : {}),
  });
  const out = s.opt('out');
  if (!out) {
    console.log(JSON.stringify(res));
    return;
  }
  if (out.endsWith('.json')) fs.writeFileSync(out, JSON.stringify(res.vectors));
  else fs.writeFileSync(out, encodeNpy(Float32Array.from(res.vectors.flat()), [res.vectors.length, res.dim]));
  s.note(`wrote ${res.vectors.length} x ${res.dim} to ${out} (${res.provider})`);
});

export const device = command(
  async (s) => {
    const raw = await s.call('runtime.info', {});
    // ONNX Runtime's own text stays in `reason` (JSON); `explained` says it as the Device view does.
    const info = {
      ...raw,
      providers: raw.providers.map((p) => ({ ...p, explained: explainProviderReason(p.name, p.reason) })),
    };
    s.out(info, () =>
      [
        `onnxruntime ${info.ortVersion}, ${info.cpus} CPU threads, provider setting: ${info.settings.provider}`,
        ...info.providers.flatMap((p) => [
          `  ${p.available ? 'yes' : 'no '} ${p.name.padEnd(6)}${p.explained ? ` ${p.explained}` : ''}`.trimEnd(),
          ...(p.adapter ? [`      adapter: ${adapterLine(p.adapter)}`] : []),
          ...(p.autoSkip ? [`      auto: ${p.autoSkip}`] : []),
        ]),
      ].join('\n'),
    );
  },
  { project: false },
);
