/**
 * What a count leaves out: whatever lies outside a region of interest (a polygon), whatever is more like a negative
 * exemplar ("not this") than like the exemplars, and look-alike distractors whose similarity falls in a lower group
 * than the exemplars' own (a threshold from the peaks' similarity statistics, anchored at the exemplars).
 */

/** A similarity map (count.ts's SimilarityMap, by shape: reject.ts is imported by count.ts). */
interface SimilarityMap {
  width: number;
  height: number;
  data: Float32Array;
  scale: number;
}

/** A polygon's corners [x, y], in image pixels. */
export type Polygon = readonly (readonly [number, number])[];

/** The value a map takes outside the region of interest: below any threshold a count accepts ([-2, 2]). */
export const OUTSIDE = -2;

/** Whether (x, y) lies inside the polygon (even-odd rule; a point on an edge may fall either way). */
export function insidePolygon(x: number, y: number, poly: Polygon): boolean {
  let inside = false;
  for (let i = 0, j = poly.length - 1; i < poly.length; j = i++) {
    const [xi, yi] = poly[i] as readonly [number, number];
    const [xj, yj] = poly[j] as readonly [number, number];
    if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

/**
 * The map with every pixel whose centre lies outside the polygon (image pixels) set to OUTSIDE: peaks there never
 * pass a threshold, at the default or on the slider (count.peaks re-counts the same masked map).
 */
export function maskOutside(map: SimilarityMap, roi: Polygon): SimilarityMap {
  const data = Float32Array.from(map.data);
  const scaled = roi.map(([x, y]) => [x / map.scale, y / map.scale] as const);
  // Row by row: the polygon's crossings of the row's centre line bound the inside runs.
  for (let y = 0; y < map.height; y++) {
    const cy = y + 0.5;
    const xs: number[] = [];
    for (let i = 0, j = scaled.length - 1; i < scaled.length; j = i++) {
      const [xi, yi] = scaled[i] as readonly [number, number];
      const [xj, yj] = scaled[j] as readonly [number, number];
      if (yi > cy !== yj > cy) xs.push(((xj - xi) * (cy - yi)) / (yj - yi) + xi);
    }
    xs.sort((a, b) => a - b);
    let k = 0;
    let inside = false;
    for (let x = 0; x < map.width; x++) {
      const cx = x + 0.5;
      while (k < xs.length && (xs[k] as number) <= cx) {
        inside = !inside;
        k++;
      }
      if (!inside) data[y * map.width + x] = OUTSIDE;
    }
  }
  return { ...map, data };
}

/**
 * Similarities with negative exemplars applied: a patch more like one of the negatives' prototypes than like the
 * exemplars' prototype gets a value below zero, by how much more (never counted, the slider starting at 0).
 * `pos` and `neg`: cosine similarities per patch to the positive and to each negative prototype.
 */
export function gateByNegatives(sims: Float32Array, pos: Float32Array, neg: readonly Float32Array[]): Float32Array {
  const out = Float32Array.from(sims);
  for (let i = 0; i < out.length; i++) {
    let worst = Number.NEGATIVE_INFINITY;
    for (const n of neg) worst = Math.max(worst, n[i] as number);
    const margin = worst - (pos[i] as number);
    if (margin > 0) out[i] = Math.min(0, out[i] as number) - margin;
  }
  return out;
}

/** How the exemplar threshold was found: the median rule alone, or raised to where the peaks split in two. */
export interface ThresholdStats {
  /** The threshold from the map's median and the exemplars (`thresholdAt` of the way). */
  base: number;
  /** Where the candidate peaks' similarities split (Otsu), null when there were too few. */
  split: number | null;
  /** Separation of the two groups: difference of means over the pooled standard deviation. */
  separation: number;
  /** Whether the split was taken (groups far enough apart, every exemplar in the upper one). */
  raised: boolean;
  threshold: number;
}

export const REJECT_DEFAULTS = {
  /**
   * Groups of peak similarities this many pooled standard deviations apart are two kinds of thing (the exemplars'
   * and a look-alike); closer, one kind whose similarities vary. Otsu's split of one group gives about 2.7 (a
   * normal spread) to 3.5 (a uniform one), so the bound lies above those; checked on the tuning seeds
   * (bench/count-seeds.ts).
   */
  separation: 4,
  /** The lower group must hold at least this many peaks to be a kind of distractor rather than a few outliers. */
  minGroup: 3,
} as const;

/**
 * The exemplar threshold from the similarity statistics: the peaks above `base` (found with the exemplar-sized
 * suppression) are split in two by Otsu's method; when the two groups are well apart and every exemplar's own
 * similarity lies in the upper group, the lower group is a look-alike kind and the threshold rises to the split.
 */
export function statsThreshold(
  scores: readonly number[],
  exemplarScores: readonly number[],
  base: number,
  o: { separation?: number; minGroup?: number } = {},
): ThresholdStats {
  const none = { base, split: null, separation: 0, raised: false, threshold: base };
  const minGroup = o.minGroup ?? REJECT_DEFAULTS.minGroup;
  const v = scores.filter((s) => s >= base).sort((a, b) => a - b);
  if (v.length < 2 * minGroup) return none;
  // Otsu over the sorted values: the cut maximising the between-group variance.
  const total = v.reduce((a, b) => a + b, 0);
  let best = -1;
  let cut = 0;
  let left = 0;
  for (let i = 1; i < v.length; i++) {
    left += v[i - 1] as number;
    const m0 = left / i;
    const m1 = (total - left) / (v.length - i);
    const between = i * (v.length - i) * (m1 - m0) ** 2;
    if (between > best) {
      best = between;
      cut = i;
    }
  }
  const lo = v.slice(0, cut);
  const hi = v.slice(cut);
  const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
  const variance = (a: number[], m: number) => a.reduce((x, y) => x + (y - m) ** 2, 0) / a.length;
  const m0 = mean(lo);
  const m1 = mean(hi);
  const pooled = Math.sqrt((variance(lo, m0) + variance(hi, m1)) / 2) || 1e-6;
  const split = ((lo[lo.length - 1] as number) + (hi[0] as number)) / 2;
  const separation = (m1 - m0) / pooled;
  const raised =
    lo.length >= minGroup &&
    separation >= (o.separation ?? REJECT_DEFAULTS.separation) &&
    exemplarScores.every((e) => e >= split);
  return { base, split, separation, raised, threshold: raised ? split : base };
}
