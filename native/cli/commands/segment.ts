/** Memory banks (from example masks or pseudo-classes) and segmenting items with them. */
import fs from 'node:fs';
import path from 'node:path';
import type { MediaInfo } from '../../api/contract.js';
import { CliError, UsageError } from '../errors.js';
import { command, frameNumber, type Session, splitFrameRef } from '../session.js';

const IMAGE_EXTENSIONS = ['.jpg', '.jpeg', '.JPG', '.JPEG', '.webp', '.bmp', '.tif', '.tiff'];

/** `ITEM@N.png` → the frame reference `ITEM:N`; null for other names. */
export function maskFrameRef(file: string): string | null {
  const m = /^(.+)@(\d+)\.png$/i.exec(path.basename(file));
  return m ? `${m[1]}:${m[2]}` : null;
}

function pngsIn(dir: string, what: string): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    throw new CliError(`No such folder: ${dir} (${what}).`, 'NOT_FOUND');
  }
  const pngs = names.filter((n) => n.toLowerCase().endsWith('.png')).sort();
  if (pngs.length === 0) throw new CliError(`${dir} has no PNG masks (${what}).`, 'NOT_FOUND');
  return pngs.map((n) => path.join(dir, n));
}

/** Class names from --classes or DIR/classes.txt; null: none given (binary masks default to background, foreground). */
function classNames(s: Session, dir: string): string[] | null {
  const given = s.opt('classes');
  const file = path.join(dir, 'classes.txt');
  const names = given ? given.split(',') : fs.existsSync(file) ? fs.readFileSync(file, 'utf8').split(/\r?\n/) : null;
  if (!names) return null;
  const clean = names.map((n) => n.trim()).filter(Boolean);
  if (clean.length < 2) throw new UsageError('segment bank: a bank needs at least 2 classes (class 0 first)');
  return clean;
}

const MASK_READINGS = ['auto', 'ids', 'binary'] as const;

/** --masks: how example masks' values map to classes. */
function maskReading(s: Session): (typeof MASK_READINGS)[number] | undefined {
  const v = s.opt('masks');
  if (v === undefined) return undefined;
  if (!(MASK_READINGS as readonly string[]).includes(v))
    throw new UsageError(`segment bank: --masks is one of ${MASK_READINGS.join(', ')}, not ${v}`);
  return v as (typeof MASK_READINGS)[number];
}

/**
 * What the masks' reading says, on stderr, so that a mask read as something else than meant is not silent: once
 * per kind of notice, however many masks it concerns (the same words with another file name are the same notice).
 */
function warn(s: Session, warnings: readonly string[], files: readonly string[]): void {
  const groups = new Map<string, string[]>();
  const named = [...files].sort((a, b) => b.length - a.length);
  for (const w of warnings) {
    const file = named.find((f) => w.includes(f));
    const key = file ? w.split(file).join('\u0000') : w;
    groups.set(key, [...(groups.get(key) ?? []), ...(file ? [file] : [])]);
  }
  for (const [key, masks] of groups) {
    const unique = [...new Set(masks)];
    const first = key.split('\u0000').join(unique[0] ?? '');
    s.note(`warning: ${first}${unique.length > 1 ? ` (the same for ${unique.length - 1} other mask(s))` : ''}`);
  }
}

/**
 * Masks named for the frames they label: `ITEM@N.png` (frame N of a catalog item) or `name.png` beside the image
 * `name.jpg` (`add`: the image is added to the catalog when it is not there; else it must be there — a copy of an
 * item is that item).
 */
async function maskFrames(
  s: Session,
  dir: string,
  what: string,
  o: { add: boolean },
): Promise<{ mediaId: number; frameIdx: number; mask: string; image: boolean }[]> {
  const out: { mediaId: number; frameIdx: number; mask: string; image: boolean }[] = [];
  for (const mask of pngsIn(dir, what)) {
    const ref = maskFrameRef(mask);
    if (ref) {
      const { media, frameIdx } = await s.frame(ref);
      out.push({ mediaId: media.id, frameIdx, mask, image: false });
      continue;
    }
    const stem = mask.slice(0, -4);
    const image = IMAGE_EXTENSIONS.map((e) => stem + e).find((f) => fs.existsSync(f));
    if (!image)
      throw new UsageError(
        `${s.inv.command.name}: ${path.basename(mask)} labels no image: put ${path.basename(stem)}.jpg beside it, or name it ITEM@N.png for frame N of a catalog item`,
      );
    const media = o.add ? await s.itemOrAdd(image) : ((await s.items([image]))[0] as MediaInfo);
    out.push({ mediaId: media.id, frameIdx: 0, mask, image: true });
  }
  return out;
}

