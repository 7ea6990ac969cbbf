/**
 * `npm run bench -- map [points]`: the embedding-map layout at scale. Synthetic unit vectors (dim 384, 20 Gaussian
 * clusters) at 10^4 and `points` (default 10^5): seconds for the PCA layout and for UMAP (neighbours from our exact
 * kNN, umap-js epochs), peak RSS, and how well UMAP keeps the clusters (share of points whose nearest 2-D
 * neighbour is in the same cluster). Reference: the PCA layout of the same data.
 */

import { Rng } from '../native/base/rng.js';
import { ExactKnn } from '../native/features/knn.js';
import { layout } from '../native/map/build.js';

function clustered(n: number, dim: number, k: number, seed: number): { v: Float32Array; label: Int32Array } {
  const rng = new Rng(seed);
  const centres = Float32Array.from({ length: k * dim }, () => rng.normal());
  const v = new Float32Array(n * dim);
  const label = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const c = rng.int(k);
    label[i] = c;
    let s = 0;
    for (let d = 0; d < dim; d++) {
      const x = (centres[c * dim + d] as number) + 0.6 * rng.normal();
      v[i * dim + d] = x;
      s += x * x;
    }
    const inv = 1 / Math.sqrt(s);
    for (let d = 0; d < dim; d++) v[i * dim + d] = (v[i * dim + d] as number) * inv;
  }
  return { v, label };
}

/** Share of points whose nearest neighbour in 2-D has the same label (on a sample of 2000). */
function purity(coords: Float32Array, label: Int32Array, rng: Rng): number {
  const n = label.length;
  let same = 0;
  const m = Math.min(2000, n);
  for (let t = 0; t < m; t++) {
    const i = rng.int(n);
    let best = -1;
    let bd = Number.POSITIVE_INFINITY;
    for (let j = 0; j < n; j++) {
      if (j === i) continue;
      const d =
        ((coords[2 * i] as number) - (coords[2 * j] as number)) ** 2 +
        ((coords[2 * i + 1] as number) - (coords[2 * j + 1] as number)) ** 2;
      if (d < bd) {
        bd = d;
        best = j;
      }
    }
    if (label[best] === label[i]) same++;
  }
  return same / m;
}

export async function benchMap(args: string[]): Promise<Record<string, unknown>> {
  const big = Number(args[0] ?? 100000);
  const knn = new ExactKnn();
  const out: Record<string, unknown> = { dim: 384, clusters: 20 };
  const quiet = { phase() {}, progress() {}, throwIfAborted() {} };
  let peak = 0;
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, 200);
  try {
    for (const n of [10000, big]) {
      const { v, label } = clustered(n, 384, 20, 1);
      const base = { neighbors: 15, minDist: 0.1, clusters: 20, seed: 0 };
      let t0 = performance.now();
      const pca = await layout(knn, v, 384, { ...base, method: 'pca' }, quiet);
      const pcaS = (performance.now() - t0) / 1000;
      t0 = performance.now();
      let phaseAt = t0;
      const phases: Record<string, number> = {};
      let current = '';
      const umap = await layout(
        knn,
        v,
        384,
        { ...base, method: 'umap' },
        {
          ...quiet,
          phase(name) {
            const now = performance.now();
            if (current) phases[current] = Number(((now - phaseAt) / 1000).toFixed(2));
            current = name;
            phaseAt = now;
          },
        },
      );
      if (current) phases[current] = Number(((performance.now() - phaseAt) / 1000).toFixed(2));
      const umapS = (performance.now() - t0) / 1000;
      const rng = new Rng(9);
      out[`n${n}`] = {
        pca_s: Number(pcaS.toFixed(2)),
        umap_s: Number(umapS.toFixed(2)),
        umap_phases_s: phases,
        nn_purity_pca: purity(pca.coords, label, rng),
        nn_purity_umap: purity(umap.coords, label, rng),
      };
      console.error(`map ${n}: ${JSON.stringify(out[`n${n}`])}`);
    }
  } finally {
    clearInterval(timer);
    await knn.release();
  }
  return { ...out, points: big, peak_rss_mb: Math.round(peak / 2 ** 20) };
}
