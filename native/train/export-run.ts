/**
 * Job `train.export`: a Flaneur training run (DINO, Dora or NeCo) as a self-contained folder for PyTorch's torchrun on
 * machines with more GPUs: the sampled frames (raw RGB, the same pixels Flaneur trains on) with their source
 * timestamps, the run's full configuration (run.json), the starting state and generator state, and the PyTorch
 * program of native/train/export/torch/ (versioned with the app). The program draws every augmentation with
 * Flaneur's generator in Flaneur's order, so its first steps give Flaneur's losses (tests/unit/train/export.test.ts).
 * One item per media file copied, so a stopped export resumes where it was.
 */
import fs from 'node:fs';
import path from 'node:path';
import { TrainExportArgs } from '../api/contract.js';
import { FlaneurError } from '../api/errors.js';
import type { Rng } from '../base/rng.js';
import { APP_ROOT, APP_VERSION } from '../base/version.js';
import type { JobHandler } from '../jobs/types.js';
import { type Sampling, videoFilters } from '../media/decode.js';
import { FrameStore } from '../media/frame-store.js';
import { readRegularFile } from '../models/regular-file.js';
import { encodeSafetensors, type TensorToWrite } from '../models/safetensors.js';
import type { MediaRow } from '../store/media-repo.js';
import { dinoParamShapes } from './dino-step.js';
import { necoParamShapes } from './neco-step.js';
import { initParams, planRun, startingParams } from './train-dino.js';
import { necoSetup, necoStartingParams } from './train-neco.js';
import { runGenerator } from './trainer.js';

/** The PyTorch program copied into every export. */
export const TORCH_PROGRAM_DIR = path.join(APP_ROOT, 'native', 'train', 'export', 'torch');
export const EXPORT_FORMAT = 'flaneur-train-export';

type Args = typeof TrainExportArgs._zod.output;

/** Every file of the program folder, relative (Python caches left out). */
function programFiles(dir: string, rel = ''): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
    if (e.name === '__pycache__' || e.name.endsWith('.pyc')) continue;
    const r = path.join(rel, e.name);
    if (e.isDirectory()) out.push(...programFiles(dir, r));
    else out.push(r);
  }
  return out.sort();
}

function copyAtomic(from: string, to: string): void {
  fs.copyFileSync(from, `${to}.tmp`, fs.constants.COPYFILE_FICLONE);
  fs.renameSync(`${to}.tmp`, to);
}

/** Raw frames above this size are decoded there from the source video rather than copied ('auto'). */
export const DECODE_ABOVE_BYTES = 512 * 1024 ** 2;

export interface DecodeSource {
  /** The source video's copy in the export. */
  source: string;
  /** Its size when the frames were sampled (the file must be the same). */
  bytes: number;
  /** ffmpeg -vf before showinfo (media/decode.ts videoFilters): sampling and scaling as Flaneur decoded. */
  vf: string;
  /** Keyframes policy: ffmpeg's -skip_frame nokey. */
  skipFrame: boolean;
}

/** Whether a media item's frames travel as its source video (and how to decode it), or null: copied. */
export function decodePlan(m: MediaRow, mode: 'auto' | 'copy' | 'decode'): DecodeSource | null {
  if (mode === 'copy' || m.kind !== 'video' || !m.sampling) return null;
  const raw = m.frameCount * (m.frameWidth as number) * (m.frameHeight as number) * 3;
  if (mode === 'auto' && (raw <= DECODE_ABOVE_BYTES || raw <= m.bytes)) return null;
  let same = false;
  try {
    const st = fs.statSync(m.path);
    same = st.size === m.bytes && Math.abs(st.mtimeMs - m.mtimeMs) < 1;
  } catch {
    same = false;
  }
  if (!same) {
    if (mode === 'auto') return null;
    throw new FlaneurError(
      'NOT_FOUND',
      `${m.path} is missing or has changed since its frames were sampled, so its frames cannot be decoded again elsewhere. Export with the frames copied instead.`,
      { field: 'frames' },
    );
  }
  const sampling = m.sampling as Sampling;
  const fps = typeof m.probe?.fps === 'number' ? m.probe.fps : null;
  return {
    source: `sources/${m.id}${path.extname(m.path).toLowerCase()}`,
    bytes: m.bytes,
    vf: videoFilters(sampling, m.frameWidth as number, m.frameHeight as number, fps).join(','),
    skipFrame: sampling.policy === 'keyframes',
  };
}

