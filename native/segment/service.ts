/**
 * Segmentation for the engine: memory banks from labelled frames, and segmenting any frame of the catalog with a
 * bank (query features from the run, or computed on the spot), with masks stored for display and export.
 */
import fs from 'node:fs';
import path from 'node:path';
import { FlaneurError } from '../api/errors.js';
import { frameNumber } from '../api/frames.js';
import { Rng } from '../base/rng.js';
import { frameGrid, runPolicy, toF16 } from '../features/extract.js';
import type { ExtractorCache } from '../features/extractor-cache.js';
import { assignNearest, sphericalKMeans } from '../features/kmeans.js';
import { type ExactKnn, f16RowsToF32, l2normalizeRows } from '../features/knn.js';
import { planFrame } from '../features/source-frames.js';
import { FrameStore } from '../media/frame-store.js';
import { encodePng } from '../media/png.js';
import type { BankRow } from '../store/features-repo.js';
import type { MediaRow } from '../store/media-repo.js';
import type { Project } from '../store/project.js';
import {
  HUMMINGBIRD_DEFAULTS,
  type LabelledBank,
  labelledBank,
  sampleRareFirst,
  segmentPatches,
} from './hummingbird.js';
import { IoUMeter, type PatchGrid, patchLabels } from './labels.js';
import { classColours, isBinaryMask, type MaskEncoding, readMask } from './masks.js';

export interface BankExample {
  mediaId: number;
  frameIdx: number;
  mask: string;
  encoding: MaskEncoding;
}

function frameOf(project: Project, mediaId: number, frameIdx: number) {
  const m = project.media.get(mediaId);
  if (!m?.frameWidth || !m.frameHeight || frameIdx >= m.frameCount) {
    // Frames are numbered from 1 in messages, as everywhere people read them.
    throw new FlaneurError(
      'NOT_FOUND',
      m
        ? `${path.basename(m.path)} has no frame ${frameIdx + 1}: it has ${m.frameCount} (1 to ${m.frameCount}).`
        : `No image or video with id ${mediaId} in this project.`,
      { field: m ? 'frameIdx' : 'mediaId' },
    );
  }
  return { media: m, width: m.frameWidth, height: m.frameHeight };
}

/**
 * Normalised patch features of a frame in a run with the frame's patch grid (from the run's resize policy): stored
 * ones, else computed now (and stored).
 */
export async function framePatches(
  project: Project,
  runId: number,
  mediaId: number,
  frameIdx: number,
  extractors: ExtractorCache,
): Promise<{ vectors: Float32Array; grid: PatchGrid; note?: string }> {
  const run = project.features.run(runId);
  if (!run) throw new FlaneurError('NOT_FOUND', `No feature run ${runId}.`, { field: 'runId' });
  const { width, height } = frameOf(project, mediaId, frameIdx);
  const grid = frameGrid(run, width, height);
  let feat = project.features.get(runId, mediaId, frameIdx);
  let note: string | undefined;
  if (!feat) {
    const ex = await extractors.get(project, run.modelId, run.inputSize, runPolicy(run));
    // As the extraction job reads it: decoded from the source when the run is larger than the stored frame.
    const row = project.media.get(mediaId) as MediaRow;
    const pts = row.kind === 'video' ? project.media.frames(mediaId, frameIdx, 1)[0]?.pts : 0;
    const frame = await planFrame(row, frameIdx, run.inputSize, grid, new FrameStore(project.cacheDir), pts);
    note = frame.note;
    const [f] = await ex.run([frame.image]);
    if (!f) throw new Error('no features');
    project.features.putMany(runId, [{ mediaId, frameIdx, cls: f.cls, patches: toF16(f.patches) }]);
    feat = { cls: f.cls, patches: toF16(f.patches) };
  }
  if (feat.patches.length !== grid.gridH * grid.gridW * run.dim)
    throw new FlaneurError(
      'INVALID_ARGUMENT',
      `The stored features of frame ${frameIdx + 1} of media ${mediaId} do not match its ${grid.gridH}x${grid.gridW} patch grid; extract features again.`,
    );
  return { vectors: l2normalizeRows(f16RowsToF32(feat.patches), run.dim), grid, ...(note ? { note } : {}) };
}

