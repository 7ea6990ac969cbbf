/**
 * Reading label masks from image files in the usual encodings, scaled to the frame size with nearest-neighbour so
 * ids never blend:
 *
 * - class ids: a grayscale PNG whose value is the class (255 = ignore);
 * - binary: 0/255 (the most common binary format) or 0/1, also with JPEG compression noise (thresholded);
 * - palette PNG: the pixel's palette index is the class (VOC, DAVIS);
 * - colour masks: one colour per class, snapped to the nearest class colour (JPEG noise), with a palette given or
 *   the colours found in the mask;
 *
 * and what was read is said: the encoding recognised and a warning whenever the values do not match the bank's
 * classes (e.g. only 0 and 255), so a mask never silently means nothing.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { FlaneurError } from '../api/errors.js';
import { findBinaries } from '../media/ffmpeg.js';
import { IGNORE } from './labels.js';

const run = promisify(execFile);

/**
 * How to read a mask. 'auto' (the default) recognises the encoding; 'ids': gray value = class id (255 = ignore);
 * 'binary': below half the largest value = class 0, above = class 1; 'palette': the colour nearest to each of
 * `colours` (one per class).
 */
export type MaskEncoding =
  | { kind: 'auto' }
  | { kind: 'ids' }
  | { kind: 'binary' }
  | { kind: 'palette'; colours: readonly (readonly [number, number, number])[] };

export interface MaskRead {
  /** Class id per pixel of the width × height frame (IGNORE where none). */
  labels: Uint8Array;
  /** The encoding as read, in words (e.g. 'binary 0/255'). */
  read: string;
  /** What the user should know: values that are not classes, a binary mask read as two classes, … */
  warnings: string[];
}

/** A colour within this RGB distance of a class colour is that class (JPEG noise moves colours by up to ~30). */
const SNAP = 48;

async function probeMask(file: string): Promise<{ width: number; height: number; pixFmt: string }> {
  try {
    const { stdout } = await run(findBinaries().ffprobe.path, [
      '-v',
      'error',
      '-select_streams',
      'v:0',
      '-show_entries',
      'stream=width,height,pix_fmt',
      '-of',
      'json',
      file,
    ]);
    const s = (JSON.parse(stdout) as { streams?: { width?: number; height?: number; pix_fmt?: string }[] })
      .streams?.[0];
    if (!s?.width || !s.height) throw new Error('no image stream');
    return { width: s.width, height: s.height, pixFmt: s.pix_fmt ?? '' };
  } catch (err) {
    throw unreadable(file, err);
  }
}

function unreadable(file: string, err: unknown): FlaneurError {
  const detail = String((err as { stderr?: Buffer | string }).stderr ?? (err as Error).message ?? '')
    .trim()
    .split('\n')
    .pop();
  return new FlaneurError(
    'UNREADABLE_MEDIA',
    `Cannot read the mask ${file}: ${detail || 'not an image'}. Give a PNG or JPEG label mask.`,
    { field: 'mask' },
  );
}

/** The mask's pixels at its own size: palette indices (pal8) or RGB. */
async function decodeMask(
  file: string,
): Promise<{ width: number; height: number; indexed: boolean; data: Uint8Array; palette?: number[][] }> {
  const { width, height, pixFmt } = await probeMask(file);
  const indexed = pixFmt === 'pal8';
  const channels = indexed ? 1 : 3;
  let buf: Buffer;
  try {
    const { stdout } = await run(
      findBinaries().ffmpeg.path,
      ['-v', 'error', '-i', file, '-frames:v', '1', '-f', 'rawvideo', '-pix_fmt', indexed ? 'pal8' : 'rgb24', '-'],
      { encoding: 'buffer', maxBuffer: width * height * channels + 4096 },
    );
    buf = stdout;
  } catch (err) {
    throw unreadable(file, err);
  }
  if (buf.length < width * height * channels)
    throw new FlaneurError('UNREADABLE_MEDIA', `The mask ${file} decoded to ${buf.length} bytes; it is damaged.`, {
      field: 'mask',
    });
  const data = new Uint8Array(buf.subarray(0, width * height * channels));
  if (!indexed) return { width, height, indexed, data };
  // ffmpeg appends the 256-entry palette as 32-bit BGRA words.
  const pal = buf.subarray(width * height, width * height + 1024);
  const palette = Array.from({ length: pal.length / 4 }, (_, i) => [
    pal[i * 4 + 2] as number,
    pal[i * 4 + 1] as number,
    pal[i * 4] as number,
  ]);
  return { width, height, indexed, data, palette };
}

