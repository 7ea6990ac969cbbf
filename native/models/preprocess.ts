/**
 * Image preprocessing for the ViTs: resize (shorter side or exact, antialiased separable resampling as PIL does),
 * centre crop, ImageNet mean/std normalisation, and batching into NCHW float32.
 */
export interface RgbLike {
  width: number;
  height: number;
  data: Uint8Array;
}

export type ResizeFilter = 'bilinear' | 'bicubic';

function kernel(filter: ResizeFilter): { support: number; f: (x: number) => number } {
  if (filter === 'bilinear') return { support: 1, f: (x) => Math.max(0, 1 - Math.abs(x)) };
  const a = -0.5; // PIL's bicubic
  return {
    support: 2,
    f: (x) => {
      const t = Math.abs(x);
      if (t < 1) return ((a + 2) * t - (a + 3)) * t * t + 1;
      if (t < 2) return (((t - 5) * t + 8) * t - 4) * a;
      return 0;
    },
  };
}

type Taps = { start: number; w: Float32Array }[];
const tapCache = new Map<string, Taps>();

/**
 * Per output index: first input index and normalised weights (filter widened when downscaling), without the taps of
 * weight exactly 0 at either end (a sum that adds 0 × x is the same sum without it, so the bits do not change).
 * Cached per size pair and filter: every frame of a video asks for the same.
 */
function weights(inSize: number, outSize: number, filter: ResizeFilter): Taps {
  const key = `${inSize}/${outSize}/${filter}`;
  let taps = tapCache.get(key);
  if (!taps) {
    taps = computeWeights(inSize, outSize, filter).map(({ start, w }) => {
      let a = 0;
      let b = w.length;
      while (a < b && w[a] === 0) a++;
      while (b > a && w[b - 1] === 0) b--;
      return a === b ? { start, w } : { start: start + a, w: w.slice(a, b) };
    });
    if (tapCache.size > 64) tapCache.clear();
    tapCache.set(key, taps);
  }
  return taps;
}

/** Whether every output takes exactly its own input (weight 1): a pass that copies. */
function isIdentity(taps: Taps): boolean {
  return taps.every(({ start, w }, o) => start === o && w.length === 1 && w[0] === 1);
}

function computeWeights(inSize: number, outSize: number, filter: ResizeFilter): Taps {
  const { support, f } = kernel(filter);
  const scale = inSize / outSize;
  const fscale = Math.max(scale, 1);
  const radius = support * fscale;
  const out: { start: number; w: Float32Array }[] = [];
  for (let o = 0; o < outSize; o++) {
    const center = (o + 0.5) * scale;
    const start = Math.max(0, Math.floor(center - radius));
    const end = Math.min(inSize, Math.ceil(center + radius));
    const w = new Float32Array(end - start);
    let sum = 0;
    for (let i = start; i < end; i++) {
      const v = f((i + 0.5 - center) / fscale);
      w[i - start] = v;
      sum += v;
    }
    if (sum !== 0) for (let i = 0; i < w.length; i++) w[i] = (w[i] as number) / sum;
    out.push({ start, w });
  }
  return out;
}

/**
 * Resizes an RGB image to exactly width x height: separable, rows then columns, each output a sum over its taps in
 * tap order (float64 sums, the row pass stored in float32, rounded to bytes). The column pass walks whole rows (one
 * float64 accumulator row per output row, taps outer): the same sums in the same order, cache-friendly.
 */
