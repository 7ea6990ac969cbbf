/**
 * UnCo trained elsewhere: job `train.uncoExport` writes a run (`train.unco`'s arguments) as a folder for PyTorch's
 * torchrun — a pool of Self-Collages built here (the 224 px images as raw RGB, their density targets at the
 * decoder's side, N and the exemplar boxes), the held-out collages of the run (the same generator as `train.unco`'s),
 * the frozen backbone's weights, the decoder's starting parameters and the program (count/export/torch/
 * train_unco.py and unco_decoder.py, with the ViT and safetensors modules of train/export/torch/flaneur_train).
 * Job `train.uncoImport` brings back the decoder that program wrote (official parameter names, its configuration
 * and provenance in the metadata) as a trained counter: its `export` item is what `listUncoCounters` reads.
 */
import fs from 'node:fs';
import path from 'node:path';
import { FlaneurError } from '../api/errors.js';
import { TrainUncoExportArgs, TrainUncoImportArgs } from '../api/unco.js';
import { Rng } from '../base/rng.js';
import { APP_ROOT, APP_VERSION } from '../base/version.js';
import type { JobHandler } from '../jobs/types.js';
import { encodeSafetensors, readSafetensors, type TensorToWrite } from '../models/safetensors.js';
import { vitParamShapes } from '../models/vit.js';
import { TORCH_PROGRAM_DIR } from '../train/export-run.js';
import { buildCollage } from './collage.js';
import { uncoBackbone, uncoCollageOptions, uncoConfig } from './train-unco.js';
import { poolDensity } from './unco-data.js';
import { UNCO_SIZE, uncoLibrary } from './unco-library.js';
import { initUncoParams, type UncoConfig, uncoParamShapes } from './unco-step.js';

export const UNCO_PROGRAM_DIR = path.join(APP_ROOT, 'native', 'count', 'export', 'torch');
export const UNCO_EXPORT_FORMAT = 'flaneur-unco-export';

/** The held-out collages' generator of a run's seed (as train-unco.ts's held-out collages). */
const heldoutRng = (seed: number) => new Rng(seed * 2654435761 + 0x5eed);

/** Refuses a folder that exists with something in it (checked when the export is asked for, and when it starts). */
export function emptyFolder(dir: string): void {
  if (fs.existsSync(dir) && fs.readdirSync(dir).length > 0)
    throw new FlaneurError(
      'INVALID_ARGUMENT',
      `${dir} is not empty. Export into a new or empty folder so nothing there is overwritten.`,
      { field: 'dir' },
    );
}