/** Nearest-neighbour scaling of one-channel values (pixel centres), so class ids never blend. */
function scaleNearest(src: Uint8Array, sw: number, sh: number, width: number, height: number): Uint8Array {
  if (sw === width && sh === height) return src;
  const out = new Uint8Array(width * height);
  const col = Int32Array.from({ length: width }, (_, x) => Math.min(sw - 1, Math.floor(((x + 0.5) * sw) / width)));
  for (let y = 0; y < height; y++) {
    const row = Math.min(sh - 1, Math.floor(((y + 0.5) * sh) / height)) * sw;
    for (let x = 0; x < width; x++) out[y * width + x] = src[row + (col[x] as number)] as number;
  }
  return out;
}

const hex = (c: readonly number[]) => `#${c.map((v) => v.toString(16).padStart(2, '0')).join('')}`;
const pct = (n: number, of: number) => `${((100 * n) / of).toFixed(1)}%`;

function histogram(values: Uint8Array): Float64Array {
  const h = new Float64Array(256);
  for (const v of values) h[v] = (h[v] as number) + 1;
  return h;
}

/** Values present, listed briefly ("0, 17, 255" or "0 … 255 (40 values)"). */
function listValues(h: Float64Array): string {
  const present = [...h.keys()].filter((v) => (h[v] as number) > 0);
  return present.length <= 6
    ? present.join(', ')
    : `${present[0]} … ${present[present.length - 1]} (${present.length} values)`;
}

function readIds(gray: Uint8Array, classes: number, names: readonly string[], file: string): MaskRead {
  const h = histogram(gray);
  const labels = new Uint8Array(gray.length);
  let bad = 0;
  const badValues: number[] = [];
  for (let v = 0; v < 256; v++) if ((h[v] as number) > 0 && v >= classes && v !== IGNORE) badValues.push(v);
  for (let i = 0; i < gray.length; i++) {
    const v = gray[i] as number;
    if (v < classes) labels[i] = v;
    else {
      labels[i] = IGNORE;
      if (v !== IGNORE) bad++;
    }
  }
  const warnings: string[] = [];
  if (bad > 0)
    warnings.push(
      `The mask ${file} has values ${badValues.slice(0, 8).join(', ')}${badValues.length > 8 ? ' …' : ''} (${pct(bad, gray.length)} of its pixels) that are not classes of the bank (0–${classes - 1}${names.length ? `: ${names.join(', ')}` : ''}; 255 = ignore): they were ignored. Check the classes, or read the mask as binary or with a palette.`,
    );
  return { labels, read: 'class ids', warnings };
}

function readBinary(gray: Uint8Array, names: readonly string[], file: string, noisy: boolean): MaskRead {
  const h = histogram(gray);
  let max = 0;
  for (let v = 255; v > 0; v--)
    if ((h[v] as number) > 0) {
      max = v;
      break;
    }
  const cut = max / 2;
  const labels = Uint8Array.from(gray, (v) => (max > 0 && v > cut ? 1 : 0));
  const fg = names[1] ? `'${names[1]}'` : 'class 1';
  const warnings = [
    noisy
      ? `The mask ${file} looks like a binary mask with compression noise (values ${listValues(h)}): thresholded at ${Math.round(cut)}, dark = '${names[0] ?? 'class 0'}', bright = ${fg}.`
      : `The mask ${file} has only values 0 and ${max}: ${max} was read as the second class (${fg}), not as 'ignore'. If ${max} marks pixels to ignore, read the mask as class ids.`,
  ];
  return { labels, read: noisy ? 'binary (thresholded)' : `binary 0/${max}`, warnings };
}

