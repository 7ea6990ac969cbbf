/**
 * Retrieval over a feature run: images by CLS cosine similarity, patches by patch-token similarity across every
 * frame (with a similarity heat map over each result frame), and near-duplicate pairs.
 */
import { FlaneurError } from '../api/errors.js';
import { frameGrid } from '../features/extract.js';
import { type ExactKnn, f16RowsToF32, l2normalizeRows, makeBank } from '../features/knn.js';
import { frameVectors, resolveSource } from '../fungi/vectors.js';
import type { Project } from '../store/project.js';
import { frameOfRow, patchBank } from './patch-bank.js';

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
  o: { runId: number; mediaId: number; frameIdx: number; patch?: number; point?: [number, number]; k: number },
  budget?: number,
) {
  const run = requireRun(project, o.runId);
  // Each frame's grid (rows, columns) from the run's resize policy and its media's frame size.
  const gridOf = (mediaId: number) => {
    const m = project.media.get(mediaId);
    const g = frameGrid(run, m?.frameWidth ?? run.inputSize, m?.frameHeight ?? run.inputSize);
    return { gridH: g.gridH, gridW: g.gridW };
  };
  const grid = gridOf(o.mediaId);
  const n = grid.gridH * grid.gridW;
  // A point of the frame falls in the patch of the frame's own grid (whatever its shape).
  const patch = o.point
    ? Math.min(grid.gridH - 1, Math.floor(o.point[1] * grid.gridH)) * grid.gridW +
      Math.min(grid.gridW - 1, Math.floor(o.point[0] * grid.gridW))
    : o.patch;
  if (patch === undefined)
    throw new FlaneurError('INVALID_ARGUMENT', 'Give the query patch or a point of the frame.', { field: 'patch' });
  if (patch < 0 || patch >= n)
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
  const query = own.slice(patch * run.dim, (patch + 1) * run.dim);
  const { bank, frames, totalFrames } = patchBank(project, run, budget);
  if (own.length !== n * run.dim)
    throw new FlaneurError(
      'INVALID_ARGUMENT',
      `The stored features of this frame do not match its ${grid.gridH}x${grid.gridW} patch grid; extract features again.`,
    );
  // One result per frame: search deeper, keep each frame's best patch.
  const { indices, sims } = await knn.search(query, bank, Math.min(bank.size, o.k * 20));
  const seen = new Set<number>();
  const results = [];
  for (let j = 0; j < indices.length && results.length < o.k; j++) {
    const g = indices[j] as number;
    const frame = g < 0 ? -1 : frameOfRow(frames, g);
    const f = frames[frame];
    if (!f || (f.mediaId === o.mediaId && f.frameIdx === o.frameIdx) || seen.has(frame)) continue;
    seen.add(frame);
    // The heat map: the query against every patch of the result frame (on its own grid), from its stored tokens.
    const patches = patchesOf(f.mediaId, f.frameIdx);
    if (!patches) continue;
    const fg = gridOf(f.mediaId);
    const heat = new Array<number>(f.count);
    for (let p = 0; p < f.count; p++) {
      let s = 0;
      for (let d = 0; d < run.dim; d++) s += (query[d] as number) * (patches[p * run.dim + d] as number);
      heat[p] = s;
    }
    results.push({
      mediaId: f.mediaId,
      frameIdx: f.frameIdx,
      patch: g - f.start,
      sim: sims[j] as number,
      heat,
      grid: fg,
    });
  }
  return { runId: run.id, patch, grid, framesSearched: frames.length, framesTotal: totalFrames, results };
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