export const trainUncoExportJob: JobHandler<TrainUncoExportArgs, { built: number }> = {
  kind: 'train.uncoExport',
  args: TrainUncoExportArgs,
  title: (a) => `Export UnCo counter training (${a.steps} steps, ${a.pool} collages) to ${a.dir}`,
  async run(ctx) {
    const { project } = ctx;
    const { dir: target, pool, ...a } = ctx.args;
    const dir = path.resolve(target);
    // A rerun of this job starts the folder again (what an interrupted attempt left is its own).
    if (ctx.attempt === 1) emptyFolder(dir);
    const model = uncoBackbone(project, a.model);
    const config = uncoConfig(a, model.vit.config);
    const { library, frames } = await uncoLibrary(project, a, model.vit, ctx.runtime, (n) =>
      ctx.phase('finding objects for the collages', { unit: 'frames', total: n }),
    );
    const options = uncoCollageOptions(a);
    const side = config.grid * config.patch;
    fs.mkdirSync(path.join(dir, 'collages'), { recursive: true });
    ctx.phase('building collages', { unit: 'collages', total: pool + a.evalCollages });
    let built = 0;
    const writeSet = (name: string, n: number, rng: Rng) => {
      const images = fs.openSync(path.join(dir, 'collages', `${name}.rgb`), 'w');
      const density = fs.openSync(path.join(dir, 'collages', `${name}-density.f32`), 'w');
      const counts: number[] = [];
      const exemplars: [number, number, number, number][][] = [];
      try {
        for (let i = 0; i < n; i++) {
          ctx.throwIfAborted();
          const k = buildCollage(library, options, rng);
          fs.writeSync(images, k.rgb);
          const d = poolDensity(k.density, k.size, k.size / side);
          fs.writeSync(density, new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
          counts.push(k.count);
          exemplars.push(k.exemplars.map(([x0, y0, x1, y1]) => [x0, y0, x1 - x0, y1 - y0]));
          ctx.progress(++built, pool + a.evalCollages);
        }
      } finally {
        fs.closeSync(images);
        fs.closeSync(density);
      }
      return {
        collages: n,
        images: `collages/${name}.rgb`,
        density: `collages/${name}-density.f32`,
        counts,
        exemplars,
      };
    };
    const train = writeSet('train', pool, new Rng(a.seed));
    const heldout = writeSet('heldout', a.evalCollages, heldoutRng(a.seed));
    const mean = heldout.counts.reduce((s, n) => s + n, 0) / heldout.counts.length;
    const meanMae = heldout.counts.reduce((s, n) => s + Math.abs(n - mean), 0) / heldout.counts.length;

    ctx.phase('writing the backbone, the program and the configuration', { total: null });
    const backbone = new Map<string, TensorToWrite>();
    for (const [name, shape] of vitParamShapes(model.vit.config))
      backbone.set(name, { shape, data: model.vit.weights.get(name) as Float32Array });
    fs.writeFileSync(path.join(dir, 'backbone.safetensors'), encodeSafetensors(backbone, { sha256: model.sha256 }));
    const init = initUncoParams(config, new Rng(a.seed));
    const start = new Map<string, TensorToWrite>();
    for (const [name, shape] of uncoParamShapes(config))
      start.set(name, { shape, data: init.get(name) as Float32Array });
    fs.writeFileSync(path.join(dir, 'init.safetensors'), encodeSafetensors(start, { step: '0' }));
    const program: [string, string][] = [
      ...['__init__.py', 'model.py', 'st.py'].map((f): [string, string] => [
        path.join(TORCH_PROGRAM_DIR, 'flaneur_train', f),
        path.join('flaneur_train', f),
      ]),
      ...['train_unco.py', 'unco_decoder.py'].map((f): [string, string] => [path.join(UNCO_PROGRAM_DIR, f), f]),
    ];
    fs.mkdirSync(path.join(dir, 'flaneur_train'), { recursive: true });
    for (const [from, to] of program) fs.copyFileSync(from, path.join(dir, to));
    const { batch: _batch, ...decoder } = config;
    const { mean: vitMean, std, ...arch } = model.vit.config;
    const run = {
      format: UNCO_EXPORT_FORMAT,
      version: 1,
      flaneur: APP_VERSION,
      exportedAt: new Date().toISOString(),
      project: project.dir,
      args: a,
      config: decoder,
      vit: { ...arch, mean: [...vitMean], std: [...std] },
      backbone: 'backbone.safetensors',
      backboneModel: model.id,
      backboneSha256: model.sha256,
      init: 'init.safetensors',
      size: UNCO_SIZE,
      side,
      library: { frames, objects: library.objects.length },
      train,
      heldout: { ...heldout, meanMae },
    };
    fs.writeFileSync(path.join(dir, 'unco.json'), `${JSON.stringify(run)}\n`);
    const readme = fs
      .readFileSync(path.join(UNCO_PROGRAM_DIR, 'README.md'), 'utf8')
      .replaceAll('{{STEPS}}', String(a.steps))
      .replaceAll('{{BATCH}}', String(a.batch))
      .replaceAll('{{POOL}}', String(pool))
      .replaceAll('{{FRAMES}}', String(frames))
      .replaceAll('{{OBJECTS}}', String(library.objects.length))
      .replaceAll('{{VERSION}}', APP_VERSION);
    fs.writeFileSync(path.join(dir, 'README.md'), readme);
    ctx.commit([{ key: 'export', status: 'ok', result: { dir, collages: pool, heldout: a.evalCollages } }], { built });
  },
};

/** Whether a path to bring back is an UnCo export (a folder with unco.json) or the decoder its program wrote. */
export function isUncoExport(p: string): boolean {
  const abs = path.resolve(p);
  return fs.existsSync(path.join(abs, 'unco.json')) || path.basename(abs) === 'decoder.safetensors';
}

/** The decoder file of an import path: the folder's out/decoder.safetensors, or the file itself. */
function decoderFile(p: string): string {
  const abs = path.resolve(p);
  const file =
    fs.existsSync(abs) && fs.statSync(abs).isDirectory() ? path.join(abs, 'out', 'decoder.safetensors') : abs;
  if (!fs.existsSync(file))
    throw new FlaneurError(
      'NOT_FOUND',
      `No trained decoder at ${file}: run train_unco.py in the exported folder first (it writes out/decoder.safetensors).`,
      { field: 'path' },
    );
  return file;
}

export const trainUncoImportJob: JobHandler<TrainUncoImportArgs, null> = {
  kind: 'train.uncoImport',
  args: TrainUncoImportArgs,
  title: (a) => `Bring back an UnCo counter trained with torchrun from ${a.path}`,
  async run(ctx) {
    const { project, args: a } = ctx;
    const file = decoderFile(a.path);
    const st = readSafetensors(file);
    const meta = st.metadata;
    if (!meta.unco_config)
      throw new FlaneurError('INVALID_MODEL', `${file} is not an UnCo decoder (no unco_config in its metadata).`, {
        field: 'path',
      });
    const config = JSON.parse(meta.unco_config) as Omit<UncoConfig, 'batch'>;
    const backbone = project.models.get(Number(meta.backbone_model));
    if (!backbone || backbone.sha256 !== meta.backbone_sha256)
      throw new FlaneurError(
        'NOT_FOUND',
        `This counter reads the features of model #${meta.backbone_model}, which is not in this project (or is another model now): bring it back into the project it was exported from.`,
        { field: 'path' },
      );
    for (const [name, shape] of uncoParamShapes({ ...config, batch: 1 })) {
      const t = st.tensors.get(name);
      if (!t || t.shape.join('x') !== shape.join('x'))
        throw new FlaneurError(
          'INVALID_MODEL',
          `${file} has ${t ? `${name} of shape ${t.shape.join('x')}, not ${shape.join('x')}` : `no ${name}`}: it is not the decoder of that export.`,
          { field: 'path' },
        );
    }
    const out = path.join(project.checkpointsDir, `train-${ctx.jobId}`, 'export', 'decoder.safetensors');
    fs.mkdirSync(path.dirname(out), { recursive: true });
    fs.copyFileSync(file, `${out}.tmp`);
    fs.renameSync(`${out}.tmp`, out);
    const name =
      a.name ??
      `UnCo counter on ${backbone.name}${config.shots ? '' : ' (automatic)'}, torchrun ${meta.steps ?? '?'} steps (job ${ctx.jobId})`;
    ctx.commit([{ key: 'export', status: 'ok', result: { decoder: path.relative(project.dir, out), name } }], null);
  },
};
