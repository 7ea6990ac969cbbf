/**
 * Job: propagate start masks (several objects: instance ids) through a video, forward and backward from the start
 * frame to its ends, with DINO's protocol (propagate.ts) on patch features at the video's aspect ratio. Frames are
 * decoded for the run (every frame or every Nth of the source). Output: a palette PNG per frame at the source's
 * size (DAVIS layout, 00000.png …) and run.json; with truth masks, J and F per object. Resumable: the context (first
 * frame and queue) is checkpointed every few frames; memory is bounded by the context queue plus one decode window.
 */
import fs from 'node:fs';
import path from 'node:path';
import { FlaneurError } from '../api/errors.js';
import { PropagateArgs } from '../api/propagate.js';
import { FeatureExtractor, loadRegisteredModel } from '../features/extract.js';
import type { ItemResult, JobContext, JobHandler } from '../jobs/types.js';
import { encodePng } from '../media/png.js';
import { maxId, VideoScorer } from '../metrics/video.js';
import type { ImportedViT } from '../models/import-vit.js';
import type { RuntimeSettings } from '../runtime/session.js';
import { CocoWriter, rleEncode } from '../segment/export.js';
import { readMask } from '../segment/masks.js';
import { prepareFolderDestination } from '../store/destination.js';
import { sourceSize } from '../store/media-repo.js';
import type { Project } from '../store/project.js';
import { ContextSimilarity } from './affinity.js';
import { instanceMask, motCsv } from './export.js';
import type { FrameSource } from './frames.js';
import { VideoFrameSource } from './frames.js';
import { type ContextFrame, gridLabels, LabelPropagator, labelsToMask, type PropagateOptions } from './propagate.js';

/** DAVIS's colour map (the PASCAL VOC one): index i's colour from the bits of i. */
export function davisPalette(): [number, number, number][] {
  const out: [number, number, number][] = [];
  for (let i = 0; i < 256; i++) {
    let r = 0;
    let g = 0;
    let b = 0;
    let c = i;
    for (let j = 0; j < 8; j++) {
      r |= ((c >> 0) & 1) << (7 - j);
      g |= ((c >> 1) & 1) << (7 - j);
      b |= ((c >> 2) & 1) << (7 - j);
      c >>= 3;
    }
    out.push([r, g, b]);
  }
  return out;
}

const PALETTE = davisPalette();

/** A palette PNG of instance ids (DAVIS's colours): what DAVIS tools and Flaneur's mask readers read. */
export function instancePng(ids: Uint8Array, width: number, height: number): Buffer {
  return encodePng(ids, width, height, 6, 1, PALETTE);
}

/**
 * Instance ids (0 = background) of a start or truth mask at width × height: a palette PNG's indices, 0/255 as one
 * object, gray values as ids; DAVIS's void (255 in a palette or id mask) as background.
 */
export async function readInstanceMask(file: string, width: number, height: number): Promise<Uint8Array> {
  const r = await readMask(file, width, height, { kind: 'auto' }, 255);
  return Uint8Array.from(r.labels, (v) => (v === 255 ? 0 : v));
}

/** `<frame>.png` names of the DAVIS layout: the run's frame index, 5 digits. */
export function frameFile(index: number): string {
  return `${String(index).padStart(5, '0')}.png`;
}

export interface PropagationPass {
  source: FrameSource;
  extractor: FeatureExtractor;
  classes: number;
  options: PropagateOptions & { upsample: 'input' | 'source' };
  start: number;
  startIds: Uint8Array;
  direction: 'forward' | 'backward';
  /** Cosines on the execution provider (default: in JS). */
  similarity?: ContextSimilarity;
  /** Throws when the run should stop (the job's cancellation). */
  throwIfAborted?: () => void;
  /** A checkpointed context to go on from, and the frame to go on at. */
  resume?: { next: number; snapshot: { first: ContextFrame; queue: ContextFrame[] } };
  onFrame(index: number, ids: Uint8Array, propagator: LabelPropagator): Promise<void> | void;
}

/** Propagates from the start frame to one end of the source. */
export async function propagatePass(p: PropagationPass): Promise<void> {
  const { source, extractor, classes, options } = p;
  const step = p.direction === 'forward' ? 1 : -1;
  const end = p.direction === 'forward' ? source.count : -1;
  const shape = extractor.shapeOf(source.width, source.height);
  const grid = { gridH: shape.gridH, gridW: shape.gridW };
  const dim = extractor.model.config.dim;
  const features = async (i: number) => {
    const [f] = await extractor.run([await source.read(i)]);
    return (f as { patches: Float32Array }).patches;
  };
  let propagator: LabelPropagator;
  let from: number;
  if (p.resume) {
    propagator = LabelPropagator.restore(grid, dim, classes, p.resume.snapshot, options);
    from = p.resume.next;
  } else {
    const labels = gridLabels(p.startIds, source.width, source.height, grid, classes);
    propagator = new LabelPropagator(grid, dim, classes, await features(p.start), labels, options);
    from = p.start + step;
  }
  const target = {
    inputWidth: shape.width,
    inputHeight: shape.height,
    width: source.width,
    height: source.height,
  };
  for (let i = from; i !== end; i += step) {
    p.throwIfAborted?.();
    const f = await features(i);
    const labels = p.similarity ? await propagator.stepWith(f, p.similarity.run) : propagator.step(f);
    await p.onFrame(i, labelsToMask(labels, grid, classes, target, options.upsample === 'source'), propagator);
  }
}