function objectiveName(a: Pick<Args, 'neco' | 'dora'>): string {
  return a.neco ? 'NeCo' : a.dora ? 'Dora' : 'DINO';
}

export const trainExportJob: JobHandler<Args, { copied: number }> = {
  kind: 'train.export',
  args: TrainExportArgs,
  title: (a) => `Export ${objectiveName(a)} training (${a.steps} steps) to ${a.dir}`,
  async run(ctx) {
    const { project } = ctx;
    const { dir: target, frames: framesMode, ...a } = ctx.args;
    const dir = path.resolve(target);
    const plan = planRun(project, a);
    const neco = a.neco ? necoSetup(a, plan.vit) : null;
    if (plan.vit.ropePeriods || plan.vit.mlp === 'swiglu' || plan.vit.family === 'dinov3')
      throw new FlaneurError(
        'INVALID_ARGUMENT',
        'The exported PyTorch program trains DINO and DINOv2 ViTs; this model (DINOv3: rotary positions, SwiGLU) can be trained in Flaneur only. Start from a DINO or DINOv2 model or from scratch.',
        { field: 'init' },
      );
    const marker = path.join(dir, '.flaneur-export');
    if (fs.existsSync(dir)) {
      const entries = fs.readdirSync(dir);
      // The marker is read only if it is a small regular file (a named pipe there would block the engine).
      const ours =
        fs.existsSync(marker) &&
        fs.statSync(marker).isFile() &&
        readRegularFile(marker, 4096, (why) => new FlaneurError('INVALID_ARGUMENT', `${marker} ${why}.`))
          .toString('utf8')
          .trim() === `${project.dir}#${ctx.jobId}`;
      if (entries.length > 0 && !ours)
        throw new FlaneurError(
          'INVALID_ARGUMENT',
          `${dir} is not empty. Export into a new or empty folder so nothing there is overwritten.`,
          { field: 'dir' },
        );
    }
    try {
      fs.mkdirSync(path.join(dir, 'frames'), { recursive: true });
      fs.writeFileSync(marker, `${project.dir}#${ctx.jobId}\n`);
    } catch (err) {
      throw new FlaneurError('IO_ERROR', `Cannot write the export folder ${dir}: ${(err as Error).message}.`, {
        field: 'dir',
      });
    }

    // The frames, one file per media item (resumable per item): copied, or the source video to decode there.
    const store = new FrameStore(project.cacheDir);
    const finished = ctx.finishedKeys();
    const decoded = new Map(plan.media.map((m) => [m.id, decodePlan(m, framesMode)]));
    ctx.phase('copying frames', { unit: 'files', total: plan.media.length, done: finished.size });
    let copied = finished.size;
    for (const m of plan.media) {
      const key = `media:${m.id}`;
      if (finished.has(key)) continue;
      ctx.throwIfAborted();
      const bytes = m.frameCount * (m.frameWidth as number) * (m.frameHeight as number) * 3;
      const decode = decoded.get(m.id);
      if (decode) {
        fs.mkdirSync(path.join(dir, 'sources'), { recursive: true });
        copyAtomic(m.path, path.join(dir, decode.source));
        copied++;
        ctx.commit([{ key, status: 'ok', result: { source: decode.source, bytes: m.bytes } }], { copied });
        ctx.progress(copied, plan.media.length);
        continue;
      }
      const src = store.file(m.id);
      if (!fs.existsSync(src) || fs.statSync(src).size < bytes)
        throw new FlaneurError(
          'NOT_FOUND',
          `The frames of ${path.basename(m.path)} are missing from the project's cache; ingest it again first.`,
          { field: 'media' },
        );
      const to = path.join(dir, 'frames', `${m.id}.rgb`);
      if (fs.statSync(src).size === bytes) copyAtomic(src, to);
      else {
        // The cache file may hold frames past the committed count (an ingest in progress): copy the committed ones.
        const fd = fs.openSync(src, 'r');
        try {
          const buf = Buffer.alloc(bytes);
          fs.readSync(fd, buf, 0, bytes, 0);
          fs.writeFileSync(`${to}.tmp`, buf);
          fs.renameSync(`${to}.tmp`, to);
        } finally {
          fs.closeSync(fd);
        }
      }
      copied++;
      ctx.commit([{ key, status: 'ok', result: { file: `frames/${m.id}.rgb`, bytes } }], { copied });
      ctx.progress(copied, plan.media.length);
    }

    ctx.phase('writing the program and configuration', { total: null });
    for (const rel of programFiles(TORCH_PROGRAM_DIR)) {
      fs.mkdirSync(path.join(dir, path.dirname(rel)), { recursive: true });
      copyAtomic(path.join(TORCH_PROGRAM_DIR, rel), path.join(dir, rel));
    }
    const sources = plan.media.map((m) => ({
      media: m.id,
      name: path.basename(m.path),
      file: `frames/${m.id}.rgb`,
      width: m.frameWidth as number,
      height: m.frameHeight as number,
      frames: m.frameCount,
      sampling: m.sampling,
      /** Source timestamp (seconds) of each sampled frame. */
      pts: project.media.frames(m.id, 0, m.frameCount).map((f) => f.pts),
      /** Decoded there (flaneur_train/data.py decode_source): the source file and the ffmpeg filters Flaneur used. */
      ...(decoded.get(m.id) ? { decode: decoded.get(m.id) } : {}),
    }));

    // Step 0: the starting weights (teacher = student), zero moments and centre, and the generator after them
    // (NeCo: the model's weights over the initialised ViT and head, as train-neco.ts; no centre).
    let params: Map<string, Float32Array>;
    let rng: Rng;
    let shapes: Map<string, number[]>;
    if (neco) {
      rng = runGenerator(a.seed);
      shapes = necoParamShapes({ vit: plan.vit, head: neco.head });
      params = necoStartingParams(plan.vit, neco.head, plan.loaded?.weights ?? null, rng, initParams);
    } else {
      ({ params, rng } = startingParams(a, plan.vit, plan.head, plan.loaded));
      shapes = dinoParamShapes({ vit: plan.vit, head: plan.head });
    }
    const tensors = new Map<string, TensorToWrite>();
    for (const [name, shape] of shapes) {
      const p = params.get(name) as Float32Array;
      const zeros = new Float32Array(p.length);
      tensors.set(`p.${name}`, { shape, data: p });
      tensors.set(`t.${name}`, { shape, data: p });
      tensors.set(`m.${name}`, { shape, data: zeros });
      tensors.set(`v.${name}`, { shape, data: zeros });
    }
    if (!neco) tensors.set('center', { shape: [a.outDim], data: new Float32Array(a.outDim) });
    fs.writeFileSync(path.join(dir, 'init.safetensors'), encodeSafetensors(tensors, { step: '0' }));
    const { mean, std, ...arch } = plan.vit;
    const config = {
      format: EXPORT_FORMAT,
      version: 1,
      flaneur: APP_VERSION,
      objective: a.neco ? 'neco' : a.dora ? 'dora' : 'dino',
      exportedAt: new Date().toISOString(),
      project: project.dir,
      args: a,
      vit: { ...arch, mean: [...mean], std: [...std] },
      head: neco ? neco.head : plan.head,
      ...(neco ? { neco: { localSize: neco.localSize } } : {}),
      init: 'init.safetensors',
      rngState: rng.state,
      data: {
        sources,
        policy:
          'the sampled frames of the project as raw RGB (frame i at i·w·h·3): copied, or (sources with "decode") decoded there from the source video with the same ffmpeg filters, keeping the frames at the recorded timestamps',
      },
    };
    fs.writeFileSync(path.join(dir, 'run.json'), `${JSON.stringify(config, null, 1)}\n`);
    const readme = fs
      .readFileSync(path.join(TORCH_PROGRAM_DIR, 'README.md'), 'utf8')
      .replaceAll('{{OBJECTIVE}}', objectiveName(a))
      .replaceAll('{{STEPS}}', String(a.steps))
      .replaceAll('{{BATCH}}', String(a.batch))
      .replaceAll('{{FRAMES}}', String(plan.frames.length))
      .replaceAll('{{VERSION}}', APP_VERSION);
    fs.writeFileSync(path.join(dir, 'README.md'), readme);
    ctx.commit([{ key: 'export', status: 'ok', result: { dir, frames: plan.frames.length } }], { copied });
  },
};
