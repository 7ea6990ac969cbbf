/**
 * UnCo's batches from Self-Collages: the frozen backbone's patch features of each collage, an exemplar feature per
 * exemplar box (the mean of the patch features under the box, as the official use_exemplar_roi_align variant pools
 * the encoded image over the box), and the density target summed down to the decoder's output size.
 */

import type { Rng } from '../base/rng.js';
import type { FeatureExtractor } from '../features/extract.js';
import { buildCollage, type Collage, type CollageLibrary, type CollageOptions } from './collage.js';
import type { UncoBatch, UncoConfig } from './unco-step.js';
import { lossMask } from './unco-step.js';

/** Mean patch feature [dim] of the patches whose centre lies in `box` [x0, y0, x1, y1) (image pixels). */
export function boxFeature(
  patches: Float32Array,
  grid: { gridH: number; gridW: number },
  dim: number,
  box: readonly [number, number, number, number],
  image: { width: number; height: number },
): Float32Array {
  const out = new Float32Array(dim);
  const cw = image.width / grid.gridW;
  const ch = image.height / grid.gridH;
  let n = 0;
  let nearest = 0;
  let best = Number.POSITIVE_INFINITY;
  const cx = (box[0] + box[2]) / 2;
  const cy = (box[1] + box[3]) / 2;
  for (let gy = 0; gy < grid.gridH; gy++) {
    for (let gx = 0; gx < grid.gridW; gx++) {
      const px = (gx + 0.5) * cw;
      const py = (gy + 0.5) * ch;
      const i = gy * grid.gridW + gx;
      const d = (px - cx) ** 2 + (py - cy) ** 2;
      if (d < best) {
        best = d;
        nearest = i;
      }
      if (px < box[0] || px >= box[2] || py < box[1] || py >= box[3]) continue;
      for (let k = 0; k < dim; k++) out[k] = (out[k] as number) + (patches[i * dim + k] as number);
      n++;
    }
  }
  // A box smaller than a patch: the patch under its centre.
  if (n === 0) return patches.slice(nearest * dim, (nearest + 1) * dim);
  for (let k = 0; k < dim; k++) out[k] = (out[k] as number) / n;
  return out;
}

/** A size x size density map summed over factor x factor cells (the total is kept). */
export function poolDensity(density: Float32Array, size: number, factor: number): Float32Array {
  const s = size / factor;
  if (!Number.isInteger(s)) throw new Error(`density of ${size} px cannot be pooled by ${factor}`);
  const out = new Float32Array(s * s);
  for (let y = 0; y < size; y++) {
    const row = Math.floor(y / factor) * s;
    for (let x = 0; x < size; x++) {
      const o = row + Math.floor(x / factor);
      out[o] = (out[o] as number) + (density[y * size + x] as number);
    }
  }
  return out;
}

/**
 * One training batch of `c.batch` Self-Collages (side `c.grid` patches of the extractor): features, exemplar
 * features (the first `c.shots` exemplar boxes; a collage with fewer targets repeats them, one with none gives
 * zeros and an all-zero target), the density target pooled to the decoder's size and the loss mask.
 */
export async function collageBatch(
  extractor: FeatureExtractor,
  library: CollageLibrary,
  options: CollageOptions,
  c: UncoConfig,
  rng: Rng,
): Promise<{ batch: UncoBatch; collages: Collage[] }> {
  const collages = Array.from({ length: c.batch }, () => buildCollage(library, options, rng));
  const feats = await extractor.run(collages.map((k) => ({ width: k.size, height: k.size, data: k.rgb })));
  const dim = c.encoderDim;
  const n = c.grid * c.grid;
  const S = c.grid * c.patch;
  const latent = new Float32Array(c.batch * n * dim);
  const exemplars = new Float32Array(c.batch * Math.max(1, c.shots) * dim);
  const density = new Float32Array(c.batch * S * S);
  collages.forEach((k, i) => {
    const f = feats[i];
    if (!f || f.gridH * f.gridW !== n)
      throw new Error(`collage features on a ${f?.gridH}x${f?.gridW} grid, not ${c.grid}`);
    latent.set(f.patches, i * n * dim);
    for (let s = 0; s < c.shots && k.exemplars.length; s++) {
      const box = k.exemplars[s % k.exemplars.length] as [number, number, number, number];
      exemplars.set(boxFeature(f.patches, f, dim, box, { width: k.size, height: k.size }), (i * c.shots + s) * dim);
    }
    density.set(poolDensity(k.density, k.size, k.size / S), i * S * S);
  });
  const batch: UncoBatch = { latent, density, mask: lossMask(density, rng) };
  if (c.shots > 0) batch.exemplars = exemplars;
  return { batch, collages };
}

