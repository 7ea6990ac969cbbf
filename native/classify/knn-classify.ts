/**
 * kNN classification (DINO's weighted vote, as FUNGI evaluates): the k most cosine-similar labelled vectors vote
 * with weight exp(sim / T); the class with the largest vote wins, its share of the vote is the confidence.
 * Labelled folders: a file's class is the name of the first sub-folder of the root it lies under.
 */
import path from 'node:path';
import { FlaneurError } from '../api/errors.js';
import { type ExactKnn, makeBank } from '../features/knn.js';
import { frameVectors, resolveSource } from '../fungi/vectors.js';
import type { Project } from '../store/project.js';

export const KNN_DEFAULTS = { k: 20, temperature: 0.07 } as const;

/** The class of `file` under the labelled `root` (its first sub-folder), or null when outside or directly in it. */
export function classOfPath(root: string, file: string): string | null {
  const rel = path.relative(path.resolve(root), path.resolve(file));
  if (!rel || rel.startsWith('..') || path.isAbsolute(rel)) return null;
  const parts = rel.split(path.sep);
  return parts.length >= 2 ? (parts[0] as string) : null;
}

/**
 * Per root, the class of each key's frame (its media's first sub-folder under the root, or null); paths read once.
 * `byContent[r]`: classes of items whose content lies under root r at another path (used where the path says none).
 */
export function classNamesUnder(
  project: Project,
  keys: readonly { mediaId: number }[],
  roots: readonly string[],
  byContent: readonly (ReadonlyMap<number, string> | undefined)[] = [],
): (string | null)[][] {
  const paths = new Map<number, string>();
  for (const k of keys) if (!paths.has(k.mediaId)) paths.set(k.mediaId, project.media.get(k.mediaId)?.path ?? '');
  return roots.map((root, r) =>
    keys.map((k) => classOfPath(root, paths.get(k.mediaId) as string) ?? byContent[r]?.get(k.mediaId) ?? null),
  );
}

/** The distinct class names, sorted (their indices are the class ids). */
export function classList(names: readonly (string | null)[]): string[] {
  return [...new Set(names.filter((c): c is string => c !== null))].sort();
}

export interface Votes {
  predicted: Int32Array;
  confidence: Float32Array;
}

/**
 * Weighted votes from search results (`indices`/`sims`, `kk` per query, best first). `self[q]` is a bank index to
 * leave out for query q (leave-one-out), or -1.
 */
export function vote(
  indices: Int32Array,
  sims: Float32Array,
  kk: number,
  k: number,
  labels: Int32Array,
  classes: number,
  temperature: number,
  self?: Int32Array,
): Votes {
  const nq = indices.length / kk;
  const predicted = new Int32Array(nq);
  const confidence = new Float32Array(nq);
  const v = new Float64Array(classes);
  for (let q = 0; q < nq; q++) {
    v.fill(0);
    let used = 0;
    for (let j = 0; j < kk && used < k; j++) {
      const i = indices[q * kk + j] as number;
      if (i < 0 || (self && i === self[q])) continue;
      const c = labels[i] as number;
      v[c] = (v[c] as number) + Math.exp((sims[q * kk + j] as number) / temperature);
      used++;
    }
    let best = 0;
    let total = 0;
    for (let c = 0; c < classes; c++) {
      total += v[c] as number;
      if ((v[c] as number) > (v[best] as number)) best = c;
    }
    predicted[q] = best;
    confidence[q] = total > 0 ? (v[best] as number) / total : 0;
  }
  return { predicted, confidence };
}

/** Classifies `queries` against a labelled bank (rows L2-normalised). */
export async function knnClassify(
  knn: ExactKnn,
  bank: { vectors: Float32Array; labels: Int32Array; classes: number },
  queries: Float32Array,
  dim: number,
  o: { k?: number; temperature?: number; leaveOneOut?: boolean } = {},
): Promise<Votes> {
  const k = o.k ?? KNN_DEFAULTS.k;
  const kk = k + (o.leaveOneOut ? 1 : 0);
  const { indices, sims } = await knn.search(queries, makeBank(bank.vectors, dim), kk);
  const got = Math.min(kk, bank.vectors.length / dim);
  const self = o.leaveOneOut ? Int32Array.from({ length: queries.length / dim }, (_, i) => i) : undefined;
  return vote(indices, sims, got, k, bank.labels, bank.classes, o.temperature ?? KNN_DEFAULTS.temperature, self);
}

export function confusionMatrix(truth: Int32Array, predicted: Int32Array, classes: number): number[][] {
  const m = Array.from({ length: classes }, () => new Array<number>(classes).fill(0));
  truth.forEach((t, i) => {
    const row = m[t] as number[];
    const p = predicted[i] as number;
    row[p] = (row[p] as number) + 1;
  });
  return m;
}

/** What a labelled folder says beyond its paths (engine/labelled-content.ts finds it), per root. */
export interface FolderLabels {
  /** Classes of library items whose content lies under the root at another path (a copy). */
  labels: ReadonlyMap<number, string>;
  /** Every library item the folder labels, by its path or its content. */
  items: readonly number[];
  /** Why some of its files label nothing (a sentence; empty when all do). */
  why: string;
}

