/**
 * ShareLock's training data as (image, text) pairs: class prompts from labelled folders ("a photo of a {class}",
 * the classes split into mutually exclusive seen and unseen sets, as the seed's zero-shot protocol), and captions
 * files (CSV or JSONL of path + caption, COCO captions JSON). Paths are matched to library items by the caller.
 */
import path from 'node:path';
import { FlaneurError } from '../api/errors.js';
import { Rng } from '../base/rng.js';
import { readRegularFile } from '../models/regular-file.js';

/** One caption of one image file (an absolute path). */
export interface CaptionPair {
  path: string;
  caption: string;
}

export type CaptionsFormat = 'auto' | 'csv' | 'jsonl' | 'coco';

/** Captions files are read whole: 512 MB holds COCO's captions many times over. */
const MAX_CAPTIONS_BYTES = 512 * 2 ** 20;

const PATH_KEYS = ['path', 'file', 'file_name', 'filename', 'image', 'image_path'];
const CAPTION_KEYS = ['caption', 'text', 'captions'];

function bad(file: string, where: string, why: string): FlaneurError {
  return new FlaneurError(
    'INVALID_ARGUMENT',
    `${path.basename(file)}${where ? ` (${where})` : ''}: ${why}. A captions file is CSV with a header (path,caption), JSON Lines ({"path": …, "caption": …} per line) or COCO captions JSON.`,
    { field: 'captions' },
  );
}

/** One CSV record per line (RFC 4180 quotes, "" inside quotes; a quoted field may span lines). */
function csvRecords(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i] as string;
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"' && field === '') quoted = true;
    else if (ch === ',') {
      row.push(field);
      field = '';
    } else if (ch === '\n' || ch === '\r') {
      if (ch === '\r' && text[i + 1] === '\n') i++;
      row.push(field);
      if (row.some((f) => f !== '')) rows.push(row);
      row = [];
      field = '';
    } else field += ch;
  }
  row.push(field);
  if (row.some((f) => f !== '')) rows.push(row);
  return rows;
}

const pick = (o: Record<string, unknown>, keys: readonly string[]) => {
  for (const k of keys) if (typeof o[k] === 'string' && o[k]) return o[k] as string;
  return undefined;
};

/**
 * The (image, caption) pairs of a captions file; relative image paths are taken from `imagesDir`, else from the
 * file's folder. Refused with the line and what is wrong (never quoting its contents).
 */
