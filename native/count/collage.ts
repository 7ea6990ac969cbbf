/**
 * Self-Collages (UnCo, "Learning to Count without Annotations", CVPR 2024; lukasknobel/SelfCollages,
 * SelfCollageDataset.py): a background from the library with N objects of one type (the target) and distractors of
 * other types pasted on it, and the density target of the pasted target objects. No count label from a person:
 * the known N is the only signal. Written from the official code's defaults:
 * - a constant total of objects (use_constant_object_numbers): N target objects, the remaining `total - N` shared
 *   among the distractor types by the official cascade (each type in random order draws 0..remaining, the last
 *   takes the rest);
 * - correlated sizes: one mean size per collage in [minSize, maxSize) pixels at 224 (scaled to the canvas), each
 *   object within ±30 % of it, clamped to [5, 220] at 224; the object resized so its longer side has that size
 *   (resize_after_segmentation);
 * - targets pasted last (copy_targets_last), so distractors never cover them;
 * - the overlap rule: an object goes only where its mask touches no pasted mask and stays inside the canvas, the
 *   location uniform over those; when one does not fit the whole collage is tried again (max_complete_tries), and
 *   the last try pastes anywhere inside the canvas (`overlapping` says so);
 * - the density target: `scaling` at each target's box centre (density_map_type boxcenters), blurred by a Gaussian
 *   whose kernel follows the mean target box size (sigma = (k - 1) / 8). Unlike torchvision's reflect padding, each
 *   object's kernel is cut at the canvas and renormalised, so every object adds exactly `scaling` to the sum.
 * Additions of ours: an optional random rotation of each object (nearest-neighbour), and an object type may repeat
 * an object when the library has fewer than asked (the official code picks clusters with enough objects).
 * Every random choice comes from the given generator: the same seed gives the same collage.
 */
import { FlaneurError } from '../api/errors.js';
import type { Rng } from '../base/rng.js';
import { maskBox } from '../models/dora.js';
import type { RgbLike } from '../models/preprocess.js';

/** An object cut from a library image: its pixels, its mask (1 = object) and its unsupervised type. */
export interface CollageObject {
  width: number;
  height: number;
  /** RGB, row-major, width * height * 3. */
  rgb: Uint8Array;
  /** width * height, 1 where the object is. */
  mask: Uint8Array;
  type: number;
}

export interface CollageLibrary {
  objects: readonly CollageObject[];
  backgrounds: readonly RgbLike[];
  /** The object types seen in each background: a collage takes one without its types when there is one. */
  backgroundTypes?: readonly ReadonlySet<number>[];
}

export interface CollageOptions {
  /** Side of the square collage in pixels (the official img_size: 224). */
  size: number;
  /** Target objects N are drawn uniformly from [minCount, maxCount] (minCount 0 by default). */
  maxCount: number;
  minCount?: number;
  /** Objects pasted in all (target + distractors; official max_objs). Default maxCount. */
  total?: number;
  /** Object types per collage, the target's included (official min/max_num_obj_clusters: 2, 2). */
  types?: { min: number; max: number };
  /** Mean object size range in pixels at 224 (official min/max_paste_size: 15, 70). */
  pasteSize?: [number, number];
  /** Relative deviation of each object from the collage's mean size (official 0.3). */
  sizeDeviation?: number;
  /** Bounds of every object's size at 224 (official absolute_min/max_paste_size: 5, 220). */
  absoluteSize?: [number, number];
  /** Largest random rotation in degrees (0: none, the official code). */
  rotation?: number;
  /** Whole-collage tries before pasting regardless of overlap (official max_complete_tries). */
  completeTries?: number;
  /** 'gaussian' (official boxcenters + blur) or 'point'. */
  density?: 'gaussian' | 'point';
  /** Density mass of one object (official density_scaling 3000; count = sum / scaling). */
  scaling?: number;
  /** Official density_blur_factor (1). */
  blurFactor?: number;
  /** Exemplar boxes to return (official max_shots: 3). */
  shots?: number;
  /** Force N (tests, previews); otherwise drawn. */
  count?: number;
}