/** Pixels snapped to the nearest of `colours` within SNAP (else ignored). */
function snapColours(rgb: Uint8Array, colours: readonly (readonly number[])[]): { labels: Uint8Array; missed: number } {
  const labels = new Uint8Array(rgb.length / 3);
  const cache = new Map<number, number>();
  let missed = 0;
  for (let i = 0; i < labels.length; i++) {
    const r = rgb[i * 3] as number;
    const g = rgb[i * 3 + 1] as number;
    const b = rgb[i * 3 + 2] as number;
    const key = (r << 16) | (g << 8) | b;
    let c = cache.get(key);
    if (c === undefined) {
      c = IGNORE;
      let best = SNAP * SNAP;
      colours.forEach((k, j) => {
        const d = (r - (k[0] as number)) ** 2 + (g - (k[1] as number)) ** 2 + (b - (k[2] as number)) ** 2;
        if (d <= best) {
          best = d;
          c = j;
        }
      });
      cache.set(key, c);
    }
    labels[i] = c;
    if (c === IGNORE) missed++;
  }
  return { labels, missed };
}

/** The distinct colours of a colour mask: the most frequent colours at least SNAP apart (each ≥ 0.05 % of pixels). */
type Rgb = [number, number, number];

const dist2 = (a: readonly number[], b: Rgb) =>
  ((a[0] as number) - b[0]) ** 2 + ((a[1] as number) - b[1]) ** 2 + ((a[2] as number) - b[2]) ** 2;

