/**
 * Job `train.import`: brings back a run trained elsewhere from a `train.export` folder (or its run/ folder, or one
 * of its checkpoints): the teacher's backbone of the last checkpoint (NeCo: the student's, as Flaneur's NeCo and the
 * official code) as an encoder (.safetensors in official names,
 * with the run's provenance in its metadata, registered as a model by the engine like a local run's export), and
 * the run's metrics log (run/metrics.jsonl) as this job's training log, so its curves show beside local runs.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { TrainImportArgs } from '../api/contract.js';
import { FlaneurError } from '../api/errors.js';
import type { JobHandler } from '../jobs/types.js';
import { readRegularFile } from '../models/regular-file.js';
import { encodeSafetensors, readSafetensors, type TensorToWrite } from '../models/safetensors.js';
import { type ViTConfig, vitParamCount, vitParamShapes } from '../models/vit.js';
import type { TrainLogRow } from '../store/train-log-repo.js';
import { markPendingRegistration } from './checkpoint.js';
import { EXPORT_FORMAT } from './export-run.js';

type Args = typeof TrainImportArgs._zod.output;

/** Bounds on what an imported run may be (the same as a model import's: ViT-g/14 is 40 blocks of width 1536). */
const MAX_DEPTH = 256;
const MAX_DIM = 16_384;
/** 1.9 GB of f32 weights: what an inline ONNX model can hold (checkModelFits). */
const MAX_PARAMS = 475_000_000;
const MAX_JSON_BYTES = 1 << 20;
const MAX_METRICS_BYTES = 128 << 20;

const count = (max: number) => z.number().int().min(0).max(max);
const finite = z.number().finite();

/** run.json as the exporter writes it; every field the import uses is checked before anything is written. */
const RunConfig = z.object({
  format: z.literal(EXPORT_FORMAT),
  version: z.literal(1),
  objective: z.enum(['dino', 'dora', 'neco']),
  args: z.object({
    steps: count(1e9),
    batch: count(1e6),
    init: z.object({ kind: z.string().max(64), preset: z.string().max(64).optional(), id: count(1e12).optional() }),
  }),
  vit: z.object({
    family: z.enum(['dino', 'dinov2', 'dinov3']),
    patchSize: z.number().int().min(1).max(1024),
    dim: z.number().int().min(1).max(MAX_DIM),
    depth: z.number().int().min(1).max(MAX_DEPTH),
    heads: z.number().int().min(1).max(1024),
    mlpHidden: z
      .number()
      .int()
      .min(1)
      .max(8 * MAX_DIM),
    registers: count(64),
    layerScale: z.boolean(),
    lnEps: finite.positive().lt(1),
    posGrid: z.number().int().min(1).max(1024),
    ropePeriods: z.array(finite.positive()).max(1024).optional(),
    mlp: z.enum(['gelu', 'swiglu']).optional(),
    posInterpolation: z.enum(['offset', 'size']),
    mean: z.tuple([finite, finite, finite]),
    std: z.tuple([finite.positive(), finite.positive(), finite.positive()]),
  }),
});

/** A checkpoint's step-NNNNNNN.json. */
const StepMeta = z.object({
  step: z.number().int().min(1).max(1e9),
  world: z.number().int().min(1).max(1e6).optional(),
  device: z.string().max(200).optional(),
  wallSeconds: finite.min(0).optional(),
  precision: z.string().max(64).optional(),
});

interface ExportedRun {
  config: z.infer<typeof RunConfig> & { vit: ViTConfig };
  runDir: string;
  checkpoint: string;
}

const STEP_FILE = /^step-\d+\.json$/;

function refused(message: string): FlaneurError {
  return new FlaneurError('INVALID_ARGUMENT', message, { field: 'path' });
}

/**
 * A small JSON file of the run, checked by `schema`: a regular file (never a pipe or /dev/zero), at most 1 MB, JSON,
 * with the fields the import reads. Messages name the file and the field, never the file's contents.
 */
function readRunJson<T>(file: string, schema: z.ZodType<T>, what: string): T {
  const text = readRegularFile(file, MAX_JSON_BYTES, (why) => refused(`${file} ${why}; it cannot be ${what}.`));
  let raw: unknown;
  try {
    raw = JSON.parse(text.toString('utf8'));
  } catch {
    throw refused(`${file} is not valid JSON, so it is not ${what}.`);
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue?.path.join('.') || '(the whole file)';
    throw refused(
      `${file} is not ${what}: its field ${field} is missing or out of range (${issue?.code ?? 'invalid'}).`,
    );
  }
  return parsed.data;
}