/**
 * Collages drawn once — their features, exemplar features and targets — from which training batches are sampled
 * (with replacement, each with a fresh loss mask). Building a collage and running the frozen backbone on it costs
 * several times a small decoder's step on a CPU, so a pool lets a fixed budget buy many more steps; the collages
 * repeat (epochs over the pool) instead of every step seeing new ones, as the official training's fixed dataset
 * of 10,000 collages does.
 */
export class CollagePool {
  private constructor(
    readonly collages: number,
    private readonly latent: Float32Array,
    private readonly exemplars: Float32Array,
    private readonly density: Float32Array,
    private readonly counts: readonly number[],
  ) {}

  /** `count` collages from `rng`, `chunk` at a time through the extractor; `progress(done)` after each chunk. */
  static async build(
    extractor: FeatureExtractor,
    library: CollageLibrary,
    options: CollageOptions,
    c: UncoConfig,
    count: number,
    rng: Rng,
    progress?: (done: number) => void,
  ): Promise<CollagePool> {
    const n = c.grid * c.grid * c.encoderDim;
    const e = Math.max(1, c.shots) * c.encoderDim;
    const S2 = (c.grid * c.patch) ** 2;
    const latent = new Float32Array(count * n);
    const exemplars = new Float32Array(count * e);
    const density = new Float32Array(count * S2);
    const counts: number[] = [];
    const chunk = 16;
    for (let i = 0; i < count; i += chunk) {
      const m = Math.min(chunk, count - i);
      const { batch, collages } = await collageBatch(extractor, library, options, { ...c, batch: m }, rng);
      latent.set(batch.latent, i * n);
      if (batch.exemplars) exemplars.set(batch.exemplars, i * e);
      density.set(batch.density, i * S2);
      counts.push(...collages.map((k) => k.count));
      progress?.(i + m);
    }
    return new CollagePool(count, latent, exemplars, density, counts);
  }

  /** The mean count of the pooled collages. */
  get meanCount(): number {
    return this.counts.reduce((a, b) => a + b, 0) / Math.max(1, this.counts.length);
  }

  /** A batch of `c.batch` pooled collages drawn uniformly with replacement, with a fresh loss mask. */
  batch(c: UncoConfig, rng: Rng): UncoBatch {
    const n = c.grid * c.grid * c.encoderDim;
    const e = Math.max(1, c.shots) * c.encoderDim;
    const S2 = (c.grid * c.patch) ** 2;
    const latent = new Float32Array(c.batch * n);
    const exemplars = new Float32Array(c.batch * e);
    const density = new Float32Array(c.batch * S2);
    for (let b = 0; b < c.batch; b++) {
      const i = rng.int(this.collages);
      latent.set(this.latent.subarray(i * n, (i + 1) * n), b * n);
      exemplars.set(this.exemplars.subarray(i * e, (i + 1) * e), b * e);
      density.set(this.density.subarray(i * S2, (i + 1) * S2), b * S2);
    }
    const out: UncoBatch = { latent, density, mask: lossMask(density, rng) };
    if (c.shots > 0) out.exemplars = exemplars;
    return out;
  }
}
