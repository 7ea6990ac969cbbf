/**
 * The embedding map: a 2-D layout of a feature source's frames (CLS embeddings or FUNGI vectors), by PCA (fast) or
 * UMAP (umap-js, on the top 50 principal components, with neighbours from our exact kNN on ONNX Runtime so 10^5
 * points stay tractable), plus spherical k-means clusters for colouring. A job: progress per UMAP epoch, cancellable.
 */
import fs from 'node:fs';
import path from 'node:path';
import { UMAP } from 'umap-js';
import { z } from 'zod';
import { FlaneurError } from '../api/errors.js';
import { Rng } from '../base/rng.js';
import { classList, classNamesUnder } from '../classify/knn-classify.js';
import { assignNearest, sphericalKMeans } from '../features/kmeans.js';
import { ExactKnn, l2normalizeRows, makeBank } from '../features/knn.js';
import { applyPca, fitPca } from '../features/pca.js';
import { frameVectors, resolveSource, sourceVersion } from '../fungi/vectors.js';
import type { JobContext, JobHandler } from '../jobs/types.js';
import type { Project } from '../store/project.js';

export const MapArgs = z.object({
  runId: z.int().positive(),
  features: z.enum(['embedding', 'fungi']).default('embedding'),
  method: z.enum(['pca', 'umap']).default('umap'),
  neighbors: z.int().min(2).max(200).default(15),
  minDist: z.number().min(0).max(1).default(0.1),
  clusters: z.int().min(1).max(100).default(8),
  seed: z.int().min(0).default(0),
});
export type MapArgs = z.output<typeof MapArgs>;

/** Exact neighbours (self excluded) with euclidean distances of unit vectors, as umap-js's precomputed kNN. */
async function neighbours(knn: ExactKnn, x: Float32Array, dim: number, k: number) {
  const n = x.length / dim;
  const kk = Math.min(k + 1, n);
  const { indices, sims } = await knn.search(x, makeBank(x, dim), kk);
  const idx: number[][] = [];
  const dist: number[][] = [];
  for (let i = 0; i < n; i++) {
    const row: number[] = [];
    const d: number[] = [];
    for (let j = 0; j < kk && row.length < kk - 1; j++) {
      const t = indices[i * kk + j] as number;
      if (t === i || t < 0) continue;
      row.push(t);
      d.push(Math.sqrt(Math.max(0, 2 - 2 * (sims[i * kk + j] as number))));
    }
    while (row.length < kk - 1) {
      row.push(i);
      d.push(0);
    }
    idx.push(row);
    dist.push(d);
  }
  return { idx, dist };
}

export const mapJob: JobHandler<MapArgs, MapCheckpoint> = {
  kind: 'map.build',
  args: MapArgs,
  title: (a) => `Embedding map (${a.method.toUpperCase()}, ${a.features}) of feature run #${a.runId}`,
  async run(ctx) {
    const knn = new ExactKnn(() => ctx.runtime);
    try {
      await build(ctx, knn);
    } finally {
      await knn.release();
    }
  },
};

export type Neighbours = { idx: number[][]; dist: number[][] };

export interface LayoutHooks {
  phase(name: string, total: number | null): void;
  progress(done: number, total: number): void;
  throwIfAborted(): void;
  /** The UMAP neighbour graph kept by an earlier attempt, and where to keep a new one (a resumed job skips it). */
  neighbours?: { load(): Neighbours | null; save(nn: Neighbours): void };
}

/** 2-D coordinates and k-means clusters of n unit vectors. */
export async function layout(
  knn: ExactKnn,
  vectors: Float32Array,
  dim: number,
  a: Omit<MapArgs, 'runId' | 'features'>,
  hooks: LayoutHooks,
): Promise<{ coords: Float32Array; clusters: Int32Array; k: number }> {
  const n = vectors.length / dim;
  let coords: Float32Array;
  if (a.method === 'pca' || n < 5) {
    hooks.phase('pca', 1);
    coords = await applyPca(await fitPca(vectors, dim, 2), vectors);
  } else {
    hooks.phase('neighbours', null);
    const reduced = dim > 50 ? l2normalizeRows(await applyPca(await fitPca(vectors, dim, 50), vectors), 50) : vectors;
    const rd = Math.min(dim, 50);
    let nn = hooks.neighbours?.load() ?? null;
    if (!nn) {
      nn = await neighbours(knn, reduced, rd, Math.min(a.neighbors, n - 1));
      hooks.neighbours?.save(nn);
    }
    const rng = new Rng(a.seed + 1);
    const umap = new UMAP({
      nComponents: 2,
      nNeighbors: Math.min(a.neighbors, n - 1),
      minDist: a.minDist,
      random: () => rng.next(),
    });
    umap.setPrecomputedKNN(nn.idx, nn.dist);
    const rows: number[][] = [];
    for (let i = 0; i < n; i++) rows.push(Array.from(reduced.subarray(i * rd, (i + 1) * rd)));
    const epochs = umap.initializeFit(rows);
    hooks.phase('umap', epochs);
    for (let e = 0; e < epochs; e++) {
      if (e % 10 === 0) {
        hooks.throwIfAborted();
        hooks.progress(e, epochs);
        // Lets the engine answer other calls between batches of epochs.
        await new Promise((r) => setImmediate(r));
      }
      umap.step();
    }
    const emb = umap.getEmbedding();
    coords = new Float32Array(n * 2);
    emb.forEach((p, i) => {
      coords[2 * i] = p[0] as number;
      coords[2 * i + 1] = p[1] as number;
    });
  }
  hooks.phase('clusters', 1);
  const k = Math.min(a.clusters, n);
  const centroids = await sphericalKMeans(knn, vectors, dim, { k, iterations: 10, seed: a.seed, sample: 20000 });
  const clusters = Int32Array.from(await assignNearest(knn, vectors, centroids, dim));
  // The last phase's one step is done: a finished map job reads 1 / 1, not 0 / 1.
  hooks.progress(1, 1);
  return { coords, clusters, k };
}

