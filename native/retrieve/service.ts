/**
 * Retrieval over a feature run: images by CLS cosine similarity, patches by patch-token similarity across every
 * frame (with a similarity heat map over each result frame), and near-duplicate pairs.
 */
import { FlaneurError } from '../api/errors.js';
import { type ExactKnn, f16RowsToF32, l2normalizeRows, makeBank } from '../features/knn.js';
import { frameVectors, resolveSource } from '../fungi/vectors.js';
import type { Project } from '../store/project.js';
import { patchBank } from './patch-bank.js';

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
  budget?: number,
) {
  const run = requireRun(project, o.runId);
  const n = run.grid * run.grid;
  if (o.patch < 0 || o.patch >= n)
    throw new FlaneurError('INVALID_ARGUMENT', `patch must be in 0..${n - 1}`, { field: 'patch' });
  const patchesOf = (mediaId: number, frameIdx: number) => {
    const f = project.features.get(run.id, mediaId, frameIdx);
    return f ? l2normalizeRows(f16RowsToF32(f.patches), run.dim) : null;
  };
  const own = patchesOf(o.mediaId, o.frameIdx);
  if (!own)
    throw new FlaneurError('NOT_FOUND', 'That frame has no features in this run; extract features first.', {
      field: 'frameIdx',
    });
  const query = own.slice(o.patch * run.dim, (o.patch + 1) * run.dim);
  const { bank, frames, totalFrames } = patchBank(project, run, budget);
  // One result per frame: search deeper, keep each frame's best patch.
  const { indices, sims } = await knn.search(query, bank, Math.min(bank.size, o.k * 20));
  const seen = new Set<number>();
  const results = [];
  for (let j = 0; j < indices.length && results.length < o.k; j++) {
    const g = indices[j] as number;
    const frame = Math.floor(g / n);
    const f = frames[frame];
    if (g < 0 || !f || (f.mediaId === o.mediaId && f.frameIdx === o.frameIdx) || seen.has(frame)) continue;
    seen.add(frame);
    // The heat map: the query against every patch of the result frame, from its stored tokens.
    const patches = patchesOf(f.mediaId, f.frameIdx);
    if (!patches) continue;
    const heat = new Array<number>(n);
    for (let p = 0; p < n; p++) {
      let s = 0;
      for (let d = 0; d < run.dim; d++) s += (query[d] as number) * (patches[p * run.dim + d] as number);
      heat[p] = s;
    }
    results.push({ mediaId: f.mediaId, frameIdx: f.frameIdx, patch: g % n, sim: sims[j] as number, heat });
  }
  return { runId: run.id, grid: run.grid, framesSearched: frames.length, framesTotal: totalFrames, results };
}

/** Pairs of frames whose CLS embeddings are at least `threshold` similar (cosine), most similar first. */
export async function duplicatePairs(
  project: Project,
  knn: ExactKnn,
  o: { runId: number; threshold: number; limit: number },
) {
  const run = requireRun(project, o.runId);
  const { keys: all, vectors, dim } = await frameVectors(project, { kind: 'embedding', runId: run.id });
  const k = Math.min(6, all.length);
  const { indices, sims } = await knn.search(vectors, makeBank(vectors, dim), k);
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