export const COLLAGE_DEFAULTS = {
  types: { min: 2, max: 2 },
  pasteSize: [15, 70] as [number, number],
  sizeDeviation: 0.3,
  absoluteSize: [5, 220] as [number, number],
  rotation: 0,
  completeTries: 5,
  density: 'gaussian' as const,
  scaling: 1,
  blurFactor: 1,
  shots: 3,
};

/** A pasted object: its box [x0, y0, x1, y1) in canvas pixels, centre, type and mask area. */
export interface PastedObject {
  box: [number, number, number, number];
  centre: [number, number];
  type: number;
  target: boolean;
  /** Pixels of its mask. */
  area: number;
}

export interface Collage {
  size: number;
  /** RGB, size * size * 3. */
  rgb: Uint8Array;
  /** Per pixel, the index in `objects` of the object visible there, or -1 (background). */
  labels: Int32Array;
  objects: PastedObject[];
  /** N: the target objects pasted. */
  count: number;
  targetType: number;
  /** size * size, sums to count * scaling. */
  density: Float32Array;
  scaling: number;
  /** Boxes of up to `shots` target objects (none when N = 0: the reference-less case). */
  exemplars: [number, number, number, number][];
  /** True when the last try pasted objects over each other. */
  overlapping: boolean;
}

interface Cut {
  width: number;
  height: number;
  rgb: Uint8Array;
  mask: Uint8Array;
  area: number;
}

/** Bilinear resize of an RGB image to w x h (pixel centres aligned). */
export function resizeRgb(img: RgbLike, w: number, h: number): Uint8Array {
  const out = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) {
    const sy = Math.min(Math.max(((y + 0.5) * img.height) / h - 0.5, 0), img.height - 1);
    const y0 = Math.floor(sy);
    const y1 = Math.min(y0 + 1, img.height - 1);
    const fy = sy - y0;
    for (let x = 0; x < w; x++) {
      const sx = Math.min(Math.max(((x + 0.5) * img.width) / w - 0.5, 0), img.width - 1);
      const x0 = Math.floor(sx);
      const x1 = Math.min(x0 + 1, img.width - 1);
      const fx = sx - x0;
      // Indices computed inline (a closure made per pixel was most of a collage's time).
      const i00 = (y0 * img.width + x0) * 3;
      const i01 = (y0 * img.width + x1) * 3;
      const i10 = (y1 * img.width + x0) * 3;
      const i11 = (y1 * img.width + x1) * 3;
      for (let c = 0; c < 3; c++) {
        const top = (img.data[i00 + c] as number) * (1 - fx) + (img.data[i01 + c] as number) * fx;
        const bottom = (img.data[i10 + c] as number) * (1 - fx) + (img.data[i11 + c] as number) * fx;
        out[(y * w + x) * 3 + c] = Math.round(top * (1 - fy) + bottom * fy);
      }
    }
  }
  return out;
}

/**
 * The object scaled so its longer side is `side` pixels and rotated by `degrees` (nearest neighbour for pixels
 * and mask alike, so they stay aligned), cut to its mask's tight box. A mask that vanishes keeps its centre pixel.
 */