/** The `classify.knn` command: a labelled folder scored (leave-one-out or against a query folder), the rest predicted. */
export async function classifyFolder(
  project: Project,
  knn: ExactKnn,
  a: {
    runId: number;
    features?: 'embedding' | 'fungi';
    root: string;
    queryRoot?: string;
    k?: number;
    temperature?: number;
  },
  /** Per root (root, then queryRoot): what its files label beyond their paths, and why some label nothing. */
  folders: readonly (FolderLabels | undefined)[] = [],
) {
  const source = resolveSource(project, a.runId, a.features);
  const { keys, vectors, dim } = await frameVectors(project, source);
  const roots = a.queryRoot ? [a.root, a.queryRoot] : [a.root];
  const byContent = folders.map((f) => f?.labels);
  const [labelOf = [], queryLabelOf = null] = classNamesUnder(project, keys, roots, byContent);
  const classes = classList(labelOf);
  if (classes.length < 2) {
    const inRun = new Set(keys.map((k) => k.mediaId));
    const items = folders[0]?.items ?? [];
    const noFeatures = items.filter((id) => !inRun.has(id)).length;
    // Asked while an extraction is still under way (the run grows when it ends): say so, not only "found 0".
    const extracting = project.jobs.list({ states: ['queued', 'running'], kinds: ['features.extract'], limit: 1 })[0];
    const why = [
      noFeatures
        ? `${noFeatures} of the ${items.length} library items it labels have no features in this run (${extracting ? `features are being extracted now, job #${extracting.id}: classify again when it has finished` : 'extract again after adding them'}).`
        : '',
      folders[0]?.why ?? '',
    ]
      .filter(Boolean)
      .join(' ');
    throw new FlaneurError(
      'INVALID_ARGUMENT',
      `${a.root} needs at least two labelled sub-folders with frames in this run (found ${classes.length}). ${why || 'Its images must be in the library (Library → Add, the folder itself or copies of its files) and have features in this run (extract again after adding them).'}`,
      { field: 'root' },
    );
  }
  // Items labelled through their content (a copy of the file is in the library), not their path.
  const contentIds = new Set(byContent.flatMap((m) => (m ? [...m.keys()] : [])));
  const attachedByContent = [...contentIds].filter((id) => project.media.get(id)).length;
  const classIndex = new Map(classes.map((c, i) => [c, i]));
  const bankIdx = labelOf.flatMap((c, i) => (c !== null ? [i] : []));
  const rows = (idx: number[]) => {
    const out = new Float32Array(idx.length * dim);
    idx.forEach((i, r) => {
      out.set(vectors.subarray(i * dim, (i + 1) * dim), r * dim);
    });
    return out;
  };
  const bank = {
    vectors: rows(bankIdx),
    labels: Int32Array.from(bankIdx, (i) => classIndex.get(labelOf[i] as string) as number),
    classes: classes.length,
  };
  const opts = { k: a.k ?? KNN_DEFAULTS.k, temperature: a.temperature ?? KNN_DEFAULTS.temperature };
  // Scored set: the query folder's frames whose class is known, or the labelled frames themselves (leave-one-out).
  const evalIdx = queryLabelOf
    ? queryLabelOf.flatMap((c, i) => (c !== null && classIndex.has(c) && labelOf[i] === null ? [i] : []))
    : bankIdx;
  const truth = Int32Array.from(evalIdx, (i) => classIndex.get((queryLabelOf?.[i] ?? labelOf[i]) as string) as number);
  const scored = await knnClassify(knn, bank, rows(evalIdx), dim, { ...opts, leaveOneOut: !queryLabelOf });
  let correct = 0;
  const misclassified = [];
  for (let q = 0; q < evalIdx.length; q++) {
    if (scored.predicted[q] === truth[q]) correct++;
    else if (misclassified.length < 500) {
      const key = keys[evalIdx[q] as number] as (typeof keys)[number];
      misclassified.push({
        ...key,
        truth: truth[q] as number,
        predicted: scored.predicted[q] as number,
        confidence: scored.confidence[q] as number,
      });
    }
  }
  const evaluated = new Set(evalIdx);
  const restIdx = keys.flatMap((_, i) => (labelOf[i] === null && !evaluated.has(i) ? [i] : []));
  const rest = restIdx.length ? await knnClassify(knn, bank, rows(restIdx), dim, opts) : null;
  return {
    features: source.kind,
    attachedByContent,
    classes,
    evaluated: evalIdx.length,
    accuracy: evalIdx.length ? correct / evalIdx.length : 0,
    confusion: confusionMatrix(truth, scored.predicted, classes.length),
    misclassified,
    predictions: restIdx.slice(0, 5000).map((i, q) => ({
      ...(keys[i] as (typeof keys)[number]),
      predicted: rest?.predicted[q] as number,
      confidence: rest?.confidence[q] as number,
    })),
  };
}