/** Crops an RGB frame and its label map with the same box (labels by nearest pixel), optionally mirrored. */
function cropPair(
  rgb: Uint8Array,
  labels: Uint8Array,
  width: number,
  box: [number, number, number, number],
  flip: boolean,
): { rgb: Uint8Array; labels: Uint8Array; width: number; height: number } {
  const [x0, y0, w, h] = box;
  const outRgb = new Uint8Array(w * h * 3);
  const outLab = new Uint8Array(w * h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const s = (y0 + y) * width + x0 + (flip ? w - 1 - x : x);
      outLab[y * w + x] = labels[s] as number;
      outRgb.set(rgb.subarray(s * 3, s * 3 + 3), (y * w + x) * 3);
    }
  }
  return { rgb: outRgb, labels: outLab, width: w, height: h };
}

/** The classes of a bank of binary masks: background and foreground; other masks need their classes named. */
async function binaryClasses(examples: readonly BankExample[]): Promise<string[]> {
  for (const ex of examples)
    if (!(await isBinaryMask(ex.mask)))
      throw new FlaneurError(
        'INVALID_ARGUMENT',
        `Name the classes of these masks (class 0 first): ${ex.mask} has more than two values, so they are not background and foreground.`,
        { field: 'classes' },
      );
  return ['background', 'foreground'];
}