export function resizeRgb(img: RgbLike, width: number, height: number, filter: ResizeFilter = 'bicubic'): RgbLike {
  if (img.width === width && img.height === height) return img;
  const wx = weights(img.width, width, filter);
  const wy = weights(img.height, height, filter);
  const src = img.data;
  const inW = img.width;
  const tmp = new Float32Array(width * img.height * 3);
  for (let y = 0; y < img.height; y++) {
    const rowIn = y * inW;
    const rowOut = y * width;
    for (let x = 0; x < width; x++) {
      const { start, w } = wx[x] as { start: number; w: Float32Array };
      let r = 0;
      let g = 0;
      let b = 0;
      for (let k = 0; k < w.length; k++) {
        const i = (rowIn + start + k) * 3;
        const wk = w[k] as number;
        r += (src[i] as number) * wk;
        g += (src[i + 1] as number) * wk;
        b += (src[i + 2] as number) * wk;
      }
      const o = (rowOut + x) * 3;
      tmp[o] = r;
      tmp[o + 1] = g;
      tmp[o + 2] = b;
    }
  }
  const out = new Uint8Array(width * height * 3);
  const row = width * 3;
  if (isIdentity(wy)) {
    // Each output row is its own input row with weight 1: the same rounding of the same values.
    for (let j = 0; j < out.length; j++) out[j] = Math.min(255, Math.max(0, Math.round(tmp[j] as number)));
    return { width, height, data: out };
  }
  const acc = new Float64Array(row);
  for (let y = 0; y < height; y++) {
    const { start, w } = wy[y] as { start: number; w: Float32Array };
    acc.fill(0);
    for (let k = 0; k < w.length; k++) {
      const wk = w[k] as number;
      const base = (start + k) * row;
      for (let j = 0; j < row; j++) acc[j] = (acc[j] as number) + (tmp[base + j] as number) * wk;
    }
    const o = y * row;
    for (let j = 0; j < row; j++) out[o + j] = Math.min(255, Math.max(0, Math.round(acc[j] as number)));
  }
  return { width, height, data: out };
}

export function cropRgb(img: RgbLike, left: number, top: number, width: number, height: number): RgbLike {
  const out = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    const src = ((top + y) * img.width + left) * 3;
    out.set(img.data.subarray(src, src + width * 3), y * width * 3);
  }
  return { width, height, data: out };
}

/**
 * How a frame becomes a ViT input. 'aspect' (the default for new feature runs): the shorter side goes to the input
 * size and the longer side to the same scale rounded to a multiple of the patch size, so a 16:9 frame at 224 is
 * 224×400 (14×25 patches) and objects keep their shape. The longer side is capped at MAX_ASPECT times the shorter
 * one (a 4:1 grid at most, e.g. 224×896): a wider panorama is squeezed along its long side to that bound, so one
 * frame never costs more than 4 square inputs. 'square': the whole frame squashed to size × size, as runs made
 * before the aspect policy (they stay readable and are reported as square).
 */
export type ResizePolicy = 'aspect' | 'square';
export const MAX_ASPECT = 4;

export interface InputShape {
  /** Input pixels (multiples of the patch size). */
  width: number;
  height: number;
  /** Patch grid: rows and columns. */
  gridH: number;
  gridW: number;
}

/** The one resize policy: the input shape and patch grid of a width × height frame at input size `size`. */
export function inputShape(
  width: number,
  height: number,
  size: number,
  patch: number,
  policy: ResizePolicy = 'aspect',
): InputShape {
  const g = Math.max(1, Math.round(size / patch));
  if (policy === 'square' || width === height) return { width: g * patch, height: g * patch, gridH: g, gridW: g };
  const long = Math.max(width, height) / Math.min(width, height);
  const gl = Math.min(g * MAX_ASPECT, Math.max(g, Math.round(g * long)));
  const [gridW, gridH] = width > height ? [gl, g] : [g, gl];
  return { width: gridW * patch, height: gridH * patch, gridH, gridW };
}

export interface PreprocessOptions {
  /** Output side in pixels (a multiple of the patch size). */
  size: number;
  /** Output height when not square (`size` is then the width). */
  height?: number;
  /** 'center-crop': shorter side to `size` then a centred square crop; 'stretch': resize to size x height. */
  mode?: 'center-crop' | 'stretch';
  filter?: ResizeFilter;
  mean?: readonly [number, number, number];
  std?: readonly [number, number, number];
}

export const IMAGENET_MEAN = [0.485, 0.456, 0.406] as const;
export const IMAGENET_STD = [0.229, 0.224, 0.225] as const;

/** Writes one preprocessed image as CHW float32 into `out` at `offset` (for batching). */
export function preprocessInto(img: RgbLike, o: PreprocessOptions, out: Float32Array, offset = 0): void {
  const size = o.size;
  const lut = normalizationTable(o.mean ?? IMAGENET_MEAN, o.std ?? IMAGENET_STD);
  if ((o.mode ?? 'center-crop') !== 'center-crop') {
    resizeNormalizeInto(img, size, o.height ?? size, o.filter ?? 'bicubic', lut, out, offset);
    return;
  }
  const s = size / Math.min(img.width, img.height);
  const w = Math.max(size, Math.round(img.width * s));
  const h = Math.max(size, Math.round(img.height * s));
  const im = cropRgb(
    resizeRgb(img, w, h, o.filter),
    Math.floor((w - size) / 2),
    Math.floor((h - size) / 2),
    size,
    size,
  );
  const plane = im.width * im.height;
  const data = im.data;
  for (let c = 0; c < 3; c++) {
    const base = offset + c * plane;
    const table = c * 256;
    for (let i = 0; i < plane; i++) out[base + i] = lut[table + (data[i * 3 + c] as number)] as number;
  }
}