async function exampleFrames(s: Session, dir: string) {
  const out = await maskFrames(s, dir, 'the examples', { add: true });
  const images = out.filter((f) => f.image).length;
  if (images) s.note(`${images} example image(s), ${out.length - images} catalog frame(s)`);
  return out;
}

/**
 * The example images' features in the bank's run, extracted first as `flaneur features` does: at a larger input
 * size than the stored frames they are decoded from the source at that size (and what could not be is said).
 */
async function extractFor(s: Session, runId: number, frames: readonly { mediaId: number; image: boolean }[]) {
  const images = frames.filter((f) => f.image);
  const run = (await s.call('features.runs', {})).find((r) => r.id === runId);
  if (!run || images.length === 0) return;
  const job = await s.call('features.extract', {
    modelId: run.modelId,
    media: [...new Set(images.map((f) => f.mediaId))],
    size: run.inputSize,
    resize: run.resize,
  });
  await s.extractionNotes(await s.waitJob(job));
}

export const bank = command(async (s) => {
  const examples = s.opt('examples');
  const cluster = s.num('cluster', { int: true, min: 2, max: 254 });
  if (!examples === (cluster === undefined))
    throw new UsageError('segment bank: give --examples DIR, or --cluster K with --from ITEM[:N]');
  const reading = maskReading(s);
  if (reading && !examples) throw new UsageError('segment bank: --masks is for --examples masks');
  const runId = await s.runId();
  let row: { id: number; name: string; runId: number; classes: string[]; patches: number; warnings?: string[] };
  if (examples) {
    const dir = path.resolve(examples);
    const classes = classNames(s, dir);
    const epochs = s.num('epochs', { int: true, min: 1, max: 100 });
    const memory = s.num('memory', { int: true, min: 1 });
    const frames = await exampleFrames(s, dir);
    await extractFor(s, runId, frames);
    row = await s.call('segment.createBank', {
      runId,
      name: s.opt('name') ?? path.basename(dir),
      ...(classes ? { classes } : {}),
      examples: frames.map(({ image: _i, ...e }) => (reading ? { ...e, encoding: reading } : e)),
      ...(epochs ? { epochs } : {}),
      ...(memory ? { memorySize: memory } : {}),
    });
    if (!classes)
      s.note(
        `classes: ${row.classes.join(', ')} (binary masks; --classes or ${path.join(dir, 'classes.txt')} names them)`,
      );
    warn(
      s,
      row.warnings ?? [],
      frames.map((e) => e.mask),
    );
  } else {
    const from = s.list('from');
    if (from.length === 0) throw new UsageError('segment bank: --cluster K needs --from ITEM[:N] (repeatable)');
    const frames: { mediaId: number; frameIdx: number }[] = [];
    for (const ref of from) {
      if (splitFrameRef(ref).frame !== null) {
        const { media, frameIdx } = await s.frame(ref);
        frames.push({ mediaId: media.id, frameIdx });
      } else {
        const [media] = await s.items([ref]);
        for (let i = 0; i < (media?.frameCount ?? 0); i++) frames.push({ mediaId: media?.id as number, frameIdx: i });
      }
    }
    row = await s.call('segment.clusterBank', {
      runId,
      name: s.opt('name') ?? `${cluster} clusters`,
      clusters: cluster as number,
      frames,
    });
  }
  s.out(
    row,
    () =>
      `bank #${row.id} "${row.name}" on run #${row.runId}: ${row.patches} patches, classes ${row.classes.join(', ')}`,
  );
});

export const banks = command(async (s) => {
  const list = await s.call('segment.banks', {});
  s.out(
    list,
    () =>
      list
        .map((b) => `#${b.id}\t${b.name}\trun #${b.runId}\t${b.patches} patches\t${b.classes.join(', ')}`)
        .join('\n') || '(no banks)',
  );
});

interface FrameScore {
  mediaId: number;
  frameIdx: number;
  mean: number;
  perClass: (number | null)[];
  /** Width and height the frame was scored at. */
  size?: [number, number];
}

const fmt = (v: number | null) => (v === null ? '–' : v.toFixed(4));