export async function createBank(
  project: Project,
  o: {
    runId: number;
    name: string;
    /** Class names, class 0 first; absent: background and foreground when every mask is binary (else refused). */
    classes?: string[];
    examples: BankExample[];
    perImage?: number;
    /** Bound on the bank: memorySize // (examples x epochs) patches kept per view, rare classes first (Hummingbird). */
    memorySize?: number;
    /** Views per example: the frame itself, then random resized crops with flips. */
    epochs?: number;
    extractors: ExtractorCache;
    seed?: number;
  },
): Promise<BankRow & { warnings: string[] }> {
  const run = project.features.run(o.runId);
  if (!run) throw new FlaneurError('NOT_FOUND', `No feature run ${o.runId}.`, { field: 'runId' });
  const classes = o.classes ?? (await binaryClasses(o.examples));
  if (classes.length < 2 || classes.length > 254)
    throw new FlaneurError('INVALID_ARGUMENT', 'A bank needs 2 to 254 classes.', { field: 'classes' });
  const C = classes.length;
  const rng = new Rng(o.seed ?? 0);
  const epochs = o.epochs ?? 1;
  const items: { mediaId: number; frameIdx: number; vectors: Float32Array; labels: Float32Array }[] = [];
  const store = new FrameStore(project.cacheDir);
  const warnings: string[] = [];
  const extractor = epochs > 1 ? await o.extractors.get(project, run.modelId, run.inputSize, runPolicy(run)) : null;
  for (const ex of o.examples) {
    const { width, height } = frameOf(project, ex.mediaId, ex.frameIdx);
    const read = await readMask(ex.mask, width, height, ex.encoding, C, classes);
    warnings.push(...read.warnings);
    const mask = read.labels;
    const { vectors, grid, note } = await framePatches(project, run.id, ex.mediaId, ex.frameIdx, o.extractors);
    if (note)
      warnings.push(
        `Frame ${ex.frameIdx + 1} of ${path.basename(frameOf(project, ex.mediaId, ex.frameIdx).media.path)}: ${note}.`,
      );
    items.push({
      mediaId: ex.mediaId,
      frameIdx: ex.frameIdx,
      vectors,
      labels: patchLabels(mask, width, height, grid, C),
    });
    if (!extractor) continue;
    const rgb = store.read(ex.mediaId, ex.frameIdx, width * height * 3);
    for (let e = 1; e < epochs; e++) {
      // Random resized crop (area 0.5-1, aspect 3/4-4/3), mirrored half of the time.
      const area = width * height * rng.uniform(0.5, 1);
      const ratio = Math.exp(rng.uniform(Math.log(3 / 4), Math.log(4 / 3)));
      const w = Math.min(width, Math.max(8, Math.round(Math.sqrt(area * ratio))));
      const h = Math.min(height, Math.max(8, Math.round(Math.sqrt(area / ratio))));
      const view = cropPair(
        rgb,
        mask,
        width,
        [rng.int(width - w + 1), rng.int(height - h + 1), w, h],
        rng.next() < 0.5,
      );
      const [f] = await extractor.run([{ width: view.width, height: view.height, data: view.rgb }]);
      if (!f) continue;
      // Augmented views are stored under a negative frame number, so they never collide with frames.
      items.push({
        mediaId: ex.mediaId,
        frameIdx: -(ex.frameIdx * 1000 + e),
        vectors: l2normalizeRows(f.patches, run.dim),
        labels: patchLabels(view.labels, view.width, view.height, f, C),
      });
    }
  }
  const perImage = o.perImage ?? (o.memorySize ? Math.max(1, Math.floor(o.memorySize / items.length)) : undefined);
  const bank = project.features.createBank({
    name: o.name,
    runId: run.id,
    classes,
    settings: {
      perImage: perImage ?? null,
      memorySize: o.memorySize ?? null,
      epochs,
      sampler: 'rare-class-first',
      seed: o.seed ?? 0,
    },
  });
  for (const it of items) {
    const n = it.labels.length / C;
    // Patches whose pixels are all ignored carry no label: they stay out of the bank.
    const labelled = [...Array(n).keys()].filter((i) => it.labels.subarray(i * C, (i + 1) * C).some((v) => v > 0));
    const keep = perImage ? sampleRareFirst(it.labels, C, perImage, rng).filter((i) => labelled.includes(i)) : labelled;
    const vec = new Float32Array(keep.length * run.dim);
    const lab = new Float32Array(keep.length * C);
    keep.forEach((p, j) => {
      vec.set(it.vectors.subarray(p * run.dim, (p + 1) * run.dim), j * run.dim);
      lab.set(it.labels.subarray(p * C, (p + 1) * C), j * C);
    });
    project.features.addBankItem(bank.id, {
      mediaId: it.mediaId,
      frameIdx: it.frameIdx,
      n: keep.length,
      vectors: toF16(vec),
      labels: lab,
    });
  }
  return { ...(project.features.bank(bank.id) as BankRow), warnings };
}

export function loadBank(project: Project, bankId: number): { row: BankRow; bank: LabelledBank } {
  const row = project.features.bank(bankId);
  if (!row) throw new FlaneurError('NOT_FOUND', `No memory bank ${bankId}.`, { field: 'bankId' });
  const run = project.features.run(row.runId);
  if (!run) throw new FlaneurError('NOT_FOUND', `The bank's feature run ${row.runId} is gone.`);
  const items = project.features.bankItems(bankId);
  const vectors = new Float32Array(items.reduce((a, i) => a + i.n, 0) * run.dim);
  const labels = new Float32Array(items.reduce((a, i) => a + i.n, 0) * row.classes.length);
  let at = 0;
  for (const it of items) {
    vectors.set(f16RowsToF32(it.vectors), at * run.dim);
    labels.set(it.labels, at * row.classes.length);
    at += it.n;
  }
  return { row, bank: labelledBank(l2normalizeRows(vectors, run.dim), labels, run.dim, row.classes.length) };
}