/** Taps flattened for the inner loops: per output, its first input, tap count and where its weights start. */
interface FlatTaps {
  start: Int32Array;
  count: Int32Array;
  at: Int32Array;
  w: Float64Array;
}
const flatCache = new Map<Taps, FlatTaps>();

function flat(taps: Taps): FlatTaps {
  let f = flatCache.get(taps);
  if (!f) {
    const n = taps.length;
    f = { start: new Int32Array(n), count: new Int32Array(n), at: new Int32Array(n), w: new Float64Array(0) };
    let total = 0;
    taps.forEach((t, o) => {
      (f as FlatTaps).at[o] = total;
      total += t.w.length;
    });
    f.w = new Float64Array(total);
    for (let o = 0; o < n; o++) {
      const t = taps[o] as Taps[number];
      f.start[o] = t.start;
      f.count[o] = t.w.length;
      f.w.set(t.w, f.at[o]);
    }
    if (flatCache.size > 64) flatCache.clear();
    flatCache.set(taps, f);
  }
  return f;
}

/**
 * The row pass's buffer, kept between images (every value it is read at is written first): a new one per frame
 * costs page faults where large blocks are freshly mapped (MALLOC_MMAP_THRESHOLD_, job workers) — ~200 a frame at
 * 304x224. Not kept past 16 MB.
 */
let scratch = new Float32Array(0);
function rowScratch(length: number): Float32Array {
  if (scratch.length >= length) return scratch;
  const made = new Float32Array(length);
  if (length <= 4 * 2 ** 20) scratch = made;
  return made;
}

/**
 * Math.min(255, Math.max(0, Math.round(v))) without Math.round (V8's is several times slower here): for v in
 * [0.5, 255) v + 0.5 rounds in float64 to a number whose integer part is Math.round(v) (no tie can round it up to
 * the next integer: that would need v + 0.5 in a binade above v's with the next integer at its top, which v < that
 * integer - 0.5 rules out), and truncation is floor for positives; below 0.5 it is 0, from 255 on 255.
 */
function byte(v: number): number {
  return v < 0.5 ? 0 : v >= 255 ? 255 : (v + 0.5) | 0;
}

/**
 * resizeRgb then the normalisation table into CHW float32 in one pass: the same row pass (float64 sums stored in
 * float32), the same column sums in the same tap order, rounded and clamped to a byte and looked up, written straight
 * into the batch: the values resizeRgb + the table give, bit for bit, without the byte image in between.
 */