export function transformObject(o: CollageObject, side: number, degrees: number): Cut {
  const scale = side / Math.max(o.width, o.height);
  const sw = Math.max(1, Math.round(o.width * scale));
  const sh = Math.max(1, Math.round(o.height * scale));
  const t = (degrees * Math.PI) / 180;
  const cos = Math.cos(t);
  const sin = Math.sin(t);
  const rw = Math.max(1, Math.ceil(Math.abs(sw * cos) + Math.abs(sh * sin) - 1e-9));
  const rh = Math.max(1, Math.ceil(Math.abs(sw * sin) + Math.abs(sh * cos) - 1e-9));
  const mask = new Uint8Array(rw * rh);
  const rgb = new Uint8Array(rw * rh * 3);
  for (let y = 0; y < rh; y++) {
    for (let x = 0; x < rw; x++) {
      // Inverse map: the output pixel's centre, rotated back, in the scaled object, then in the source.
      const dx = x + 0.5 - rw / 2;
      const dy = y + 0.5 - rh / 2;
      const ux = cos * dx + sin * dy + sw / 2;
      const uy = -sin * dx + cos * dy + sh / 2;
      if (ux < 0 || uy < 0 || ux >= sw || uy >= sh) continue;
      const sx = Math.min(o.width - 1, Math.floor(ux / scale));
      const sy = Math.min(o.height - 1, Math.floor(uy / scale));
      const si = sy * o.width + sx;
      if (!o.mask[si]) continue;
      mask[y * rw + x] = 1;
      for (let c = 0; c < 3; c++) rgb[(y * rw + x) * 3 + c] = o.rgb[si * 3 + c] as number;
    }
  }
  const bounds = maskBox(mask, { gridH: rh, gridW: rw }, rw, rh);
  if (!bounds) {
    // Too small to keep any mask pixel: one pixel of the object's colour at its centre.
    const si = Math.floor(o.height / 2) * o.width + Math.floor(o.width / 2);
    return { width: 1, height: 1, rgb: o.rgb.slice(si * 3, si * 3 + 3), mask: Uint8Array.of(1), area: 1 };
  }
  const [x0, y0, w, h] = bounds;
  const cut: Cut = { width: w, height: h, rgb: new Uint8Array(w * h * 3), mask: new Uint8Array(w * h), area: 0 };
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const si = (y + y0) * rw + x + x0;
      const di = y * w + x;
      cut.mask[di] = mask[si] as number;
      cut.area += mask[si] as number;
      for (let c = 0; c < 3; c++) cut.rgb[di * 3 + c] = rgb[si * 3 + c] as number;
    }
  }
  return cut;
}

function randint(rng: Rng, lo: number, hi: number): number {
  return lo + rng.int(hi - lo + 1);
}

/** Objects per type: [N, distractors...] with the official cascade over a constant total. */
export function objectsPerType(rng: Rng, n: number, total: number, types: number): number[] {
  const counts = [n, ...Array<number>(types - 1).fill(0)];
  if (types === 1) return counts;
  let remaining = total - n;
  const order = rng.shuffle([...Array(types - 1).keys()].map((i) => i + 1));
  for (const i of order.slice(0, -1)) {
    if (remaining <= 0) break;
    const k = randint(rng, 0, remaining);
    counts[i] = (counts[i] as number) + k;
    remaining -= k;
  }
  const last = order[order.length - 1] as number;
  counts[last] = (counts[last] as number) + Math.max(0, remaining);
  return counts;
}

/** Whether `cut` at (x, y) stays inside the canvas and touches no pasted mask pixel. */
function fits(occupied: Uint8Array, size: number, cut: Cut, x: number, y: number): boolean {
  if (x < 0 || y < 0 || x + cut.width > size || y + cut.height > size) return false;
  for (let j = 0; j < cut.height; j++) {
    const row = (y + j) * size + x;
    for (let i = 0; i < cut.width; i++) if (cut.mask[j * cut.width + i] && occupied[row + i]) return false;
  }
  return true;
}

/**
 * A location uniform over those where `cut` fits (rejection sampling, then an exhaustive scan so a valid location
 * is never missed), or null. `anywhere`: uniform over locations inside the canvas, overlap allowed.
 */
function place(rng: Rng, occupied: Uint8Array, size: number, cut: Cut, anywhere: boolean): [number, number] | null {
  const mx = size - cut.width + 1;
  const my = size - cut.height + 1;
  if (mx <= 0 || my <= 0) return null;
  if (anywhere) return [rng.int(mx), rng.int(my)];
  for (let t = 0; t < 64; t++) {
    const x = rng.int(mx);
    const y = rng.int(my);
    if (fits(occupied, size, cut, x, y)) return [x, y];
  }
  const valid: number[] = [];
  for (let y = 0; y < my; y++) for (let x = 0; x < mx; x++) if (fits(occupied, size, cut, x, y)) valid.push(y * mx + x);
  if (!valid.length) return null;
  const v = valid[rng.int(valid.length)] as number;
  return [v % mx, Math.floor(v / mx)];
}