/** The export's run.json, its run folder and the checkpoint to bring back, from whichever of them the user chose. */
export function locateRun(input: string): ExportedRun {
  const p = path.resolve(input);
  if (!fs.existsSync(p)) throw new FlaneurError('NOT_FOUND', `No such file or folder: ${p}.`, { field: 'path' });
  let checkpoint: string | null = null;
  let runDir: string;
  let exportDir: string;
  if (!fs.statSync(p).isDirectory()) {
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
  const config = readRunJson(
    configFile,
    RunConfig,
    'a Flaneur training export (format version 1)',
  ) as ExportedRun['config'];
  const { vit } = config;
  if (vit.dim % vit.heads !== 0) {
    throw refused(
      `${configFile} is not a usable export: vit.dim ${vit.dim} is not a multiple of vit.heads ${vit.heads}.`,
    );
  }
  const params = vitParamCount(vit);
  if (params > MAX_PARAMS) {
    throw refused(`${configFile} describes a ViT of ${params} parameters, more than Flaneur can load (${MAX_PARAMS}).`);
  }
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

const METRIC_FIELDS = ['loss', 'lr', 'wd', 'ema', 'gradNorm', 'teacherEntropy', 'imgsPerS'] as const;

/**
 * The run's metrics log, one row per step up to `upTo`. A last line cut by a crash is skipped; any other line that
 * is not a row with every field a finite number is refused, naming the line and the field (never its contents).
 * The log is a regular file of at most 128 MB.
 */
export function readMetrics(file: string, upTo: number): (TrainLogRow & { world?: number })[] {
  if (!fs.existsSync(file)) return [];
  const text = readRegularFile(file, MAX_METRICS_BYTES, (why) =>
    refused(`${file} ${why}; it cannot be the run's metrics log.`),
  ).toString('utf8');
  const rows = new Map<number, TrainLogRow & { world?: number }>();
  const lines = text.split('\n');
  const lastLine = lines.length - 1 - (lines.at(-1)?.trim() ? 0 : 1);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    if (!line.trim()) continue;
    const bad = (what: string) => refused(`${file}, line ${i + 1}: ${what}. Fix or remove that line and import again.`);
    let r: unknown;
    try {
      // Python's json writes NaN and Infinity bare: read them as texts, refused below as not finite.
      r = JSON.parse(line.replace(/(?<=[:,[]\s*)(-?Infinity|NaN)(?=\s*[,}\]])/g, '"$1"'));
    } catch {
      if (i === lastLine) continue; // cut by a crash while writing
      throw bad('not valid JSON');
    }
    if (r === null || typeof r !== 'object' || Array.isArray(r)) throw bad('not a JSON object');
    const o = r as Record<string, unknown>;
    const step = o.step;
    if (typeof step !== 'number' || !Number.isInteger(step) || step < 1)
      throw bad('its step is not a whole number above 0');
    if (step > upTo) continue;
    const row: TrainLogRow & { world?: number } = {
      step,
      loss: 0,
      lr: 0,
      wd: 0,
      ema: 0,
      gradNorm: 0,
      teacherEntropy: 0,
      imgsPerS: 0,
    };
    for (const k of METRIC_FIELDS) {
      const v = o[k];
      if (typeof v === 'string' && /^(-?Infinity|NaN)$/.test(v)) {
        throw bad(`its ${k} is not finite (the run diverged at step ${step}?)`);
      }
      if (typeof v !== 'number') throw bad(`its ${k} is missing or not a number`);
      if (!Number.isFinite(v)) throw bad(`its ${k} is not finite (the run diverged at step ${step}?)`);
      row[k] = v;
    }
    if (typeof o.world === 'number' && Number.isInteger(o.world)) row.world = o.world;
    rows.set(step, row);
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
    const meta = readRunJson(run.checkpoint, StepMeta, 'a checkpoint of an exported run');
    const st = readSafetensors(run.checkpoint.replace(/\.json$/, '.safetensors'));
    const vit = run.config.vit;
    const objective = objectiveLabel(run.config.objective);
    const side = run.config.objective === 'neco' ? 'p' : 't';
    const who = side === 'p' ? 'student' : 'teacher';
    // Every tensor's presence and shape first (nothing read yet), then the values (finite), then anything written.
    const shapes = vitParamShapes(vit);
    for (const [name, shape] of shapes) {
      const t = st.tensors.get(`${side}.${name}`);
      if (!t) throw refused(`${run.checkpoint} has no ${who} tensor ${name}.`);
      if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
        throw refused(
          `${run.checkpoint}: the ${who} tensor ${name} has shape [${t.shape.join(', ')}], but run.json's ViT needs [${shape.join(', ')}].`,
        );
      }
    }
    const backbone = new Map<string, TensorToWrite>();
    for (const [name, shape] of shapes) {
      const data = st.float32(`${side}.${name}`);
      const bad = data.findIndex((v) => !Number.isFinite(v));
      if (bad >= 0) {
        throw refused(
          `${run.checkpoint}: the ${who} tensor ${name} holds ${Number.isNaN(data[bad]) ? 'NaN' : 'infinite'} values (the run diverged); bring back an earlier checkpoint instead.`,
        );
      }
      backbone.set(name, { shape, data });
    }
    const rows = readMetrics(path.join(run.runDir, 'metrics.jsonl'), meta.step);
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
    const bytes = encodeSafetensors(backbone, {
      heads: String(vit.heads),
      trained_by: provenance.trainedBy,
      objective: provenance.objective,
      steps: String(provenance.steps),
      processes: String(provenance.processes),
      device: provenance.device,
      wall_seconds: String(provenance.wallSeconds ?? ''),
    });
    // The same encoder imported before (same run, same step): say so rather than register it twice.
    const known = project.models.bySha(createHash('sha256').update(bytes).digest('hex'));
    if (known) {
      throw new FlaneurError(
        'INVALID_ARGUMENT',
        `This run was already brought back at step ${meta.step}: it is model #${known.id} "${known.name}". Nothing was imported again.`,
        { field: 'path' },
      );
    }
    const out = path.join(project.checkpointsDir, `train-${ctx.jobId}`, 'export');
    fs.mkdirSync(out, { recursive: true });
    const encoder = path.join(out, 'encoder.safetensors');
    fs.writeFileSync(encoder, bytes);
    ctx.phase('reading the metrics log', { total: null });
    project.trainLog.truncateAfter(ctx.jobId, 0);
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
