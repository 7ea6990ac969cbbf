/**
 * Job: add images and videos (files or folders) to the project catalog. Streams every video through ffmpeg at the
 * chosen sampling and frame size, appends frames to the frame store and their timestamps to the catalog in small
 * committed batches, and resumes a video at the frame it reached. Every file that cannot be ingested is recorded
 * with its reason; the rest of the batch goes on.
 */
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { type ErrorInfo, FrameSize, Sampling } from '../api/contract.js';
import { diskFullError, FlaneurError, isDiskFull } from '../api/errors.js';
import type { ItemResult, JobContext, JobHandler } from '../jobs/types.js';
import { type DecodeStats, decodeStill, decodeVideo } from '../media/decode.js';
import { orientationFilters, readOrientation, swapsAxes } from '../media/exif.js';
import { FrameStore } from '../media/frame-store.js';
import {
  IMAGE_EXTENSIONS,
  MediaError,
  MediaToolError,
  type ProbeResult,
  probeMedia,
  VIDEO_EXTENSIONS,
} from '../media/probe.js';
import type { MediaKind, MediaRow } from '../store/media-repo.js';
import { contentHash } from './content-hash.js';
import { errnoReason, walkFiles } from './walk.js';

export const IngestArgs = z.object({
  paths: z.array(z.string().min(1)).min(1),
  recursive: z.boolean().default(true),
  extensions: z.array(z.string()).optional(),
  sampling: Sampling.default({ policy: 'fps', fps: 1 }),
  frameSize: FrameSize.default({ mode: 'short-side', size: 224 }),
});
export type IngestArgs = z.output<typeof IngestArgs>;

interface IngestCheckpoint {
  mediaId: number | null;
  frames: number;
}

const COMMIT_FRAMES = 16;
const COMMIT_MS = 250;

/** The longest frame side, as a multiple of the chosen size (a 1×20000 image asked ffmpeg for 224×4,480,000). */
export const MAX_LONG_SIDE_RATIO = 16;