function resizeNormalizeInto(
  img: RgbLike,
  width: number,
  height: number,
  filter: ResizeFilter,
  lut: Float64Array,
  out: Float32Array,
  offset: number,
): void {
  const src = img.data;
  const inW = img.width;
  const plane = width * height;
  const g0 = offset;
  const g1 = offset + plane;
  const g2 = offset + 2 * plane;
  const row = width * 3;
  const wy = weights(img.height, height, filter);
  const sameRows = isIdentity(wy);
  const fy = flat(wy);
  // Row pass: only the input rows some output row takes.
  const first = sameRows ? 0 : (fy.start[0] as number);
  const last = sameRows ? img.height : (fy.start[height - 1] as number) + (fy.count[height - 1] as number);
  const tmp = rowScratch((last - first) * row);
  const wx = weights(inW, width, filter);
  if (isIdentity(wx)) {
    // Each output column is its own input column with weight 1: the row pass copies the bytes.
    for (let y = first; y < last; y++) tmp.set(src.subarray(y * row, (y + 1) * row), (y - first) * row);
  } else {
    const fx = flat(wx);
    const xs = fx.start;
    const xn = fx.count;
    const xa = fx.at;
    const xw = fx.w;
    const inRow = inW * 3;
    // Column by column (its taps' weights stay in registers), down the rows: the same sums in the same order.
    for (let x = 0; x < width; x++) {
      const a0 = xa[x] as number;
      const end = a0 + (xn[x] as number);
      const i0 = (first * inW + (xs[x] as number)) * 3;
      if (end - a0 === 2) {
        // Two taps (most columns of a small downscale): the same two additions, unrolled.
        const w0 = xw[a0] as number;
        const w1 = xw[a0 + 1] as number;
        for (let y = first, i = i0, o = x * 3; y < last; y++, i += inRow, o += row) {
          tmp[o] = 0 + (src[i] as number) * w0 + (src[i + 3] as number) * w1;
          tmp[o + 1] = 0 + (src[i + 1] as number) * w0 + (src[i + 4] as number) * w1;
          tmp[o + 2] = 0 + (src[i + 2] as number) * w0 + (src[i + 5] as number) * w1;
        }
        continue;
      }
      for (let y = first, i = i0, o = x * 3; y < last; y++, i += inRow, o += row) {
        let r = 0;
        let g = 0;
        let b = 0;
        for (let a = a0, k = i; a < end; a++, k += 3) {
          const wk = xw[a] as number;
          r += (src[k] as number) * wk;
          g += (src[k + 1] as number) * wk;
          b += (src[k + 2] as number) * wk;
        }
        tmp[o] = r;
        tmp[o + 1] = g;
        tmp[o + 2] = b;
      }
    }
  }
  if (sameRows) {
    for (let y = 0, p = 0, j = 0; y < height; y++)
      for (let x = 0; x < width; x++, p++, j += 3) {
        out[g0 + p] = lut[byte(tmp[j] as number)] as number;
        out[g1 + p] = lut[256 + byte(tmp[j + 1] as number)] as number;
        out[g2 + p] = lut[512 + byte(tmp[j + 2] as number)] as number;
      }
    return;
  }
  const ys = fy.start;
  const yn = fy.count;
  const ya = fy.at;
  const yw = fy.w;
  for (let y = 0, p = 0; y < height; y++) {
    const base = ((ys[y] as number) - first) * row;
    const a0 = ya[y] as number;
    const end = a0 + (yn[y] as number);
    if (end - a0 === 2) {
      // Two taps (most rows of a small downscale): the same two additions, unrolled.
      const w0 = yw[a0] as number;
      const w1 = yw[a0 + 1] as number;
      for (let x = 0, j = base; x < width; x++, p++, j += 3) {
        const k = j + row;
        out[g0 + p] = lut[byte(0 + (tmp[j] as number) * w0 + (tmp[k] as number) * w1)] as number;
        out[g1 + p] = lut[256 + byte(0 + (tmp[j + 1] as number) * w0 + (tmp[k + 1] as number) * w1)] as number;
        out[g2 + p] = lut[512 + byte(0 + (tmp[j + 2] as number) * w0 + (tmp[k + 2] as number) * w1)] as number;
      }
      continue;
    }
    for (let x = 0, j = base; x < width; x++, p++, j += 3) {
      let r = 0;
      let g = 0;
      let b = 0;
      for (let a = a0, i = j; a < end; a++, i += row) {
        const wk = yw[a] as number;
        r += (tmp[i] as number) * wk;
        g += (tmp[i + 1] as number) * wk;
        b += (tmp[i + 2] as number) * wk;
      }
      out[g0 + p] = lut[byte(r)] as number;
      out[g1 + p] = lut[256 + byte(g)] as number;
      out[g2 + p] = lut[512 + byte(b)] as number;
    }
  }
}

const normalizationTables = new Map<string, Float64Array>();

/** (v / 255 - mean[c]) / std[c] for every byte v and channel c, as the per-pixel arithmetic gives it (same bits). */
function normalizationTable(mean: readonly number[], std: readonly number[]): Float64Array {
  const key = `${mean.join(',')}/${std.join(',')}`;
  let t = normalizationTables.get(key);
  if (!t) {
    t = new Float64Array(3 * 256);
    for (let c = 0; c < 3; c++)
      for (let v = 0; v < 256; v++) t[c * 256 + v] = (v / 255 - (mean[c] as number)) / (std[c] as number);
    if (normalizationTables.size > 16) normalizationTables.clear();
    normalizationTables.set(key, t);
  }
  return t;
}

/** A batch [N, 3, size, size] from several images. */
export function preprocessBatch(images: readonly RgbLike[], o: PreprocessOptions): Float32Array {
  const n = 3 * o.size * o.size;
  const out = new Float32Array(images.length * n);
  images.forEach((img, i) => {
    preprocessInto(img, o, out, i * n);
  });
  return out;
}