/**
 * A UMAP job's checkpoint: the version of the source its neighbour graph (cache/maps/job-N-neighbours.bin) was
 * computed on; a resume on the same version reads the graph instead of running the exact kNN again.
 */
type MapCheckpoint = { version: string } | null;

/** The graph as [n, k] (u32 each), distances f64 (exactly as computed, so a resumed layout is the same), indices i32. */
function writeNeighbours(file: string, nn: Neighbours): void {
  const n = nn.idx.length;
  const k = nn.idx[0]?.length ?? 0;
  const bytes = new Uint8Array(8 + 12 * n * k);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, n, true);
  view.setUint32(4, k, true);
  const dist = new Float64Array(bytes.buffer, 8, n * k);
  const idx = new Int32Array(bytes.buffer, 8 + 8 * n * k, n * k);
  nn.dist.forEach((row, i) => {
    dist.set(row, i * k);
  });
  nn.idx.forEach((row, i) => {
    idx.set(row, i * k);
  });
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(`${file}.tmp`, bytes);
  fs.renameSync(`${file}.tmp`, file);
}

function readNeighbours(file: string, n: number): Neighbours | null {
  if (!fs.existsSync(file)) return null;
  const bytes = new Uint8Array(fs.readFileSync(file));
  const view = new DataView(bytes.buffer);
  const k = view.getUint32(4, true);
  if (view.getUint32(0, true) !== n || bytes.length !== 8 + 12 * n * k) return null;
  const dist = new Float64Array(bytes.buffer, 8, n * k);
  const idx = new Int32Array(bytes.buffer, 8 + 8 * n * k, n * k);
  return {
    idx: Array.from({ length: n }, (_, i) => Array.from(idx.subarray(i * k, (i + 1) * k))),
    dist: Array.from({ length: n }, (_, i) => Array.from(dist.subarray(i * k, (i + 1) * k))),
  };
}

async function build(ctx: JobContext<MapArgs, MapCheckpoint>, knn: ExactKnn): Promise<void> {
  const { project, args: a } = ctx;
  const source = resolveSource(project, a.runId, a.features);
  const version = sourceVersion(project, source);
  const { keys, vectors, dim } = await frameVectors(project, source);
  const n = keys.length;
  if (n < 3) throw new Error(`a map needs at least 3 frames with features (this run has ${n})`);
  const file = path.join(project.cacheDir, 'maps', `job-${ctx.jobId}-neighbours.bin`);
  const { coords, clusters, k } = await layout(knn, vectors, dim, a, {
    phase: (name, total) => ctx.phase(name, { total, unit: name === 'umap' ? 'epochs' : 'steps' }),
    progress: (d, t) => ctx.progress(d, t),
    throwIfAborted: () => ctx.throwIfAborted(),
    neighbours: {
      load: () => (ctx.checkpoint?.version === version ? readNeighbours(file, n) : null),
      save: (nn) => {
        writeNeighbours(file, nn);
        ctx.commit([], { version });
      },
    },
  });
  const keyPairs = new Int32Array(n * 2);
  keys.forEach((key, i) => {
    keyPairs[2 * i] = key.mediaId;
    keyPairs[2 * i + 1] = key.frameIdx;
  });
  const row = project.maps.create(
    {
      runId: a.runId,
      features: source.kind,
      sourceRun: source.runId,
      method: a.method,
      params: { neighbors: a.neighbors, minDist: a.minDist, clusters: k, seed: a.seed },
    },
    { keys: keyPairs, coords, clusters },
  );
  ctx.commit([{ key: 'map', status: 'ok', result: { mapId: row.id, points: n } }], null);
  fs.rmSync(file, { force: true });
}

/** A stored map's points, and class ids per point from a labelled folder when `root` is given. */
export function mapPoints(project: Project, id: number, root?: string) {
  const row = project.maps.get(id);
  const data = project.maps.data(id);
  if (!row || !data) throw new FlaneurError('NOT_FOUND', `No map ${id}.`, { field: 'id' });
  const points = Array.from({ length: row.points }, (_, i) => ({
    mediaId: data.keys[2 * i] as number,
    frameIdx: data.keys[2 * i + 1] as number,
    x: data.coords[2 * i] as number,
    y: data.coords[2 * i + 1] as number,
    cluster: data.clusters[i] as number,
  }));
  const names = root ? (classNamesUnder(project, points, [root])[0] as (string | null)[]) : [];
  const classes = classList(names);
  const index = new Map(classes.map((c, i) => [c, i]));
  const labels = names.map((n) => (n === null ? -1 : (index.get(n) as number)));
  return { id: row.id, method: row.method, features: row.features, points, classes, labels };
}