export function frameGeometry(width: number, height: number, fs_: FrameSize): { width: number; height: number } {
  if (fs_.mode === 'square') return { width: fs_.size, height: fs_.size };
  const even = (x: number) => Math.max(2, 2 * Math.round(x / 2));
  const short = Math.min(width, height);
  const long = Math.max(width, height);
  // The shorter side gets the chosen size unless that makes the longer one too long: then the longer side is capped
  // and the shorter one follows the aspect ratio (at least 2 pixels).
  const maxLong = fs_.size * MAX_LONG_SIDE_RATIO;
  const capped = long * (fs_.size / short) > maxLong;
  const scale = capped ? maxLong / long : fs_.size / short;
  // Uncapped, the shorter side is exactly the chosen size (as before the cap; only the longer side is made even).
  const a = capped ? even(short * scale) : fs_.size;
  const b = Math.min(even(long * scale), even(maxLong));
  return width <= height ? { width: a, height: b } : { width: b, height: a };
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function problemOf(err: unknown): { code: string; message: string; details?: string } {
  if (err instanceof MediaError)
    return { code: err.problem, message: err.message, ...(err.details ? { details: err.details } : {}) };
  if (err instanceof FlaneurError) return { code: err.code, message: err.message };
  const { code, reason } = errnoReason(err);
  return { code, message: reason };
}

export const ingestMediaJob: JobHandler<IngestArgs, IngestCheckpoint> = {
  kind: 'ingest.media',
  args: IngestArgs,
  title: (a) =>
    `Add ${a.paths.length === 1 ? path.basename(a.paths[0] as string) : `${a.paths.length} items`} to the library`,
  async run(ctx) {
    const { project } = ctx;
    const store = new FrameStore(project.cacheDir);
    const exts = (ctx.args.extensions ?? [...IMAGE_EXTENSIONS, ...VIDEO_EXTENSIONS]).map((e) =>
      e.replace(/^\./, '').toLowerCase(),
    );

    // 1. What to add.
    ctx.phase('scanning', { unit: 'files' });
    const files: { abs: string; size: number; mtimeMs: number }[] = [];
    const refused: ItemResult[] = [];
    for (const p of ctx.args.paths) {
      const abs = path.resolve(p);
      let st: fs.Stats;
      try {
        st = await fs.promises.stat(abs);
      } catch (err) {
        const { code: errno, reason } = errnoReason(err);
        // A name that is not valid UTF-8 reaches JavaScript with U+FFFD in place of its bytes: say so, not "no such file".
        const badName = errno === 'NOT_FOUND' && abs.includes('\uFFFD');
        const code = badName ? 'BAD_NAME' : errno;
        const why = badName
          ? 'its name is not valid UTF-8 text, so it cannot be opened by name; rename it, then add it again'
          : code === 'NOT_FOUND'
            ? 'no such file or folder'
            : reason;
        refused.push({ key: abs, status: 'failed', error: { code, message: `${abs}: ${why}` } });
        continue;
      }
      if (st.isDirectory()) {
        for await (const e of walkFiles(abs, { recursive: ctx.args.recursive, extensions: exts, signal: ctx.signal })) {
          if (e.kind === 'file') files.push({ abs: e.abs, size: e.size, mtimeMs: e.mtimeMs });
          else
            refused.push({ key: e.abs, status: 'skipped', error: { code: e.code, message: `${e.rel}: ${e.reason}` } });
          if (files.length % 200 === 0) ctx.progress(files.length, null);
        }
      } else if (!st.isFile()) {
        // A named pipe or a device given by name (/dev/zero): refused for what it is, never opened.
        const what = st.isFIFO()
          ? 'is a named pipe (FIFO), not a file'
          : st.isSocket()
            ? 'is a socket, not a file'
            : st.isCharacterDevice() || st.isBlockDevice()
              ? 'is a device, not a file'
              : 'is not a regular file';
        refused.push({ key: abs, status: 'failed', error: { code: 'NOT_A_FILE', message: `${abs}: ${what}` } });
      } else {
        files.push({ abs, size: st.size, mtimeMs: st.mtimeMs });
      }
    }
    const finished = ctx.finishedKeys();
    const fresh = refused.filter((r) => !finished.has(r.key));
    if (fresh.length) ctx.commit(fresh, { mediaId: null, frames: 0 });

    // 2. Ingest, file by file.
    const totalBytes = files.reduce((a, f) => a + f.size, 0);
    let doneBytes = 0;
    let doneFiles = 0;
    let frames = 0;
    for (const f of files) {
      if (finished.has(f.abs)) {
        doneBytes += f.size;
        doneFiles++;
      }
    }
    ctx.phase('ingesting', { total: totalBytes, unit: 'bytes', done: doneBytes });
    const report = (fraction: number, current: number) =>
      ctx.progress(doneBytes + current * fraction, totalBytes, {
        files_done: doneFiles,
        files_total: files.length,
        frames,
      });

    for (const f of files) {
      if (finished.has(f.abs)) continue;
      ctx.throwIfAborted();
      const item = await ingestOne(ctx, store, f, (fraction, n) => {
        frames += n;
        report(fraction, f.size);
      });
      ctx.commit([item], { mediaId: null, frames: 0 });
      doneBytes += f.size;
      doneFiles++;
      report(0, 0);
    }
  },
};

async function ingestOne(
  ctx: JobContext<IngestArgs, IngestCheckpoint>,
  store: FrameStore,
  f: { abs: string; size: number; mtimeMs: number },
  onFrames: (fraction: number, newFrames: number) => void,
): Promise<ItemResult> {
  const media = ctx.project.media;
  /** The item could not be read: recorded on the media row and as the job item, and the batch goes on. */
  const failed = (mediaId: number, problem: ErrorInfo, kind?: MediaKind): ItemResult => {
    media.fail(mediaId, problem, kind);
    return { key: f.abs, status: 'failed', result: { mediaId }, error: problem };
  };
  const existing = media.byPath(f.abs);
  if (existing && existing.status === 'done' && existing.bytes === f.size && existing.mtimeMs === f.mtimeMs) {
    return {
      key: f.abs,
      status: 'skipped',
      result: { mediaId: existing.id },
      error: { code: 'ALREADY_ADDED', message: 'already in the catalog' },
    };
  }
  let row: MediaRow;
  try {
    if (f.size === 0) throw new MediaError('ZERO_LENGTH', `${path.basename(f.abs)} is empty (0 bytes)`);
    const hash = await contentHash(f.abs, f.size, ctx.signal);
    const dup = media.duplicateOf(hash, f.abs);
    if (dup)
      return {
        key: f.abs,
        status: 'skipped',
        result: { duplicateOf: dup.id },
        error: { code: 'DUPLICATE', message: `same content as ${dup.path}` },
      };
    row = media.upsert({ path: f.abs, bytes: f.size, mtimeMs: f.mtimeMs, contentHash: hash });
  } catch (err) {
    if (ctx.signal.aborted || isDiskFull(err)) throw err;
    const r = media.upsert({ path: f.abs, bytes: f.size, mtimeMs: f.mtimeMs, contentHash: null });
    return failed(r.id, problemOf(err));
  }

  let probe: ProbeResult;
  try {
    probe = await probeMedia(f.abs);
  } catch (err) {
    if (err instanceof MediaToolError) throw err; // the job stops with one clear reason; every file is left pending
    return failed(row.id, problemOf(err));
  }

  const orientation = probe.kind === 'image' && /jpe?g/i.test(path.extname(f.abs)) ? readOrientation(f.abs) : 1;
  const swap = probe.rotation === 90 || probe.rotation === 270 || swapsAxes(orientation);
  const geo = frameGeometry(swap ? probe.height : probe.width, swap ? probe.width : probe.height, ctx.args.frameSize);
  const sampling = probe.kind === 'image' ? null : ctx.args.sampling;
  // A file re-added with other settings, or half-ingested with them, starts over.
  let committed = row.frameCount;
  if (
    committed > 0 &&
    (!sameJson(row.sampling, sampling) || row.frameWidth !== geo.width || row.frameHeight !== geo.height)
  ) {
    media.resetFrames(row.id);
    committed = 0;
  }
  media.startIngest(row.id, { kind: probe.kind, probe, sampling, frameWidth: geo.width, frameHeight: geo.height });
  const frameBytes = geo.width * geo.height * 3;
  const writer = store.openForAppend(row.id, committed, frameBytes);
  try {
    if (probe.kind === 'image') {
      const data = await decodeStill(f.abs, geo.width, geo.height, orientationFilters(orientation));
      writer.append(data);
      media.addFrames(row.id, [{ idx: 0, pts: 0 }]);
      onFrames(1, 1);
      media.finish(row.id, null);
      store.png(row.id, 0, geo.width, geo.height);
      return { key: f.abs, status: 'ok', result: { mediaId: row.id, kind: 'image', frames: 1, orientation } };
    }

    const last = media.lastFrame(row.id);
    const stats: DecodeStats = { frames: 0, warnings: [] };
    let next = committed;
    let lastPts = last?.pts ?? Number.NEGATIVE_INFINITY;
    let pending: { idx: number; pts: number }[] = [];
    let lastCommit = performance.now();
    const flush = () => {
      if (pending.length === 0) return;
      media.addFrames(row.id, pending);
      const n = pending.length;
      pending = [];
      lastCommit = performance.now();
      onFrames(probe.durationS ? Math.min(1, lastPts / probe.durationS) : 0, n);
    };
    let failure: unknown = null;
    try {
      for await (const frame of decodeVideo(
        f.abs,
        {
          sampling: ctx.args.sampling,
          width: geo.width,
          height: geo.height,
          sourceFps: probe.fps,
          // Resume a little before the last frame: frames at or before it are dropped below.
          ...(last ? { startS: Math.max(0, last.pts - 1) } : {}),
          signal: ctx.signal,
        },
        stats,
      )) {
        if (frame.pts <= lastPts + 1e-6) continue;
        writer.append(frame.data);
        pending.push({ idx: next++, pts: frame.pts });
        lastPts = frame.pts;
        if (pending.length >= COMMIT_FRAMES || performance.now() - lastCommit >= COMMIT_MS) flush();
      }
    } catch (err) {
      // A full disk is not a damaged video: the job stops (DISK_FULL) and resumes here once there is space; nor is
      // an ffmpeg that cannot start (one reason for the job).
      if (isDiskFull(err) || err instanceof MediaToolError) throw err;
      failure = err;
    } finally {
      flush();
    }
    ctx.throwIfAborted();
    const total = media.get(row.id)?.frameCount ?? next;
    if (total === 0) {
      const problem = failure
        ? problemOf(failure)
        : { code: 'CORRUPT', message: `${path.basename(f.abs)}: no frame could be decoded` };
      return failed(row.id, problem, 'video');
    }
    let warning: { code: string; message: string; details?: string } | null = null;
    const interval =
      ctx.args.sampling.policy === 'fps'
        ? 1 / ctx.args.sampling.fps
        : ctx.args.sampling.policy === 'every' && probe.fps
          ? ctx.args.sampling.n / probe.fps
          : null;
    if (failure) {
      warning = { ...problemOf(failure), message: `stopped early: ${problemOf(failure).message}` };
    } else if (probe.durationS && interval !== null && probe.durationS - lastPts > Math.max(2, 2 * interval)) {
      warning = {
        code: 'CORRUPT',
        message: `truncated or damaged: frames end at ${lastPts.toFixed(1)} s of ${probe.durationS.toFixed(1)} s`,
        ...(stats.warnings.length ? { details: stats.warnings.join('\n') } : {}),
      };
    } else if (stats.warnings.length) {
      warning = {
        code: 'DECODE_WARNINGS',
        message: `decoded with ${stats.warnings.length} kind(s) of decoder warning`,
        details: stats.warnings.join('\n'),
      };
    }
    media.finish(row.id, warning);
    store.png(row.id, 0, geo.width, geo.height);
    return {
      key: f.abs,
      status: 'ok',
      result: { mediaId: row.id, kind: 'video', frames: total },
      ...(warning ? { error: warning } : {}),
    };
  } catch (err) {
    // This file could not be read after all: recorded, and the rest of the batch goes on.
    if (!isDiskFull(err) && !(err instanceof MediaToolError) && !ctx.signal.aborted)
      return failed(row.id, problemOf(err));
    // Stopped part-way (disk full, cancelled, engine stopping): the item says why and waits for the job's resume,
    // its committed frames kept.
    const frames = media.get(row.id)?.frameCount ?? 0;
    try {
      media.pause(
        row.id,
        isDiskFull(err)
          ? diskFullError(err).toJSON()
          : { code: 'STOPPED', message: `stopped after ${frames} frame(s); resume the import job to go on from there` },
      );
    } catch {
      // The database may be full as well: the job's own error says so.
    }
    throw err;
  } finally {
    writer.close();
  }
}
