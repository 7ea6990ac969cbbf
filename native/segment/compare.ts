/**
 * Compares encoders by in-context segmentation (Hummingbird) of the project's labelled frames: every frame with a
 * mask drawn or saved in the Segment view (project/masks/<media>-<frame>.png, class ids) is segmented with a memory
 * bank of the other labelled frames (leave one out), for each model on the same frames, banks and classes. Used to
 * show what a NeCo (or DINO/Dora) run changed: its base model against the adapted one.
 *
 * A project with fewer than 2 labelled frames is compared on the synthetic walking tour instead (synth-tour.ts,
 * the frames and masks of tests/fixtures/synthetic rendered in memory): the protocol of bench/segment.ts, a bank of
 * frames 40 and 120 and 20 held-out frames, 4 classes (background, disc, box, kite).
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
import { CATEGORIES, makeInstances, renderFrame, type TourOptions } from './synth-tour.js';

/** The synthetic tour of the fallback: the options of tests/fixtures/synthetic (tools/synth-tour.ts defaults). */
export const COMPARE_TOUR: TourOptions = {
  width: 320,
  height: 240,
  fps: 10,
  seconds: 20,
  seed: 1,
  objectsPerCategory: 4,
};
export const COMPARE_TOUR_BANK = [40, 120];
export const COMPARE_TOUR_EVAL = Array.from({ length: 20 }, (_, i) => 5 + 10 * i);
export const COMPARE_TOUR_CLASSES = ['background', ...CATEGORIES.map((c) => c.name)];

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
  /** Frames segmented (each scored against its mask). */
  frames: number;
  classes: number;
  size: number;
  /** Where the frames and masks came from: the project's labelled frames or the synthetic tour (the fallback). */
  source: 'labelled' | 'synthetic';
  /** Why the synthetic tour was used, as a sentence for the user. */
  note?: string;
  /** Class names where they are known (the synthetic tour). */
  classNames?: string[];
  models: ModelScore[];
}

/** Hummingbird with the tour's fixed bank and held-out frames, every model on the same rendered frames. */
async function compareOnTour(
  project: Project,
  o: { modelIds: readonly number[]; size: number; extractors: ExtractorCache; knn: ExactKnn },
  labelled: number,
): Promise<Comparison> {
  const t = COMPARE_TOUR;
  const instances = makeInstances(t);
  const cat = new Uint8Array(256);
  for (const i of instances) cat[i.id] = i.category;
  const classes = COMPARE_TOUR_CLASSES.length;
  const frames = [...COMPARE_TOUR_BANK, ...COMPARE_TOUR_EVAL].map((f) => {
    const r = renderFrame(t, instances, f);
    return { image: { width: t.width, height: t.height, data: r.rgb }, labels: r.mask.map((id) => cat[id] as number) };
  });
  const nBank = COMPARE_TOUR_BANK.length;
  const models: ModelScore[] = [];
  for (const modelId of o.modelIds) {
    const ex = await o.extractors.get(project, modelId, o.size, 'aspect');
    const feats = [];
    for (const f of frames) {
      const [r] = await ex.run([f.image]);
      if (!r) throw new Error('no features');
      const dim = r.patches.length / (r.gridH * r.gridW);
      feats.push({ vectors: l2normalizeRows(r.patches, dim), grid: r, dim });
    }
    const bankFeats = feats.slice(0, nBank);
    const dim = (feats[0] as (typeof feats)[number]).dim;
    const bank = labelledBank(
      concat(bankFeats.map((x) => x.vectors)),
      concat(
        bankFeats.map((x, i) =>
          patchLabels((frames[i] as (typeof frames)[number]).labels, t.width, t.height, x.grid, classes),
        ),
      ),
      dim,
      classes,
    );
    const meter = new IoUMeter(classes);
    for (let q = nBank; q < frames.length; q++) {
      const query = feats[q] as (typeof feats)[number];
      const { mask } = await segmentPatches(o.knn, bank, query.vectors, query.grid, t.width, t.height);
      meter.add(mask, (frames[q] as (typeof frames)[number]).labels);
    }
    models.push({ modelId, miou: meter.mean(), perClass: meter.perClass() });
  }
  return {
    frames: frames.length - nBank,
    classes,
    size: o.size,
    source: 'synthetic',
    note: `This project has ${labelled === 0 ? 'no labelled frames' : `only ${labelled} labelled frame`} (at least 2 are needed), so the models were compared on the synthetic walking tour: a bank of ${nBank} labelled frames, ${frames.length - nBank} frames segmented. Draw masks in the Segment view to compare on your own frames.`,
    classNames: COMPARE_TOUR_CLASSES,
    models,
  };
}

function concat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export async function compareModels(
  project: Project,
  o: { modelIds: readonly number[]; size: number; extractors: ExtractorCache; knn: ExactKnn },
): Promise<Comparison> {
  const frames = labelledFrames(project);
  if (frames.length < 2) return compareOnTour(project, o, frames.length);
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
  return { frames: frames.length, classes, size: o.size, source: 'labelled', models };
}