/** The context, saved as one file (JSON header + float32 rows) so a resumed job goes on where it stopped. */
export function writeState(
  file: string,
  head: Record<string, unknown>,
  snap: { first: ContextFrame; queue: ContextFrame[] },
): void {
  const frames = [snap.first, ...snap.queue];
  const header = Buffer.from(JSON.stringify({ ...head, frames: frames.length }));
  const parts: Buffer[] = [Buffer.alloc(4), header];
  parts[0]?.writeUInt32LE(header.length);
  for (const f of frames) {
    parts.push(Buffer.from(f.feats.buffer, f.feats.byteOffset, f.feats.byteLength));
    parts.push(Buffer.from(f.labels.buffer, f.labels.byteOffset, f.labels.byteLength));
  }
  fs.writeFileSync(`${file}.tmp`, Buffer.concat(parts));
  fs.renameSync(`${file}.tmp`, file);
}

export function readState(
  file: string,
  n: number,
  dim: number,
  classes: number,
): { head: Record<string, unknown>; snapshot: { first: ContextFrame; queue: ContextFrame[] } } | null {
  if (!fs.existsSync(file)) return null;
  const buf = fs.readFileSync(file);
  const len = buf.readUInt32LE(0);
  const head = JSON.parse(buf.subarray(4, 4 + len).toString('utf8')) as Record<string, unknown> & { frames: number };
  const floats = new Float32Array(buf.buffer.slice(buf.byteOffset + 4 + len, buf.byteOffset + buf.byteLength));
  const per = n * dim + classes * n;
  if (floats.length !== head.frames * per) return null;
  const frames: ContextFrame[] = [];
  for (let f = 0; f < head.frames; f++) {
    const o = f * per;
    frames.push({ feats: floats.slice(o, o + n * dim), labels: floats.slice(o + n * dim, o + per) });
  }
  return { head, snapshot: { first: frames[0] as ContextFrame, queue: frames.slice(1) } };
}

/** Frames between checkpoints of the context. */
const CHECKPOINT_EVERY = 10;

interface PropagateCheckpoint {
  /** Passes finished, and the pass under way with its next frame. */
  done: ('forward' | 'backward')[];
  frames: number;
}

export async function loadExtractor(
  model: ImportedViT,
  size: number,
  runtime: RuntimeSettings,
  frame: { width: number; height: number },
): Promise<FeatureExtractor> {
  return FeatureExtractor.create(model, size, runtime, 'aspect', frame);
}

async function startMasks(
  ctx: JobContext<PropagateArgs, PropagateCheckpoint>,
  width: number,
  height: number,
  /** The start frame's time in the source. */
  t: number,
) {
  const { project, args: a } = ctx;
  if ('mask' in a.start) return readInstanceMask(a.start.mask, width, height);
  const run = project.tracks.run(a.start.trackRun);
  if (!run || run.mediaId !== a.mediaId)
    throw new FlaneurError('NOT_FOUND', `No track run ${a.start.trackRun} of this item.`, { field: 'start' });
  // The run's frames are the library's sample: its frame nearest to the start frame's time.
  const boxes = project.tracks.boxes(run.id);
  const frames = [...new Set(boxes.map((b) => b.frameIdx))];
  if (frames.length === 0) throw new FlaneurError('NOT_FOUND', `Track run ${run.id} has no frames yet.`);
  const media = project.media.get(a.mediaId);
  const libFps = ((media?.sampling ?? {}) as { fps?: number }).fps ?? 1;
  const nearest = frames.reduce((best, f) => (Math.abs(f / libFps - t) < Math.abs(best / libFps - t) ? f : best));
  const want = a.start.objects;
  const chosen = boxes.filter((b) => b.frameIdx === nearest && (!want || want.includes(b.object)));
  return instanceMask(chosen, run.grid, width, height);
}