export interface SegmentResult {
  bankId: number;
  mediaId: number;
  frameIdx: number;
  width: number;
  height: number;
  classes: string[];
  colours: [number, number, number][];
  pixels: number[];
  /** Served at this path (RGBA overlay PNG). */
  overlay: string;
  /** Class ids as a grayscale PNG in the project cache (for export). */
  labelFile: string;
  iou: { mean: number; perClass: (number | null)[] } | null;
  /** About the truth mask: how its values were read when they do not match the bank's classes. */
  warnings: string[];
  /** Class id per pixel (not sent to the UI). */
  mask?: Uint8Array;
  /** Class scores per patch on the frame's grid (not sent to the UI): masks at other resolutions come from them. */
  scores?: Float32Array;
  grid?: PatchGrid;
}

export async function segmentFrame(
  project: Project,
  knn: ExactKnn,
  o: {
    bankId: number;
    mediaId: number;
    frameIdx: number;
    k?: number;
    temperature?: number;
    truthMask?: { path: string; encoding: MaskEncoding };
    extractors: ExtractorCache;
  },
): Promise<SegmentResult> {
  const { row, bank } = loadBank(project, o.bankId);
  const run = project.features.run(row.runId);
  if (!run) throw new FlaneurError('NOT_FOUND', 'The bank has no feature run.');
  const { width, height } = frameOf(project, o.mediaId, o.frameIdx);
  const { vectors: queries, grid } = await framePatches(project, run.id, o.mediaId, o.frameIdx, o.extractors);
  const { mask, scores } = await segmentPatches(knn, bank, queries, grid, width, height, {
    k: o.k ?? HUMMINGBIRD_DEFAULTS.k,
    temperature: o.temperature ?? HUMMINGBIRD_DEFAULTS.temperature,
  });
  const C = row.classes.length;
  const colours = classColours(C);
  const rgba = new Uint8Array(width * height * 4);
  const pixels = new Array<number>(C).fill(0);
  for (let i = 0; i < mask.length; i++) {
    const c = mask[i] as number;
    pixels[c] = (pixels[c] as number) + 1;
    const [r, g, b] = colours[c] as [number, number, number];
    rgba.set([r, g, b, c === 0 ? 0 : 255], i * 4);
  }
  const dir = path.join(project.cacheDir, 'segment', String(o.bankId));
  fs.mkdirSync(dir, { recursive: true });
  const base = `${o.mediaId}-${o.frameIdx}`;
  fs.writeFileSync(path.join(dir, `${base}.overlay.png`), encodePng(rgba, width, height, 6, 4));
  // The file a person opens is named by the frame's number as the views show it (from 1), not the engine's index.
  const labelFile = path.join(dir, `item${o.mediaId}-frame${frameNumber(o.frameIdx)}.labels.png`);
  fs.writeFileSync(labelFile, encodePng(mask, width, height, 6, 1));
  let iou: SegmentResult['iou'] = null;
  const warnings: string[] = [];
  if (o.truthMask) {
    const meter = new IoUMeter(C);
    const truth = await readMask(o.truthMask.path, width, height, o.truthMask.encoding, C, row.classes);
    warnings.push(...truth.warnings);
    meter.add(mask, truth.labels);
    iou = { mean: meter.mean(), perClass: meter.perClass() };
  }
  return {
    bankId: o.bankId,
    mediaId: o.mediaId,
    frameIdx: o.frameIdx,
    width,
    height,
    classes: row.classes,
    colours,
    pixels,
    overlay: `/media/segment/${o.bankId}/${o.mediaId}/${o.frameIdx}.png`,
    labelFile,
    iou,
    warnings,
    mask,
    scores,
    grid,
  };
}

/** `/media/segment/<bank>/<media>/<frame>.png` → the overlay written by segmentFrame. */
export function segmentOverlay(project: Project, urlPath: string): Buffer | null {
  const m = /^\/media\/segment\/(\d+)\/(\d+)\/(\d+)\.png$/.exec(urlPath);
  if (!m) return null;
  const file = path.join(project.cacheDir, 'segment', m[1] as string, `${m[2]}-${m[3]}.overlay.png`);
  if (!fs.existsSync(file)) throw new FlaneurError('NOT_FOUND', 'No such segmentation');
  return fs.readFileSync(file);
}