/** torchvision's Gaussian kernel of `ks` taps and `sigma`, normalised. */
function gaussianKernel(ks: number, sigma: number): Float64Array {
  const k = new Float64Array(ks);
  const half = (ks - 1) / 2;
  let s = 0;
  for (let i = 0; i < ks; i++) {
    k[i] = Math.exp(-0.5 * ((i - half) / sigma) ** 2);
    s += k[i] as number;
  }
  for (let i = 0; i < ks; i++) k[i] = (k[i] as number) / s;
  return k;
}

/**
 * The density target of `centres`: `scaling` at each centre, blurred (kernel size per axis from the mean box size
 * as the official _blur_density_map; each object's kernel cut at the canvas and renormalised, so the sum is exact).
 */
export function densityTarget(
  size: number,
  targets: readonly PastedObject[],
  o: { density: 'gaussian' | 'point'; scaling: number; blurFactor: number },
): Float32Array {
  const map = new Float64Array(size * size);
  if (!targets.length) return new Float32Array(size * size);
  const kernels: [Float64Array, Float64Array] | null = (() => {
    if (o.density === 'point') return null;
    const mean = (axis: 0 | 1) =>
      targets.reduce((a, t) => a + ((t.box[axis + 2] as number) - t.box[axis]), 0) / targets.length;
    const axisKernel = (m: number) => {
      let k = Math.floor(m);
      if (k % 2 === 0) k += 1;
      const sigma = ((k - 1) / 8) * o.blurFactor;
      if (sigma <= 0) return Float64Array.of(1);
      return gaussianKernel(2 * Math.round(4 * sigma) + 1, sigma);
    };
    return [axisKernel(mean(0)), axisKernel(mean(1))];
  })();
  for (const t of targets) {
    const [cx, cy] = t.centre;
    if (!kernels) {
      map[cy * size + cx] = (map[cy * size + cx] as number) + o.scaling;
      continue;
    }
    const [kx, ky] = kernels;
    const hx = (kx.length - 1) / 2;
    const hy = (ky.length - 1) / 2;
    let inside = 0;
    const x0 = Math.max(0, cx - hx);
    const x1 = Math.min(size - 1, cx + hx);
    const y0 = Math.max(0, cy - hy);
    const y1 = Math.min(size - 1, cy + hy);
    let sx = 0;
    for (let x = x0; x <= x1; x++) sx += kx[x - cx + hx] as number;
    let sy = 0;
    for (let y = y0; y <= y1; y++) sy += ky[y - cy + hy] as number;
    inside = sx * sy;
    const w = o.scaling / inside;
    for (let y = y0; y <= y1; y++) {
      const wy = (ky[y - cy + hy] as number) * w;
      for (let x = x0; x <= x1; x++)
        map[y * size + x] = (map[y * size + x] as number) + wy * (kx[x - cx + hx] as number);
    }
  }
  return Float32Array.from(map);
}