export const propagateJob: JobHandler<PropagateArgs, PropagateCheckpoint> = {
  kind: 'track.propagate',
  args: PropagateArgs,
  title: (a) => `Propagate masks through media #${a.mediaId}`,
  async run(ctx) {
    const { project, args: a } = ctx;
    const media = project.media.get(a.mediaId);
    if (media?.kind !== 'video' || !media.frameWidth || !media.frameHeight)
      throw new FlaneurError('NOT_FOUND', `Media ${a.mediaId} is not an ingested video.`, { field: 'mediaId' });
    const size = sourceSize(media);
    const fps = ((media.probe ?? {}) as { fps?: number | null }).fps ?? null;
    const out = prepareFolderDestination(
      a.outDir ?? path.join(project.dir, 'exports', `propagate-${ctx.jobId}`),
      'outDir',
    );
    const { model } = loadRegisteredModel(project, a.modelId);
    ctx.phase('listing frames', { total: null, unit: 'frames' });
    const source = await VideoFrameSource.open(media.path, size, { every: a.every, fps, signal: ctx.signal });
    const fromFrame = a.fromTime === undefined ? a.fromFrame : nearestIndex(source.pts, a.fromTime);
    if (fromFrame >= source.count)
      throw new FlaneurError(
        'INVALID_ARGUMENT',
        `The run has ${source.count} frames (every ${a.every} of the video): there is no frame ${fromFrame + 1}.`,
        { field: 'fromFrame' },
      );
    const startIds = await startMasks(ctx, size.width, size.height, source.pts[fromFrame] as number);
    const objects = maxId(startIds);
    if (objects === 0)
      throw new FlaneurError('INVALID_ARGUMENT', 'The start mask has no object (every pixel is background).', {
        field: 'start',
      });
    const classes = objects + 1;
    const extractor = await loadExtractor(model, a.size, ctx.runtime, size);
    const similarity = new ContextSimilarity(model.config.dim, ctx.runtime);
    const shape = extractor.shapeOf(size.width, size.height);
    const n = shape.gridH * shape.gridW;
    const dim = model.config.dim;
    const stateFile = path.join(out, '.propagate-state');
    const passes = (a.direction === 'both' ? ['forward', 'backward'] : [a.direction]) as ('forward' | 'backward')[];
    const todo = passes.reduce((s, d) => s + (d === 'forward' ? source.count - 1 - fromFrame : fromFrame), 0);
    const checkpoint: PropagateCheckpoint = ctx.checkpoint ?? { done: [], frames: 0 };
    const masks = new Map<number, true>();
    fs.writeFileSync(path.join(out, frameFile(fromFrame)), instancePng(startIds, size.width, size.height));
    masks.set(fromFrame, true);
    const options = { ...a, upsample: a.upsample };
    // What the Player needs while the run goes on (frames and their times); the scores are added at the end.
    const baseManifest = {
      jobId: ctx.jobId,
      mediaId: media.id,
      source: media.path,
      every: a.every,
      frames: source.count,
      pts: source.pts,
      fromFrame,
      direction: a.direction,
      objects,
      width: size.width,
      height: size.height,
    };
    fs.writeFileSync(path.join(out, 'run.json'), `${JSON.stringify(baseManifest, null, 2)}\n`);
    ctx.phase(`propagating on ${extractor.provider}`, { total: todo, unit: 'frames', done: checkpoint.frames });
    let done = checkpoint.frames;
    try {
      for (const direction of passes) {
        if (checkpoint.done.includes(direction)) continue;
        const saved = readState(stateFile, n, dim, classes);
        const resume =
          saved && saved.head.direction === direction
            ? { next: saved.head.next as number, snapshot: saved.snapshot }
            : undefined;
        let since = 0;
        await propagatePass({
          source,
          extractor,
          classes,
          options,
          start: fromFrame,
          startIds,
          direction,
          similarity,
          throwIfAborted: () => ctx.throwIfAborted(),
          ...(resume ? { resume } : {}),
          onFrame: (i, ids, propagator) => {
            fs.writeFileSync(path.join(out, frameFile(i)), instancePng(ids, size.width, size.height));
            done++;
            ctx.progress(done, todo);
            if (++since >= CHECKPOINT_EVERY) {
              since = 0;
              writeState(stateFile, { direction, next: i + (direction === 'forward' ? 1 : -1) }, propagator.snapshot());
              ctx.commit([], { done: checkpoint.done, frames: done });
            }
          },
        });
        checkpoint.done.push(direction);
        fs.rmSync(stateFile, { force: true });
        ctx.commit([], { done: checkpoint.done, frames: done });
      }
    } finally {
      await extractor.release();
      await similarity.release();
    }
    ctx.phase('exporting', { total: source.count, unit: 'frames' });
    const exported = await writeExports(out, source.count, objects, size, media.path, media.id, (i) =>
      ctx.progress(i + 1, source.count),
    );
    const items: ItemResult[] = [];
    let score = null;
    if (a.truth) score = await scoreFolder(out, a.truth, source.count, fromFrame, objects, size);
    const manifest = {
      ...baseManifest,

      grid: { gridH: shape.gridH, gridW: shape.gridW },
      modelId: a.modelId,
      params: {
        context: a.context,
        topk: a.topk,
        radius: a.radius,
        temperature: a.temperature,
        firstRadius: a.firstRadius ?? a.radius,
        firstPrior: a.firstPrior,
        reidentify: a.reidentify,
        size: a.size,
        upsample: a.upsample,
      },
      score,
    };
    fs.writeFileSync(path.join(out, 'run.json'), `${JSON.stringify(manifest, null, 2)}\n`);
    items.push({ key: 'run', status: 'ok', result: { dir: out, frames: source.count, objects, score, ...exported } });
    ctx.commit(items, { done: checkpoint.done, frames: done });
  },
};