/**
 * An annotation-free bank: spherical k-means over the patch features of the chosen frames; each patch is labelled
 * with its cluster (pseudo-classes "cluster 1..K" that the user can then name and merge).
 */
export async function createClusterBank(
  project: Project,
  knn: ExactKnn,
  o: {
    runId: number;
    name: string;
    clusters: number;
    frames: { mediaId: number; frameIdx: number }[];
    seed?: number;
    extractors: ExtractorCache;
  },
): Promise<BankRow> {
  const run = project.features.run(o.runId);
  if (!run) throw new FlaneurError('NOT_FOUND', `No feature run ${o.runId}.`, { field: 'runId' });
  if (o.frames.length === 0)
    throw new FlaneurError('INVALID_ARGUMENT', 'Choose at least one frame.', { field: 'frames' });
  // Frames of different media can have different grids: each frame's patches are a block of `counts[i]` rows.
  const blocks: Float32Array[] = [];
  for (const f of o.frames)
    blocks.push((await framePatches(project, run.id, f.mediaId, f.frameIdx, o.extractors)).vectors);
  const counts = blocks.map((b) => b.length / run.dim);
  const starts = counts.map((_, i) => counts.slice(0, i).reduce((a, b) => a + b, 0));
  const all = new Float32Array(counts.reduce((a, b) => a + b, 0) * run.dim);
  blocks.forEach((b, i) => {
    all.set(b, (starts[i] as number) * run.dim);
  });
  const K = o.clusters;
  const centroids = await sphericalKMeans(knn, all, run.dim, {
    k: K,
    iterations: 10,
    seed: o.seed ?? 0,
    sample: 200_000,
  });
  const owner = await assignNearest(knn, all, centroids, run.dim);
  const classes = Array.from({ length: centroids.length / run.dim }, (_, c) => `cluster ${c + 1}`);
  const C = classes.length;
  const bank = project.features.createBank({
    name: o.name,
    runId: run.id,
    classes,
    settings: { source: 'k-means', clusters: C, seed: o.seed ?? 0 },
  });
  for (const [i, f] of o.frames.entries()) {
    const n = counts[i] as number;
    const s = starts[i] as number;
    const labels = new Float32Array(n * C);
    for (let p = 0; p < n; p++) labels[p * C + (owner[s + p] as number)] = 1;
    project.features.addBankItem(bank.id, {
      mediaId: f.mediaId,
      frameIdx: f.frameIdx,
      n,
      vectors: toF16(all.subarray(s * run.dim, (s + n) * run.dim)),
      labels,
    });
  }
  return project.features.bank(bank.id) as BankRow;
}

export interface BankClassSummary {
  name: string;
  /** Patches whose label is mostly this class. */
  patches: number;
  /** Below the number of neighbours each patch is matched against (k): the class is rarely predicted. */
  tiny: boolean;
  /** Where some of its patches are (annotation-free banks keep whole frames; banks from masks do not). */
  examples: { mediaId: number; frameIdx: number; box: [number, number, number, number] }[];
}

/**
 * A bank's classes as a person checks them: patches per class, a flag for classes too small to be predicted, and
 * for banks that keep whole frames (pseudo-classes by clustering) example patches of each class, spread over the
 * frames, as boxes in 0..1 frame coordinates.
 */