function distinctColours(rgb: Uint8Array): Rgb[] {
  const counts = new Map<number, number>();
  for (let i = 0; i < rgb.length; i += 3) {
    const key = ((rgb[i] as number) << 16) | ((rgb[i + 1] as number) << 8) | (rgb[i + 2] as number);
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  const min = (rgb.length / 3) * 0.0005;
  const centres: Rgb[] = [];
  for (const [key] of [...counts].filter(([, n]) => n >= min).sort((a, b) => b[1] - a[1])) {
    const c: Rgb = [(key >> 16) & 255, (key >> 8) & 255, key & 255];
    if (centres.every((k) => dist2(k, c) > SNAP * SNAP)) centres.push(c);
  }
  return centres;
}

function isGray(rgb: Uint8Array): boolean {
  let coloured = 0;
  for (let i = 0; i < rgb.length; i += 3) {
    const r = rgb[i] as number;
    const g = rgb[i + 1] as number;
    const b = rgb[i + 2] as number;
    if (Math.max(r, g, b) - Math.min(r, g, b) > 30) coloured++;
  }
  return coloured <= (rgb.length / 3) * 0.001;
}

/**
 * Reads a label mask as classes of a bank (`classes` of them, named `names` for the messages) at width × height.
 */
export async function readMask(
  file: string,
  width: number,
  height: number,
  encoding: MaskEncoding,
  classes: number,
  names: readonly string[] = [],
): Promise<MaskRead> {
  const img = await decodeMask(file);
  const scale = (v: Uint8Array) => scaleNearest(v, img.width, img.height, width, height);
  const gray = () => {
    if (img.indexed) return img.data;
    const g = new Uint8Array(img.width * img.height);
    for (let i = 0; i < g.length; i++) g[i] = img.data[i * 3] as number;
    return g;
  };
  const rgb = () => {
    if (!img.indexed) return img.data;
    const out = new Uint8Array(img.width * img.height * 3);
    img.data.forEach((v, i) => {
      out.set(img.palette?.[v] ?? [0, 0, 0], i * 3);
    });
    return out;
  };
  let r: MaskRead;
  if (encoding.kind === 'palette') {
    const { labels, missed } = snapColours(rgb(), encoding.colours);
    r = {
      labels,
      read: 'colours of the palette',
      warnings:
        missed > labels.length * 0.01
          ? [
              `${pct(missed, labels.length)} of the pixels of ${file} match none of the palette's colours (${encoding.colours.map(hex).join(', ')}): ignored.`,
            ]
          : [],
    };
  } else if (encoding.kind === 'binary') {
    r = readBinary(gray(), names, file, false);
    r.warnings = [];
    r.read = 'binary';
  } else if (encoding.kind === 'ids' || img.indexed) {
    // A palette PNG stores class ids as its indices (VOC, DAVIS), whatever colours its palette shows.
    r = readIds(gray(), classes, names, file);
    if (img.indexed) r.read = 'palette PNG (index = class)';
  } else if (isGray(img.data)) {
    r = readGray(gray(), classes, names, file);
  } else {
    r = readColour(img.data, classes, names, file);
  }
  return { ...r, labels: scale(r.labels) };
}

/**
 * Whether a mask is binary (two values: 0/1, 0/255 or 0/max, also with JPEG noise), so that a bank made of such
 * masks can default its classes to background and foreground.
 */
export async function isBinaryMask(file: string): Promise<boolean> {
  const img = await decodeMask(file);
  if (img.indexed) return img.data.every((v) => v <= 1);
  if (!isGray(img.data)) return false;
  const gray = new Uint8Array(img.width * img.height);
  for (let i = 0; i < gray.length; i++) gray[i] = img.data[i * 3] as number;
  const r = readGray(gray, 2, [], file);
  return r.read.startsWith('binary') || (r.read === 'class ids' && r.warnings.length === 0);
}

/** Grayscale masks: class ids, binary 0/255 (or 0/max), or binary with compression noise. */
function readGray(gray: Uint8Array, classes: number, names: readonly string[], file: string): MaskRead {
  const h = histogram(gray);
  const present = [...h.keys()].filter((v) => (h[v] as number) > 0);
  const fits = present.every((v) => v < classes || v === IGNORE);
  // 0 and one other value that is no class (255, or 1 with a one-class bank…): a binary mask.
  if (present.length === 2 && present[0] === 0 && (present[1] as number) >= classes)
    return readBinary(gray, names, file, false);
  if (fits) return readIds(gray, classes, names, file);
  // Many values, all close to the darkest or the brightest: a binary mask saved as JPEG.
  const lo = present[0] as number;
  const hi = present[present.length - 1] as number;
  let near = 0;
  for (const v of present) if (v - lo <= 40 || hi - v <= 40) near += h[v] as number;
  if (hi - lo >= 128 && near >= gray.length * 0.99) return readBinary(gray, names, file, true);
  return readIds(gray, classes, names, file);
}

/** Colour masks without a palette: the mask's own colours, the darkest as class 0 and the rest by frequency. */
function readColour(rgb: Uint8Array, classes: number, names: readonly string[], file: string): MaskRead {
  const found = distinctColours(rgb);
  const lum = (c: Rgb) => 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2];
  const darkest = found.reduce((a, c) => (lum(c) < lum(a) ? c : a), found[0] ?? ([0, 0, 0] as Rgb));
  const ordered = [darkest, ...found.filter((c) => c !== darkest)].slice(0, classes);
  const { labels, missed } = snapColours(rgb, ordered);
  const name = (i: number) => names[i] ?? `class ${i}`;
  const warnings = [
    `The mask ${file} is a colour mask without a palette: its colours were read as ${ordered.map((c, i) => `${hex(c)} = ${name(i)}`).join(', ')} (the darkest first, then by area). Give the palette if that is not the order.`,
  ];
  if (found.length > classes)
    warnings.push(
      `It has ${found.length} colours for ${classes} classes: ${found
        .slice(classes)
        .map(hex)
        .join(', ')} (${pct(missed, labels.length)} of the pixels) were ignored.`,
    );
  return { labels, read: `colour (${ordered.length} colours)`, warnings };
}

/** Distinct colours for classes (background dark), as RGB. */
export function classColours(n: number): [number, number, number][] {
  const out: [number, number, number][] = [[40, 40, 40]];
  for (let i = 1; i < n; i++) {
    const h = ((i - 1) * 0.618034) % 1;
    const [r, g, b] = hsv(h, 0.75, 0.95);
    out.push([r, g, b]);
  }
  return out;
}

function hsv(h: number, s: number, v: number): [number, number, number] {
  const i = Math.floor(h * 6);
  const f = h * 6 - i;
  const p = v * (1 - s);
  const q = v * (1 - f * s);
  const t = v * (1 - (1 - f) * s);
  const [r, g, b] = [
    [v, t, p],
    [q, v, p],
    [p, v, t],
    [p, q, v],
    [t, p, v],
    [v, p, q],
  ][i % 6] as [number, number, number];
  return [Math.round(r * 255), Math.round(g * 255), Math.round(b * 255)];
}