export function readCaptionsFile(file: string, o: { format?: CaptionsFormat; imagesDir?: string } = {}): CaptionPair[] {
  const abs = path.resolve(file);
  const text = readRegularFile(abs, MAX_CAPTIONS_BYTES, (why) => bad(abs, '', `the file ${why}`))
    .toString('utf8')
    .replace(/^\uFEFF/, '');
  const base = path.resolve(o.imagesDir ?? path.dirname(abs));
  const resolve = (p: string) => path.resolve(base, p);
  const format =
    o.format && o.format !== 'auto'
      ? o.format
      : /\.csv$/i.test(abs)
        ? 'csv'
        : /\.jsonl$/i.test(abs) || /^\s*\{[^\n]*\}\s*\n\s*\{/.test(text)
          ? 'jsonl'
          : /\.json$/i.test(abs)
            ? 'coco'
            : 'csv';
  const out: CaptionPair[] = [];
  if (format === 'csv') {
    const [header, ...rows] = csvRecords(text);
    const names = (header ?? []).map((h) => h.trim().toLowerCase());
    const pi = names.findIndex((h) => PATH_KEYS.includes(h));
    const ci = names.findIndex((h) => CAPTION_KEYS.includes(h));
    if (pi < 0 || ci < 0) throw bad(abs, 'line 1', 'its header names no path and caption columns');
    rows.forEach((r, i) => {
      const p = r[pi]?.trim();
      const c = r[ci]?.trim();
      if (!p || !c) throw bad(abs, `record ${i + 2}`, 'a record without a path or a caption');
      out.push({ path: resolve(p), caption: c });
    });
  } else if (format === 'jsonl') {
    text.split(/\r?\n/).forEach((line, i) => {
      if (!line.trim()) return;
      let o: unknown;
      try {
        o = JSON.parse(line);
      } catch {
        throw bad(abs, `line ${i + 1}`, 'not JSON');
      }
      const rec = (typeof o === 'object' && o !== null ? o : {}) as Record<string, unknown>;
      const p = pick(rec, PATH_KEYS);
      const c = pick(rec, CAPTION_KEYS);
      if (!p || !c) throw bad(abs, `line ${i + 1}`, 'no "path" and "caption" strings');
      out.push({ path: resolve(p), caption: c.trim() });
    });
  } else {
    let coco: { images?: unknown; annotations?: unknown };
    try {
      coco = JSON.parse(text) as typeof coco;
    } catch {
      throw bad(abs, '', 'not JSON');
    }
    if (!Array.isArray(coco.images) || !Array.isArray(coco.annotations))
      throw bad(abs, '', 'COCO captions need "images" and "annotations" lists');
    const files = new Map<unknown, string>();
    for (const im of coco.images as Record<string, unknown>[])
      if (im && typeof im.file_name === 'string') files.set(im.id, im.file_name);
    (coco.annotations as Record<string, unknown>[]).forEach((a, i) => {
      const f = a ? files.get(a.image_id) : undefined;
      if (!f || typeof a.caption !== 'string' || !a.caption.trim())
        throw bad(abs, `annotation ${i + 1}`, 'an annotation without a caption or a known image_id');
      out.push({ path: resolve(f), caption: a.caption.trim() });
    });
  }
  if (out.length === 0) throw bad(abs, '', 'it holds no captions');
  return out;
}

/** The class of a file under a labelled root: the name of its first sub-folder (null outside or directly in it). */
export function labelledClass(root: string, file: string): string | null {
  const rel = path.relative(path.resolve(root), path.resolve(file)).split(path.sep);
  return rel.length >= 2 && rel[0] !== '..' && rel[0] !== '' ? (rel[0] as string) : null;
}

/** "a photo of a {}" with the class name (underscores as spaces): the official zero-shot prompt. */
export function classPrompt(template: string, className: string): string {
  const name = className.replace(/_/g, ' ').trim();
  return template.includes('{}') ? template.replaceAll('{}', name) : `${template} ${name}`;
}

/**
 * Classes split into mutually exclusive seen (trained on) and unseen (held out for zero-shot) sets: the named
 * `unseen` ones, else `fraction` of them drawn with the run's seed. Sorted names; at least one class on each side
 * unless `fraction` is 0.
 */
export function splitClasses(
  classes: readonly string[],
  o: { unseen?: readonly string[]; fraction: number; seed: number },
): { seen: string[]; unseen: string[] } {
  const all = [...new Set(classes)].sort();
  let unseen: string[];
  if (o.unseen && o.unseen.length > 0) {
    const missing = o.unseen.filter((c) => !all.includes(c));
    if (missing.length)
      throw new FlaneurError(
        'INVALID_ARGUMENT',
        `The held-out classes ${missing.join(', ')} are not sub-folders of the labelled folder (it has ${all.join(', ')}).`,
        { field: 'classes' },
      );
    unseen = [...new Set(o.unseen)].sort();
  } else {
    const order = new Rng(o.seed * 2654435761 + 7).shuffle(all.slice());
    const n = o.fraction > 0 ? Math.min(all.length - 1, Math.max(1, Math.round(all.length * o.fraction))) : 0;
    unseen = order.slice(0, n).sort();
  }
  const seen = all.filter((c) => !unseen.includes(c));
  if (seen.length === 0)
    throw new FlaneurError('INVALID_ARGUMENT', 'Every class is held out: at least one must be trained on.', {
      field: 'classes',
    });
  return { seen, unseen };
}

/**
 * The order pairs are visited in: epoch e is a permutation of 0..n-1 drawn from (seed, e) alone, so the batch of any
 * step is known from the step number (an exact resume needs nothing else). Batch `step` takes positions
 * step·B … step·B + B − 1 of the epochs laid end to end.
 */
export function batchIndices(n: number, batch: number, step: number, seed: number): Int32Array {
  const out = new Int32Array(batch);
  let epoch = -1;
  let perm = new Int32Array(0);
  for (let i = 0; i < batch; i++) {
    const pos = step * batch + i;
    const e = Math.floor(pos / n);
    if (e !== epoch) {
      epoch = e;
      perm = Int32Array.from(new Rng((seed * 2654435761 + e * 40503 + 11) >>> 0).shuffle([...Array(n).keys()]));
    }
    out[i] = perm[pos % n] as number;
  }
  return out;
}