export function bankClasses(project: Project, bankId: number, perClass = 6): BankClassSummary[] {
  const row = project.features.bank(bankId);
  if (!row) throw new FlaneurError('NOT_FOUND', `No memory bank ${bankId}.`, { field: 'bankId' });
  const run = project.features.run(row.runId);
  const C = row.classes.length;
  const counts = new Array<number>(C).fill(0);
  const places: { mediaId: number; frameIdx: number; box: [number, number, number, number] }[][] = row.classes.map(
    () => [],
  );
  for (const it of project.features.bankItems(bankId)) {
    const m = it.frameIdx >= 0 ? project.media.get(it.mediaId) : undefined;
    const grid = run && m?.frameWidth && m.frameHeight ? frameGrid(run, m.frameWidth, m.frameHeight) : null;
    const whole = grid !== null && it.n === grid.gridH * grid.gridW;
    for (let p = 0; p < it.n; p++) {
      let best = 0;
      for (let c = 1; c < C; c++) if ((it.labels[p * C + c] as number) > (it.labels[p * C + best] as number)) best = c;
      counts[best] = (counts[best] as number) + 1;
      if (whole && grid) {
        const x = p % grid.gridW;
        const y = Math.floor(p / grid.gridW);
        places[best]?.push({
          mediaId: it.mediaId,
          frameIdx: it.frameIdx,
          box: [x / grid.gridW, y / grid.gridH, (x + 1) / grid.gridW, (y + 1) / grid.gridH],
        });
      }
    }
  }
  return row.classes.map((name, c) => {
    const all = places[c] ?? [];
    // Evenly spaced over the class's patches, so the examples come from different frames and places.
    const step = all.length / Math.min(perClass, all.length || 1);
    const examples =
      all.length === 0
        ? []
        : Array.from(
            { length: Math.min(perClass, all.length) },
            (_, i) => all[Math.floor(i * step + step / 2)] ?? all[0],
          );
    return {
      name,
      patches: counts[c] as number,
      tiny: (counts[c] as number) < HUMMINGBIRD_DEFAULTS.k,
      examples: examples.filter((e): e is NonNullable<typeof e> => e !== undefined),
    };
  });
}

/** Renames classes and merges some into one: `into[c]` is the new index of old class c; `names` the new names. */
export function relabelBank(project: Project, bankId: number, names: string[], into: number[]): BankRow {
  const row = project.features.bank(bankId);
  if (!row) throw new FlaneurError('NOT_FOUND', `No memory bank ${bankId}.`, { field: 'bankId' });
  const C = row.classes.length;
  if (into.length !== C || into.some((t) => !Number.isInteger(t) || t < 0 || t >= names.length)) {
    throw new FlaneurError(
      'INVALID_ARGUMENT',
      `into must give each of the ${C} classes a new index below ${names.length}.`,
      { field: 'into' },
    );
  }
  const C2 = names.length;
  for (const it of project.features.bankItems(bankId)) {
    const labels = new Float32Array(it.n * C2);
    for (let p = 0; p < it.n; p++) {
      for (let c = 0; c < C; c++) {
        const t = into[c] as number;
        labels[p * C2 + t] = (labels[p * C2 + t] as number) + (it.labels[p * C + c] as number);
      }
    }
    project.features.addBankItem(bankId, {
      mediaId: it.mediaId,
      frameIdx: it.frameIdx,
      n: it.n,
      vectors: it.vectors,
      labels,
    });
  }
  project.features.setBankClasses(bankId, names);
  return project.features.bank(bankId) as BankRow;
}

/** Writes a label mask drawn in the UI (class ids, row-major) as a grayscale PNG in the project's masks/ folder. */
export function saveDrawnMask(project: Project, o: { mediaId: number; frameIdx: number; labels: Uint8Array }): string {
  const { width, height } = frameOf(project, o.mediaId, o.frameIdx);
  if (o.labels.length !== width * height) {
    throw new FlaneurError(
      'INVALID_ARGUMENT',
      `The mask has ${o.labels.length} pixels; the frame has ${width}x${height}.`,
      { field: 'data' },
    );
  }
  const dir = path.join(project.dir, 'masks');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${o.mediaId}-${o.frameIdx}.png`);
  fs.writeFileSync(file, encodePng(o.labels, width, height, 9, 1));
  return file;
}
