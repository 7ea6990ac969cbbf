/**
 * Retrieval over a feature run: images by CLS cosine similarity, patches by patch-token similarity across every
 * frame (with a similarity heat map over each result frame), and near-duplicate pairs.
 */
import { FlaneurError } from '../api/errors.js';
import { type ExactKnn, f16RowsToF32, l2normalizeRows, makeBank } from '../features/knn.js';
import { frameVectors, resolveSource } from '../fungi/vectors.js';
import type { Project } from '../store/project.js';

function requireRun(project: Project, runId: number) {
  const run = project.features.run(runId);
  if (!run) throw new FlaneurError('NOT_FOUND', `No feature run ${runId}.`, { field: 'runId' });
  return run;
}

export async function similarImages(
  project: Project,
  knn: ExactKnn,
  o: { runId: number; mediaId: number; frameIdx: number; k: number; features?: 'embedding' | 'fungi' },
) {
  const source = resolveSource(project, o.runId, o.features);
  const { keys, vectors, dim } = await frameVectors(project, source);
  const qi = keys.findIndex((r) => r.mediaId === o.mediaId && r.frameIdx === o.frameIdx);
  if (qi < 0)
    throw new FlaneurError('NOT_FOUND', 'That frame has no features in this run; extract features first.', {
      field: 'frameIdx',
    });
  const { indices, sims } = await knn.search(
    vectors.subarray(qi * dim, (qi + 1) * dim),
    makeBank(vectors, dim),
    o.k + 1,
  );
  const results = [];
  for (let j = 0; j < indices.length; j++) {
    const i = indices[j] as number;
    if (i === qi || i < 0) continue;
    const r = keys[i] as (typeof keys)[number];
    results.push({ mediaId: r.mediaId, frameIdx: r.frameIdx, sim: sims[j] as number });
  }
  return { runId: o.runId, features: source.kind, results: results.slice(0, o.k) };
}

export async function similarPatches(
  project: Project,
  knn: ExactKnn,
  o: { runId: number; mediaId: number; frameIdx: number; patch: number; k: number },
) {
  const run = requireRun(project, o.runId);
  const n = run.grid * run.grid;
  if (o.patch < 0 || o.patch >= n)
    throw new FlaneurError('INVALID_ARGUMENT', `patch must be in 0..${n - 1}`, { field: 'patch' });
  const frames: { mediaId: number; frameIdx: number }[] = [];
  const parts: Float32Array[] = [];
  for (const f of project.features.iteratePatches(run.id)) {
    frames.push({ mediaId: f.mediaId, frameIdx: f.frameIdx });
    parts.push(l2normalizeRows(f16RowsToF32(f.patches), run.dim));
  }
  const fi = frames.findIndex((f) => f.mediaId === o.mediaId && f.frameIdx === o.frameIdx);
  if (fi < 0)
    throw new FlaneurError('NOT_FOUND', 'That frame has no features in this run; extract features first.', {
      field: 'frameIdx',
    });
  const all = new Float32Array(parts.length * n * run.dim);
  parts.forEach((p, i) => {
    all.set(p, i * n * run.dim);
  });
  const query = all.slice((fi * n + o.patch) * run.dim, (fi * n + o.patch + 1) * run.dim);
  // One result per frame: search deeper, keep each frame's best patch.
  const { indices, sims } = await knn.search(query, makeBank(all, run.dim), Math.min(all.length / run.dim, o.k * 20));
  const seen = new Set<number>();
  const results = [];
  for (let j = 0; j < indices.length && results.length < o.k; j++) {
    const g = indices[j] as number;
    const frame = Math.floor(g / n);
    if (g < 0 || frame === fi || seen.has(frame)) continue;
    seen.add(frame);
    const f = frames[frame] as (typeof frames)[number];
    const heat = new Array<number>(n);
    for (let p = 0; p < n; p++) {
      let s = 0;
      for (let d = 0; d < run.dim; d++) s += (query[d] as number) * (all[(frame * n + p) * run.dim + d] as number);
      heat[p] = s;
    }
    results.push({ mediaId: f.mediaId, frameIdx: f.frameIdx, patch: g % n, sim: sims[j] as number, heat });
  }
  return { runId: run.id, grid: run.grid, results };
}

/** Pairs of frames whose CLS embeddings are at least `threshold` similar (cosine), most similar first. */
export async function duplicatePairs(
  project: Project,
  knn: ExactKnn,
  o: { runId: number; threshold: number; limit: number },
) {
  const run = requireRun(project, o.runId);
  const all = project.features.allCls(run.id);
  const vectors = new Float32Array(all.length * run.dim);
  all.forEach((r, i) => {
    vectors.set(r.cls, i * run.dim);
  });
  l2normalizeRows(vectors, run.dim);
  const k = Math.min(6, all.length);
  const { indices, sims } = await knn.search(vectors, makeBank(vectors, run.dim), k);
  const pairs: { a: { mediaId: number; frameIdx: number }; b: { mediaId: number; frameIdx: number }; sim: number }[] =
    [];
  for (let i = 0; i < all.length; i++) {
    for (let j = 0; j < k; j++) {
      const o2 = indices[i * k + j] as number;
      const s = sims[i * k + j] as number;
      if (o2 <= i || s < o.threshold) continue;
      const x = all[i] as (typeof all)[number];
      const y = all[o2] as (typeof all)[number];
      pairs.push({
        a: { mediaId: x.mediaId, frameIdx: x.frameIdx },
        b: { mediaId: y.mediaId, frameIdx: y.frameIdx },
        sim: s,
      });
    }
  }
  pairs.sort((p, q) => q.sim - p.sim);
  return { runId: run.id, threshold: o.threshold, pairs: pairs.slice(0, o.limit) };
}