export const apply = command(async (s) => {
  const bankId = s.num('bank', { int: true, min: 1 }) as number;
  const every = s.num('every', { int: true, min: 1 });
  const k = s.num('k', { int: true, min: 1, max: 200 });
  const items = await s.itemsOrAll();
  const truthDir = s.opt('truth');
  const truth: { mediaId: number; frameIdx: number; mask: string }[] = [];
  if (truthDir) {
    // Named as example masks are: ITEM@N.png, or name.png beside name.jpg (an image of the catalog, or a copy).
    for (const t of await maskFrames(s, path.resolve(truthDir), 'the truth masks', { add: false })) {
      if (items && !items.some((m) => m.id === t.mediaId)) continue;
      truth.push({ mediaId: t.mediaId, frameIdx: t.frameIdx, mask: t.mask });
    }
    if (truth.length === 0) throw new CliError(`No truth mask in ${truthDir} is of these items.`, 'NOT_FOUND');
  }
  const job = await s.call('segment.batch', {
    bankId,
    outDir: s.opt('out') as string,
    resolution: 'source',
    ...(items ? { media: items.map((m) => m.id) } : {}),
    ...(every ? { every } : {}),
    ...(k ? { k } : {}),
    ...(truth.length ? { truth } : {}),
  });
  const done = await s.waitJob(job);
  const results = await s.jobItems(done.id);
  const exp = results.find((r) => r.key === 'export')?.result as {
    dir: string;
    coco: string;
    masks: number;
    iou: { mean: number; perClass: (number | null)[]; classes: string[]; resolution?: string } | null;
  };
  const frames = results
    .filter((r) => r.key.startsWith('iou:'))
    .map((r) => r.result as FrameScore & { warnings?: string[] })
    .sort((a, b) => a.mediaId - b.mediaId || a.frameIdx - b.frameIdx);
  const names = await s.byId(frames.map((f) => f.mediaId));
  // Truth masks are read like example masks: what their reading says is said here too.
  warn(
    s,
    frames.flatMap((f) => f.warnings ?? []),
    truth.map((t) => t.mask),
  );
  const iou = exp.iou
    ? {
        /** Where the masks were compared: at each source file's own resolution (as benchmarks score). */
        resolution: exp.iou.resolution ?? 'frame',
        mean: exp.iou.mean,
        perClass: Object.fromEntries(exp.iou.classes.map((c, i) => [c, exp.iou?.perClass[i] ?? null])),
        frames: frames.map((f) => ({
          mediaId: f.mediaId,
          item: names.get(f.mediaId)?.name ?? String(f.mediaId),
          frame: frameNumber(f.frameIdx),
          mean: f.mean,
          perClass: f.perClass,
          size: f.size,
          ...(f.warnings ? { warnings: f.warnings } : {}),
        })),
      }
    : null;
  s.out({ job: done, dir: exp.dir, coco: exp.coco, masks: exp.masks, iou }, () => {
    // The job's items are the frames scored and the export step: the summary counts frames, not items.
    const lines = [
      `#${done.id}\t${done.state}\t${done.title}\t(${exp.masks} frame(s) segmented, ${frames.length} scored)`,
      `${exp.masks} masks in ${path.join(exp.dir, 'masks')}, COCO in ${exp.coco}`,
    ];
    if (iou) {
      lines.push(
        `IoU over ${frames.length} frame(s) with truth (pixels summed), at ${iou.resolution === 'source' ? "the source files' own resolution" : 'the stored frame size'}:`,
      );
      for (const [c, v] of Object.entries(iou.perClass)) lines.push(`  ${c.padEnd(20)} ${fmt(v)}`);
      lines.push(`  ${'mIoU'.padEnd(20)} ${fmt(iou.mean)}`, 'per frame (mIoU):');
      for (const f of iou.frames) lines.push(`  ${f.item}:${f.frame}\t${fmt(f.mean)}`);
    }
    return lines.join('\n');
  });
});

export const compare = command(async (s) => {
  const modelIds = (s.opt('models') ?? '').split(',').map((x) => {
    const id = Number(x);
    if (!Number.isInteger(id) || id < 1) throw new UsageError(`segment compare: --models takes ids like 1,4, not ${x}`);
    return id;
  });
  const size = s.num('size', { int: true, min: 16 });
  const r = await s.call('segment.compareModels', { modelIds, ...(size ? { size } : {}) });
  s.out(r, () =>
    [
      ...(r.note ? [r.note] : []),
      `${r.frames} ${r.source === 'synthetic' ? 'synthetic tour' : 'labelled'} frames, ${r.classes} classes, input ${r.size}`,
      ...r.models.map((m) => `model #${m.modelId}	mIoU ${(100 * m.miou).toFixed(1)}`),
    ].join('\n'),
  );
});