/** One Self-Collage from the library, every random choice from `rng`. */
export function buildCollage(library: CollageLibrary, options: CollageOptions, rng: Rng): Collage {
  const o = { ...COLLAGE_DEFAULTS, ...options };
  const { size } = o;
  if (!library.backgrounds.length)
    throw new FlaneurError('INVALID_ARGUMENT', 'A Self-Collage needs at least one background image in the library.');
  const byType = new Map<number, CollageObject[]>();
  for (const obj of library.objects) byType.set(obj.type, [...(byType.get(obj.type) ?? []), obj]);
  const typeIds = [...byType.keys()].sort((a, b) => a - b);
  if (!typeIds.length)
    throw new FlaneurError('INVALID_ARGUMENT', 'A Self-Collage needs objects: none were found in the library images.');

  const n = o.count ?? randint(rng, Math.min(o.minCount ?? 0, o.maxCount), o.maxCount);
  const total = Math.max(o.total ?? o.maxCount, n);
  const types = Math.min(randint(rng, Math.max(1, o.types.min), Math.max(1, o.types.max)), typeIds.length);
  const counts = objectsPerType(rng, n, total, types);
  // The target type, then distinct distractor types.
  const chosen = rng.shuffle([...typeIds]).slice(0, types);
  const targetType = chosen[0] as number;
  const pick = (type: number, k: number) => {
    const pool = rng.shuffle([...(byType.get(type) ?? [])]);
    return Array.from({ length: k }, (_, i) =>
      i < pool.length ? (pool[i] as CollageObject) : (pool[rng.int(pool.length)] as CollageObject),
    );
  };
  // Distractors first, targets last (copy_targets_last): a target is never covered.
  const items: { obj: CollageObject; target: boolean }[] = [];
  for (let t = 1; t < types; t++)
    for (const obj of pick(chosen[t] as number, counts[t] as number)) items.push({ obj, target: false });
  for (const obj of pick(targetType, n)) items.push({ obj, target: true });

  // A background without the collage's object types (the official ign_clusters), else any.
  const clean = library.backgroundTypes
    ? library.backgrounds.filter((_, i) => !chosen.some((t) => library.backgroundTypes?.[i]?.has(t)))
    : [];
  const pool = clean.length ? clean : library.backgrounds;
  const background = pool[rng.int(pool.length)] as RgbLike;
  const bg = resizeRgb(background, size, size);
  const px = size / 224;
  const [absMin, absMax] = o.absoluteSize;

  let result: { rgb: Uint8Array; labels: Int32Array; objects: PastedObject[]; overlapping: boolean } | null = null;
  for (let attempt = 0; attempt < o.completeTries && !result; attempt++) {
    const last = attempt === o.completeTries - 1;
    const mean = randint(rng, o.pasteSize[0], o.pasteSize[1] - 1);
    const dev = Math.max(1, Math.floor(o.sizeDeviation * mean));
    const cuts = items.map(({ obj }) => {
      const s = Math.min(Math.max(mean + randint(rng, -dev, dev - 1), absMin), absMax);
      const side = Math.max(1, Math.min(size, Math.round(s * px)));
      const degrees = o.rotation > 0 ? rng.uniform(-o.rotation, o.rotation) : 0;
      return transformObject(obj, side, degrees);
    });
    const rgb = bg.slice();
    const labels = new Int32Array(size * size).fill(-1);
    const occupied = new Uint8Array(size * size);
    const objects: PastedObject[] = [];
    let overlapping = false;
    let ok = true;
    for (const [i, cut] of cuts.entries()) {
      let at = place(rng, occupied, size, cut, false);
      if (!at && last) {
        at = place(rng, occupied, size, cut, true);
        overlapping = true;
      }
      if (!at) {
        ok = false;
        break;
      }
      const [x, y] = at;
      for (let j = 0; j < cut.height; j++) {
        for (let k = 0; k < cut.width; k++) {
          if (!cut.mask[j * cut.width + k]) continue;
          const p = (y + j) * size + x + k;
          occupied[p] = 1;
          labels[p] = i;
          for (let c = 0; c < 3; c++) rgb[p * 3 + c] = cut.rgb[(j * cut.width + k) * 3 + c] as number;
        }
      }
      const item = items[i] as { obj: CollageObject; target: boolean };
      const box: [number, number, number, number] = [x, y, x + cut.width, y + cut.height];
      objects.push({
        box,
        centre: [Math.floor((box[0] + box[2]) / 2), Math.floor((box[1] + box[3]) / 2)],
        type: item.obj.type,
        target: item.target,
        area: cut.area,
      });
    }
    if (ok) result = { rgb, labels, objects, overlapping };
  }
  if (!result)
    throw new FlaneurError(
      'INVALID_ARGUMENT',
      `The objects do not fit in a ${size} px collage: make the collage larger or the objects smaller.`,
    );
  const targets = result.objects.filter((t) => t.target);
  const density = densityTarget(size, targets, o);
  const shots = rng
    .shuffle([...targets])
    .slice(0, o.shots)
    .map((t) => t.box);
  return {
    size,
    rgb: result.rgb,
    labels: result.labels,
    objects: result.objects,
    count: n,
    targetType,
    density,
    scaling: o.scaling,
    exemplars: shots,
    overlapping: result.overlapping,
  };
}