/** J and F of the run's masks against a folder of truth PNGs (named by frame index, or in name order). */
export async function scoreFolder(
  out: string,
  truthDir: string,
  frames: number,
  start: number,
  objects: number,
  size: { width: number; height: number },
) {
  const files = fs
    .readdirSync(truthDir)
    .filter((f) => /\.png$/i.test(f))
    .sort();
  const byIndex = new Map<number, string>();
  const numbered = files.every((f) => /^\d+\.png$/i.test(f));
  files.forEach((f, i) => {
    byIndex.set(numbered ? Number.parseInt(f, 10) : i, path.join(truthDir, f));
  });
  const scorer = new VideoScorer(objects);
  for (let i = 0; i < frames; i++) {
    const t = byIndex.get(i);
    if (i === start || !t) continue;
    const truth = await readInstanceMask(t, size.width, size.height);
    const pred = await readInstanceMask(path.join(out, frameFile(i)), size.width, size.height);
    scorer.add(pred, truth, size.width, size.height);
  }
  return { ...scorer.score(), frames: scorer.frames };
}

/**
 * The run's masks as COCO JSON (one RLE per object and frame, category = object id) and MOT Challenge CSV boxes,
 * read back from its PNGs (so a resumed run exports every frame).
 */
export async function writeExports(
  out: string,
  frames: number,
  objects: number,
  size: { width: number; height: number },
  source: string,
  mediaId: number,
  progress?: (i: number) => void,
): Promise<{ coco: string; mot: string }> {
  const coco = new CocoWriter(['background', ...Array.from({ length: objects }, (_, o) => `object ${o + 1}`)]);
  const boxes: { object: number; frameIdx: number; box: [number, number, number, number]; area: number }[] = [];
  for (let i = 0; i < frames; i++) {
    const file = path.join(out, frameFile(i));
    if (!fs.existsSync(file)) continue;
    const ids = await readInstanceMask(file, size.width, size.height);
    coco.add(
      {
        file_name: `${source}#frame=${i + 1}`,
        width: size.width,
        height: size.height,
        media_id: mediaId,
        frame_index: i,
      },
      ids,
    );
    for (let o = 1; o <= objects; o++) {
      const { area, bbox } = rleEncode(ids, size.width, size.height, o);
      boxes.push({ object: o, frameIdx: i, box: bbox, area });
    }
    progress?.(i);
  }
  const cocoFile = path.join(out, 'coco.json');
  fs.writeFileSync(cocoFile, JSON.stringify(coco.toJSON()));
  const motFile = path.join(out, 'mot.txt');
  fs.writeFileSync(motFile, motCsv(boxes));
  return { coco: cocoFile, mot: motFile };
}

/** The index of the time nearest to `t` in ascending `pts`. */
export function nearestIndex(pts: readonly number[], t: number): number {
  let best = 0;
  for (let i = 1; i < pts.length; i++)
    if (Math.abs((pts[i] as number) - t) < Math.abs((pts[best] as number) - t)) best = i;
  return best;
}

/** A propagation job's mask of the run frame nearest to `pts`, at width × height (the Player's overlay). */
export async function propagationFrame(project: Project, jobId: number, pts: number, width: number, height: number) {
  const job = project.jobs.get(jobId);
  if (job?.kind !== 'track.propagate')
    throw new FlaneurError('NOT_FOUND', `No propagation job ${jobId}.`, { field: 'jobId' });
  const dir = (job.args.outDir as string | undefined) ?? path.join(project.dir, 'exports', `propagate-${jobId}`);
  const manifest = path.join(dir, 'run.json');
  if (!fs.existsSync(manifest)) return { dir, frame: null, frames: 0, objects: 0, ids: null };
  const run = JSON.parse(fs.readFileSync(manifest, 'utf8')) as { pts: number[]; objects: number };
  const frame = nearestIndex(run.pts, pts);
  const file = path.join(dir, frameFile(frame));
  const ids = fs.existsSync(file) ? Buffer.from(await readInstanceMask(file, width, height)).toString('base64') : null;
  return { dir, frame: ids ? frame : null, frames: run.pts.length, objects: run.objects, ids };
}
