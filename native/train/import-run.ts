/**
 * Job `train.import`: brings back a run trained elsewhere from a `train.export` folder (or its run/ folder, or one
 * of its checkpoints): the teacher's backbone of the last checkpoint (NeCo: the student's, as Flaneur's NeCo and the
 * official code) as an encoder (.safetensors in official names,
 * with the run's provenance in its metadata, registered as a model by the engine like a local run's export), and
 * the run's metrics log (run/metrics.jsonl) as this job's training log, so its curves show beside local runs.
 */
import fs from 'node:fs';
import path from 'node:path';
import { TrainImportArgs } from '../api/contract.js';
import { FlaneurError } from '../api/errors.js';
import type { JobHandler } from '../jobs/types.js';
import { encodeSafetensors, readSafetensors, type TensorToWrite } from '../models/safetensors.js';
import { type ViTConfig, vitParamShapes } from '../models/vit.js';
import type { TrainLogRow } from '../store/train-log-repo.js';
import { markPendingRegistration } from './checkpoint.js';
import { EXPORT_FORMAT } from './export-run.js';

type Args = typeof TrainImportArgs._zod.output;

interface ExportedRun {
  config: {
    format: string;
    version: number;
    objective: string;
    args: { steps: number; batch: number; init: { kind: string; preset?: string; id?: number } };
    vit: ViTConfig;
  };
  runDir: string;
  checkpoint: string;
}

const STEP_FILE = /^step-\d+\.json$/;

/** The export's run.json, its run folder and the checkpoint to bring back, from whichever of them the user chose. */
export function locateRun(input: string): ExportedRun {
  const p = path.resolve(input);
  if (!fs.existsSync(p)) throw new FlaneurError('NOT_FOUND', `No such file or folder: ${p}.`, { field: 'path' });
  let checkpoint: string | null = null;
  let runDir: string;
  let exportDir: string;
  if (fs.statSync(p).isFile()) {
    const json = p.replace(/\.safetensors$/, '.json');
    if (!STEP_FILE.test(path.basename(json)) || !fs.existsSync(json))
      throw new FlaneurError(
        'INVALID_ARGUMENT',
        `${p} is not a checkpoint of an exported run (run/checkpoints/step-NNNNNNN.json or .safetensors).`,
        { field: 'path' },
      );
    checkpoint = json;
    runDir = path.dirname(path.dirname(json));
    exportDir = fs.existsSync(path.join(runDir, 'run.json')) ? runDir : path.dirname(runDir);
  } else if (fs.existsSync(path.join(p, 'run.json'))) {
    exportDir = p;
    runDir = path.join(p, 'run');
  } else {
    runDir = p;
    exportDir = path.dirname(p);
  }
  const configFile = path.join(exportDir, 'run.json');
  if (!fs.existsSync(configFile))
    throw new FlaneurError(
      'NOT_FOUND',
      `No run.json beside ${p}: choose the folder written by "Run elsewhere…" (flaneur train export).`,
      { field: 'path' },
    );
  let config: ExportedRun['config'];
  try {
    config = JSON.parse(fs.readFileSync(configFile, 'utf8'));
  } catch (err) {
    throw new FlaneurError('INVALID_ARGUMENT', `${configFile} is not valid JSON: ${(err as Error).message}.`, {
      field: 'path',
    });
  }
  if (config.format !== EXPORT_FORMAT || config.version !== 1)
    throw new FlaneurError('INVALID_ARGUMENT', `${configFile} is not a Flaneur training export (format version 1).`, {
      field: 'path',
    });
  if (!checkpoint) {
    const dir = path.join(runDir, 'checkpoints');
    const files = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => STEP_FILE.test(f)) : [];
    const last = files.sort().at(-1);
    if (!last)
      throw new FlaneurError(
        'NOT_FOUND',
        `${runDir} has no checkpoint yet: run train.py (see the README in the export) until it writes one.`,
        { field: 'path' },
      );
    checkpoint = path.join(dir, last);
  }
  return { config, runDir, checkpoint };
}

