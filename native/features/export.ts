/**
 * Job: a feature run's stored features written out for other tools, one file per frame — CLS [D] and/or patch
 * tokens as float32 [h, w, D] (the patch grid, row-major) in .npy or .safetensors — and a manifest.json with the
 * model, input size, preprocessing and every frame's source file, number, time and grid [h, w] (frames keep their
 * aspect ratio, so grids differ between items). Resumable per frame
 * (files are written to a temporary name and renamed; frames recorded by an earlier attempt are skipped).
 */
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { FlaneurError } from '../api/errors.js';
import { frameFileStem, frameNumber } from '../api/frames.js';
import type { ItemResult, JobHandler } from '../jobs/types.js';
import { encodeSafetensors } from '../models/safetensors.js';
import { prepareFolderDestination } from '../store/destination.js';
import type { FeatureRunRow } from '../store/features-repo.js';
import type { MediaRow } from '../store/media-repo.js';
import { frameGrid } from './extract.js';
import { f16RowsToF32 } from './knn.js';

export const ExportFeaturesArgs = z.object({
  runId: z.int().positive(),
  outDir: z.string().min(1),
  what: z.enum(['cls', 'patches', 'both']).default('patches'),
  format: z.enum(['npy', 'safetensors']).default('npy'),
  /** Only these items (default: every item with features in the run). */
  media: z.array(z.int().positive()).optional(),
});
export type ExportFeaturesArgs = z.output<typeof ExportFeaturesArgs>;

