/**
 * Compares encoders by in-context segmentation (Hummingbird) of the project's labelled frames: every frame with a
 * mask drawn or saved in the Segment view (project/masks/<media>-<frame>.png, class ids) is segmented with a memory
 * bank of the other labelled frames (leave one out), for each model on the same frames, banks and classes. Used to
 * show what a NeCo (or DINO/Dora) run changed: its base model against the adapted one.
 */
import fs from 'node:fs';
import path from 'node:path';
import { FlaneurError } from '../api/errors.js';
import type { ExtractorCache } from '../features/extractor-cache.js';
import { type ExactKnn, l2normalizeRows } from '../features/knn.js';
import { FrameStore } from '../media/frame-store.js';
import type { Project } from '../store/project.js';
import { labelledBank, segmentPatches } from './hummingbird.js';
import { IoUMeter, patchLabels } from './labels.js';
import { readMask } from './masks.js';

export interface LabelledFrame {
  mediaId: number;
  frameIdx: number;
  file: string;
}

/** Frames with a saved mask whose media item and frame still exist. */
export function labelledFrames(project: Project): LabelledFrame[] {
  const dir = path.join(project.dir, 'masks');
  if (!fs.existsSync(dir)) return [];
  const out: LabelledFrame[] = [];
  for (const f of fs.readdirSync(dir).sort()) {
    const m = /^(\d+)-(\d+)\.png$/.exec(f);
    if (!m) continue;
    const mediaId = Number(m[1]);
    const frameIdx = Number(m[2]);
    const media = project.media.get(mediaId);
    if (media?.frameWidth && media.frameHeight && frameIdx < media.frameCount)
      out.push({ mediaId, frameIdx, file: path.join(dir, f) });
  }
  return out;
}

export interface ModelScore {
  modelId: number;
  miou: number;
  /** IoU per class id (null: the class appears in no evaluated frame and was never predicted). */
  perClass: (number | null)[];
}

export interface Comparison {
  frames: number;
  classes: number;
  size: number;
  models: ModelScore[];
}

export async function compareModels(
  project: Project,
  o: { modelIds: readonly number[]; size: number; extractors: ExtractorCache; knn: ExactKnn },
): Promise<Comparison> {
  const frames = labelledFrames(project);
  if (frames.length < 2)
    throw new FlaneurError(
      'INVALID_ARGUMENT',
      `In-context segmentation needs at least 2 labelled frames; this project has ${frames.length}. Draw masks for a few frames in the Segment view, then compare again.`,
      { field: 'modelIds' },
    );
  const store = new FrameStore(project.cacheDir);
  // Masks are class ids (255: ignored); the classes are those that occur.
  const masks: { w: number; h: number; labels: Uint8Array }[] = [];
  let classes = 0;
  for (const f of frames) {
    const m = project.media.get(f.mediaId);
    const w = m?.frameWidth as number;
    const h = m?.frameHeight as number;
    const read = await readMask(f.file, w, h, { kind: 'ids' }, 255);
    for (const v of read.labels) if (v !== 255) classes = Math.max(classes, v + 1);
    masks.push({ w, h, labels: read.labels });
  }
  if (classes < 2)
    throw new FlaneurError(
      'INVALID_ARGUMENT',
      'The labelled frames hold fewer than 2 classes; label at least two kinds of region to compare segmentations.',
      { field: 'modelIds' },
    );
  const models: ModelScore[] = [];
  for (const modelId of o.modelIds) {
    const ex = await o.extractors.get(project, modelId, o.size, 'aspect');
    const feats = [];
    for (const [i, f] of frames.entries()) {
      const mk = masks[i] as (typeof masks)[number];
      const [r] = await ex.run([store.image(f.mediaId, f.frameIdx, mk.w, mk.h)]);
      if (!r) throw new Error('no features');
      const dim = r.patches.length / (r.gridH * r.gridW);
      feats.push({
        vectors: l2normalizeRows(r.patches, dim),
        labels: patchLabels(mk.labels, mk.w, mk.h, r, classes),
        grid: r,
        dim,
      });
    }
    const meter = new IoUMeter(classes);
    for (const [q, query] of feats.entries()) {
      const others = feats.filter((_, j) => j !== q);
      const vectors = new Float32Array(others.reduce((a, x) => a + x.vectors.length, 0));
      const labels = new Float32Array(others.reduce((a, x) => a + x.labels.length, 0));
      let at = 0;
      let lat = 0;
      for (const x of others) {
        vectors.set(x.vectors, at);
        labels.set(x.labels, lat);
        at += x.vectors.length;
        lat += x.labels.length;
      }
      const bank = labelledBank(vectors, labels, query.dim, classes);
      const mk = masks[q] as (typeof masks)[number];
      const { mask } = await segmentPatches(o.knn, bank, query.vectors, query.grid, mk.w, mk.h);
      meter.add(mask, mk.labels);
    }
    models.push({ modelId, miou: meter.mean(), perClass: meter.perClass() });
  }
  return { frames: frames.length, classes, size: o.size, models };
}