/** The run's metrics log, one row per step up to `upTo` (a line cut by a crash is skipped). */
export function readMetrics(file: string, upTo: number): (TrainLogRow & { world?: number })[] {
  if (!fs.existsSync(file)) return [];
  const rows = new Map<number, TrainLogRow & { world?: number }>();
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    let r: Record<string, unknown>;
    try {
      r = JSON.parse(line);
    } catch {
      continue;
    }
    const num = (k: string) => (typeof r[k] === 'number' ? (r[k] as number) : Number.NaN);
    const step = num('step');
    if (!Number.isInteger(step) || step < 1 || step > upTo) continue;
    rows.set(step, {
      step,
      loss: num('loss'),
      lr: num('lr'),
      wd: num('wd'),
      ema: num('ema'),
      gradNorm: num('gradNorm'),
      teacherEntropy: num('teacherEntropy'),
      imgsPerS: num('imgsPerS'),
      ...(typeof r.world === 'number' ? { world: r.world } : {}),
    });
  }
  return [...rows.values()].sort((a, b) => a.step - b.step);
}

function objectiveLabel(objective: string): string {
  return objective === 'neco' ? 'NeCo' : objective === 'dora' ? 'Dora' : 'DINO';
}

export const trainImportJob: JobHandler<Args, { step: number }> = {
  kind: 'train.import',
  args: TrainImportArgs,
  title: (a) => `Bring back the training run in ${a.path}`,
  async run(ctx) {
    const { project } = ctx;
    const run = locateRun(ctx.args.path);
    ctx.phase('reading the checkpoint', { total: null });
    const meta = JSON.parse(fs.readFileSync(run.checkpoint, 'utf8')) as {
      step: number;
      world?: number;
      device?: string;
      wallSeconds?: number;
      precision?: string;
    };
    const st = readSafetensors(run.checkpoint.replace(/\.json$/, '.safetensors'));
    const vit = run.config.vit;
    const objective = objectiveLabel(run.config.objective);
    const side = run.config.objective === 'neco' ? 'p' : 't';
    const backbone = new Map<string, TensorToWrite>();
    for (const [name, shape] of vitParamShapes(vit)) {
      if (!st.tensors.has(`${side}.${name}`))
        throw new FlaneurError(
          'INVALID_ARGUMENT',
          `${run.checkpoint} has no ${side === 'p' ? 'student' : 'teacher'} tensor ${name}.`,
          { field: 'path' },
        );
      backbone.set(name, { shape, data: st.float32(`${side}.${name}`) });
    }
    const provenance = {
      trainedBy: 'torchrun (flaneur train export)',
      objective: run.config.objective,
      steps: meta.step,
      plannedSteps: run.config.args.steps,
      processes: meta.world ?? 1,
      device: meta.device ?? 'unknown',
      wallSeconds: meta.wallSeconds ?? null,
      precision: meta.precision ?? null,
      config: path.join(path.dirname(run.runDir), 'run.json'),
      checkpoint: run.checkpoint,
    };
    const out = path.join(project.checkpointsDir, `train-${ctx.jobId}`, 'export');
    fs.mkdirSync(out, { recursive: true });
    const encoder = path.join(out, 'encoder.safetensors');
    fs.writeFileSync(
      encoder,
      encodeSafetensors(backbone, {
        heads: String(vit.heads),
        trained_by: provenance.trainedBy,
        objective: provenance.objective,
        steps: String(provenance.steps),
        processes: String(provenance.processes),
        device: provenance.device,
        wall_seconds: String(provenance.wallSeconds ?? ''),
      }),
    );
    ctx.phase('reading the metrics log', { total: null });
    project.trainLog.truncateAfter(ctx.jobId, 0);
    const rows = readMetrics(path.join(run.runDir, 'metrics.jsonl'), meta.step);
    for (const { world: _w, ...r } of rows) project.trainLog.add(ctx.jobId, r);
    const init = run.config.args.init;
    const name =
      ctx.args.name ??
      `${objective} ${init.kind === 'scratch' ? init.preset : `from #${init.id}`}, ${meta.step} steps on ${provenance.processes}× ${provenance.device} (imported, job ${ctx.jobId})`;
    markPendingRegistration(encoder);
    ctx.commit(
      [
        {
          key: 'export',
          status: 'ok',
          result: {
            encoder: path.relative(project.dir, encoder),
            name,
            origin: `${objective} run trained with torchrun: ${provenance.steps} of ${provenance.plannedSteps} steps on ${provenance.processes}× ${provenance.device}${provenance.wallSeconds === null ? '' : ` in ${Math.round(provenance.wallSeconds)} s`} (${provenance.config})`,
            provenance,
            logged: rows.length,
          },
        },
      ],
      { step: meta.step },
    );
  },
};