/** A float32 C-order .npy file (format 1.0) of `shape`. */
export function encodeNpy(data: Float32Array, shape: readonly number[]): Buffer {
  if (shape.reduce((a, d) => a * d, 1) !== data.length)
    throw new Error(`npy: ${data.length} values do not fill shape [${shape.join(', ')}]`);
  const dims = shape.length === 1 ? `${shape[0]},` : shape.join(', ');
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${dims}), }`;
  // Magic (6) + version (2) + length (2) + header + '\n' is a multiple of 64.
  header += `${' '.repeat((64 - ((10 + header.length + 1) % 64)) % 64)}\n`;
  const pre = Buffer.alloc(10);
  pre.write('\x93NUMPY', 0, 'latin1');
  pre[6] = 1;
  pre[7] = 0;
  pre.writeUInt16LE(header.length, 8);
  return Buffer.concat([
    pre,
    Buffer.from(header, 'latin1'),
    Buffer.from(data.buffer, data.byteOffset, data.byteLength),
  ]);
}

/** The patch grid of a stored frame (its own, from the run's resize policy), checked against its token count. */
export function storedGrid(
  run: FeatureRunRow,
  frame: { width: number; height: number },
  tokens: number,
): { h: number; w: number } {
  const g = frameGrid(run, frame.width, frame.height);
  if (tokens !== g.gridH * g.gridW)
    throw new FlaneurError(
      'INTERNAL',
      `A ${frame.width}x${frame.height} frame of run ${run.id} holds ${tokens} patch tokens, not ${g.gridH}x${g.gridW}.`,
    );
  return { h: g.gridH, w: g.gridW };
}

/** File names of one frame's export, relative to the output folder. */
export function exportFiles(
  a: Pick<ExportFeaturesArgs, 'what' | 'format'>,
  mediaId: number,
  frameIdx: number,
): string[] {
  const stem = path.join(String(mediaId), frameFileStem(frameIdx));
  if (a.format === 'safetensors') return [`${stem}.safetensors`];
  return a.what === 'both' ? [`${stem}.cls.npy`, `${stem}.patches.npy`] : [`${stem}.npy`];
}

function writeAtomic(file: string, body: Buffer): void {
  // A link planted at the temporary name is removed, never followed ('wx' creates a new file or fails).
  fs.rmSync(`${file}.tmp`, { force: true });
  fs.writeFileSync(`${file}.tmp`, body, { flag: 'wx' });
  fs.renameSync(`${file}.tmp`, file);
}

export const exportFeaturesJob: JobHandler<ExportFeaturesArgs, { frames: number }> = {
  kind: 'features.export',
  args: ExportFeaturesArgs,
  title: (a) =>
    `Export ${a.what === 'both' ? 'CLS and patch' : a.what === 'cls' ? 'CLS' : 'patch'} features of run #${a.runId} as ${a.format}`,
  async run(ctx) {
    const { project, args: a } = ctx;
    const run = project.features.run(a.runId);
    if (!run) throw new FlaneurError('NOT_FOUND', `No feature run ${a.runId}.`, { field: 'runId' });
    const model = project.models.get(run.modelId);
    const ids = a.media ?? project.media.list({ status: 'done', limit: 1_000_000 }).items.map((m) => m.id);
    const media = ids.map((id) => project.media.get(id)).filter((m): m is MediaRow => m !== undefined);
    const frames: { m: MediaRow; idx: number; pts: number }[] = [];
    for (const m of media) {
      const have = project.features.doneFrames(run.id, m.id);
      for (const f of project.media.frames(m.id, 0, 10_000_000))
        if (have.has(f.idx)) frames.push({ m, idx: f.idx, pts: f.pts });
    }
    if (frames.length === 0) {
      throw new FlaneurError(
        'NOT_FOUND',
        `Feature run ${run.id} has no frames${a.media ? ' of these items' : ''}: extract features first.`,
        { field: a.media ? 'media' : 'runId' },
      );
    }
    const out = prepareFolderDestination(a.outDir, 'outDir');
    const done = ctx.finishedKeys();
    let n = frames.filter((f) => done.has(`${f.m.id}:${f.idx}`)).length;
    ctx.phase('exporting', { total: frames.length, unit: 'frames', done: n });
    let batch: ItemResult[] = [];
    try {
      for (const f of frames) {
        const key = `${f.m.id}:${f.idx}`;
        if (done.has(key)) continue;
        ctx.throwIfAborted();
        const feat = project.features.get(run.id, f.m.id, f.idx);
        if (!feat) continue;
        const patches = f16RowsToF32(feat.patches);
        const { h, w } = storedGrid(
          run,
          { width: f.m.frameWidth ?? 0, height: f.m.frameHeight ?? 0 },
          patches.length / run.dim,
        );
        const files = exportFiles(a, f.m.id, f.idx);
        fs.mkdirSync(path.join(out, String(f.m.id)), { recursive: true });
        if (a.format === 'safetensors') {
          const tensors: Record<string, { shape: number[]; data: Float32Array }> = {};
          if (a.what !== 'patches') tensors.cls = { shape: [run.dim], data: feat.cls };
          if (a.what !== 'cls') tensors.patches = { shape: [h, w, run.dim], data: patches };
          writeAtomic(path.join(out, files[0] as string), encodeSafetensors(tensors));
        } else {
          const arrays =
            a.what === 'both'
              ? [encodeNpy(feat.cls, [run.dim]), encodeNpy(patches, [h, w, run.dim])]
              : [a.what === 'cls' ? encodeNpy(feat.cls, [run.dim]) : encodeNpy(patches, [h, w, run.dim])];
          for (const [i, body] of arrays.entries()) writeAtomic(path.join(out, files[i] as string), body);
        }
        batch.push({ key, status: 'ok', result: { files } });
        n++;
        ctx.progress(n, frames.length);
        if (batch.length >= 50) {
          ctx.commit(batch, { frames: n });
          batch = [];
        }
      }
    } catch (err) {
      // What was written stays recorded (a cancel, a full disk): a resume goes on from there.
      if (batch.length) ctx.commit(batch, { frames: n });
      throw err;
    }
    const manifest = {
      format: a.format,
      what: a.what,
      dtype: 'float32',
      layout: {
        cls: '[D]',
        patches: "[h, w, D]: the frame's patch grid (its 'grid' below), row-major from the top-left patch",
        files:
          a.format === 'safetensors'
            ? '<media id>/<frame>.safetensors with tensors "cls" and/or "patches"'
            : a.what === 'both'
              ? '<media id>/<frame>.cls.npy and <media id>/<frame>.patches.npy'
              : '<media id>/<frame>.npy',
        frame: 'frames are numbered from 1, as in the app',
      },
      model: {
        id: run.modelId,
        name: model?.name ?? null,
        sha256: run.modelSha256,
        architecture: (model?.manifest as { architecture?: unknown } | undefined)?.architecture ?? null,
      },
      run: {
        id: run.id,
        inputSize: run.inputSize,
        grid: run.grid,
        dim: run.dim,
        preprocessing: run.preprocessing,
        codeVersion: run.codeVersion,
        createdAt: run.createdAt,
      },
      frames: frames.map((f) => ({
        mediaId: f.m.id,
        source: f.m.path,
        frame: frameNumber(f.idx),
        frameIdx: f.idx,
        timeS: f.pts,
        grid: (({ gridH, gridW }) => [gridH, gridW])(frameGrid(run, f.m.frameWidth ?? 0, f.m.frameHeight ?? 0)),
        files: exportFiles(a, f.m.id, f.idx),
      })),
    };
    writeAtomic(path.join(out, 'manifest.json'), Buffer.from(JSON.stringify(manifest, null, 1)));
    ctx.commit([...batch, { key: 'manifest', status: 'ok', result: { dir: out, frames: frames.length } }], {
      frames: n,
    });
  },
};
