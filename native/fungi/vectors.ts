/**
 * The vectors retrieval, kNN classification and the embedding map use for a frame set: CLS embeddings of a
 * feature run, or FUNGI vectors of a FUNGI run after its PCA, each row L2-normalised.
 */
import { FlaneurError } from '../api/errors.js';
import { f16RowsToF32, l2normalizeRows } from '../features/knn.js';
import { applyPca, unpackPca } from '../features/pca.js';
import type { Project } from '../store/project.js';

export type FeatureSource = { kind: 'embedding'; runId: number } | { kind: 'fungi'; runId: number };

export interface FrameVectors {
  keys: { mediaId: number; frameIdx: number }[];
  vectors: Float32Array;
  dim: number;
}

/**
 * Vectors of recent sources per project, kept while the run's frames (and, for FUNGI, its PCA) stay the same:
 * retrieval asks for them at every query, and reading and projecting 10^5 rows takes seconds.
 */
const cache = new WeakMap<Project, Map<string, { version: string; value: Promise<FrameVectors> }>>();
const CACHED_SOURCES = 4;

/** Changes whenever the source's vectors would (frames added or removed; for FUNGI, its PCA refitted). */
export function sourceVersion(project: Project, source: FeatureSource): string {
  return source.kind === 'embedding'
    ? project.features.keysVersion(source.runId)
    : project.fungi.keysVersion(source.runId);
}

export function frameVectors(project: Project, source: FeatureSource): Promise<FrameVectors> {
  const version = sourceVersion(project, source);
  const key = `${source.kind}:${source.runId}`;
  let entries = cache.get(project);
  if (!entries) {
    entries = new Map();
    cache.set(project, entries);
  }
  const hit = entries.get(key);
  if (hit?.version === version) {
    // Most recently used last.
    entries.delete(key);
    entries.set(key, hit);
    return hit.value;
  }
  const value = readVectors(project, source);
  entries.delete(key);
  entries.set(key, { version, value });
  // A failed read is not kept.
  value.catch(() => {
    if (entries.get(key)?.value === value) entries.delete(key);
  });
  while (entries.size > CACHED_SOURCES) entries.delete(entries.keys().next().value as string);
  return value;
}

async function readVectors(project: Project, source: FeatureSource): Promise<FrameVectors> {
  if (source.kind === 'embedding') {
    const run = project.features.run(source.runId);
    if (!run) throw new FlaneurError('NOT_FOUND', `No feature run ${source.runId}.`, { field: 'runId' });
    const all = project.features.allCls(run.id);
    const vectors = new Float32Array(all.length * run.dim);
    all.forEach((r, i) => {
      vectors.set(r.cls, i * run.dim);
    });
    return {
      keys: all.map((r) => ({ mediaId: r.mediaId, frameIdx: r.frameIdx })),
      vectors: l2normalizeRows(vectors, run.dim),
      dim: run.dim,
    };
  }
  const run = project.fungi.run(source.runId);
  if (!run) throw new FlaneurError('NOT_FOUND', `No FUNGI run ${source.runId}.`, { field: 'runId' });
  const rows = project.fungi.all(run.id);
  let vectors: Float32Array = new Float32Array(rows.length * run.dim);
  rows.forEach((r, i) => {
    vectors.set(f16RowsToF32(r.vec), i * run.dim);
  });
  let dim = run.dim;
  const pca = project.fungi.pca(run.id);
  if (pca && run.pcaDim) {
    vectors = await applyPca(unpackPca(pca, run.dim, run.pcaDim), vectors);
    dim = run.pcaDim;
  }
  return {
    keys: rows.map((r) => ({ mediaId: r.mediaId, frameIdx: r.frameIdx })),
    vectors: l2normalizeRows(vectors, dim),
    dim,
  };
}

/**
 * The source for a feature run and a kind: the run itself, or the most complete FUNGI run of the run's model (FUNGI
 * vectors are computed by the `features.fungi` job; asking before that is a clear NOT_FOUND).
 */
export function resolveSource(
  project: Project,
  runId: number,
  kind: 'embedding' | 'fungi' = 'embedding',
): FeatureSource {
  const run = project.features.run(runId);
  if (!run) throw new FlaneurError('NOT_FOUND', `No feature run ${runId}.`, { field: 'runId' });
  if (kind === 'embedding') return { kind, runId };
  const f = project.fungi.bestRunOf(run.modelId);
  if (!f || project.fungi.count(f.id) === 0)
    throw new FlaneurError('NOT_FOUND', 'This model has no FUNGI features yet; compute them first (features.fungi).', {
      field: 'features',
    });
  return { kind, runId: f.id };
}
