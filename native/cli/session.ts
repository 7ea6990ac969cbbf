/**
 * What every command's code shares: an in-process engine (observing a project another process owns), typed calls
 * through the same dispatcher as the UI, jobs waited for with progress on stderr, results on stdout (JSON with
 * --json), catalog items and frames named as people name them. Loaded only when a command runs.
 */
import fs from 'node:fs';
import path from 'node:path';
import type {
  CallResponse,
  CommandArgs,
  CommandName,
  CommandResult,
  EngineEvent,
  JobInfo,
  JobItem,
  MediaInfo,
} from '../api/contract.js';
import { FIRST_FRAME, frameNumber, sourceFrameSize } from '../api/frames.js';
import { Engine } from '../engine/engine.js';
import { createEngineDispatcher } from '../engine/handlers.js';
import { defaultHome } from '../store/app-home.js';
import { CliError, UsageError } from './errors.js';
import type { Invocation } from './invocation.js';

export { FIRST_FRAME, frameNumber };

/** `ITEM:N` → the item and its frame number; `ITEM` alone → no frame. The last `:digits` is the frame. */
export function splitFrameRef(ref: string): { item: string; frame: number | null } {
  const m = /^(.+):(\d+)$/.exec(ref);
  return m ? { item: m[1] as string, frame: Number(m[2]) } : { item: ref, frame: null };
}

/** A byte count people read: 1.2 MiB, 340 KiB, 12 B. */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = Math.max(0, n);
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${Math.round(v)} B` : `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[u]}`;
}

/** A job's progress line: whole numbers (fractions of an item are work in progress), bytes in readable units. */
export function formatProgress(p: Pick<JobInfo['progress'], 'phase' | 'done' | 'total' | 'unit'>): string {
  if (p.unit === 'bytes')
    return `${p.phase} ${formatBytes(p.done)}${p.total !== null ? ` of ${formatBytes(p.total)}` : ''}`;
  const done = Math.floor(p.done);
  return `${p.phase} ${done}${p.total !== null ? `/${Math.round(p.total)}` : ''} ${p.unit}`;
}

/** A feature run as people tell runs apart: model, input size, resize policy and grid (rows x columns). */
export function runLabel(r: CommandResult<'features.runs'>[number]): string {
  return `model #${r.modelId} ${r.modelName}, ${r.inputSize} px, ${r.resize === 'square' ? `square (grid ${r.grid}x${r.grid})` : `aspect kept (shorter side ${r.grid} patches)`}`;
}

export function formatJob(j: JobInfo): string {
  const p = j.progress;
  const pct = p.total ? ` ${Math.floor((100 * p.done) / p.total)}%` : '';
  const err = j.error ? ` — ${j.error.message}` : '';
  return `#${j.id}\t${j.state}${pct}\t${j.title}\t(${j.items.ok} ok, ${j.items.failed} failed, ${j.items.skipped} skipped)${err}`;
}

function sameSize(file: string, bytes: number): boolean {
  try {
    return fs.statSync(file).size === bytes;
  } catch {
    return false;
  }
}

export class Session {
  readonly engine: Engine;
  private readonly dispatcher;
  readonly json: boolean;

  constructor(readonly inv: Invocation) {
    this.json = inv.json;
    this.engine = new Engine({ home: defaultHome(), whenLocked: 'observe', runner: { autoResume: false } });
    this.dispatcher = createEngineDispatcher(this.engine);
  }

  /** A string option. */
  opt(name: string): string | undefined {
    const v = this.inv.values[name];
    return typeof v === 'string' ? v : undefined;
  }

  flag(name: string): boolean {
    return this.inv.values[name] === true;
  }

  list(name: string): string[] {
    const v = this.inv.values[name];
    return Array.isArray(v) ? v : typeof v === 'string' ? [v] : [];
  }

  /** A numeric option, checked: `--k abc` is a usage error naming the option. */
  num(name: string, o: { int?: boolean; min?: number; max?: number } = {}): number | undefined {
    const raw = this.opt(name);
    if (raw === undefined) return undefined;
    const v = Number(raw);
    const bad =
      raw.trim() === '' ||
      !Number.isFinite(v) ||
      (o.int && !Number.isInteger(v)) ||
      (o.min !== undefined && v < o.min) ||
      (o.max !== undefined && v > o.max);
    if (bad) {
      const range =
        o.min !== undefined && o.max !== undefined
          ? ` from ${o.min} to ${o.max}`
          : o.min !== undefined
            ? ` ≥ ${o.min}`
            : '';
      throw new UsageError(
        `${this.inv.command.name}: --${name} must be ${o.int ? 'an integer' : 'a number'}${range}, not ${raw}`,
      );
    }
    return v;
  }

  /** `x,y,…` with `n` numbers. */
  numbers(name: string, raw: string, n: number): number[] {
    const parts = raw.split(',').map((p) => Number(p.trim()));
    if (parts.length !== n || parts.some((p) => !Number.isFinite(p)))
      throw new UsageError(`${this.inv.command.name}: --${name} takes ${n} comma-separated numbers, not ${raw}`);
    return parts;
  }

  async call<K extends CommandName>(command: K, args: CommandArgs<K>): Promise<CommandResult<K>> {
    const res = (await this.dispatcher.dispatch(command, args)) as CallResponse<CommandResult<K>>;
    if (!res.ok) throw new CliError(res.error.message, res.error.code);
    return res.result;
  }

  /** Prints the result: JSON with --json, else the human form. */
  out(value: unknown, human: () => string): void {
    console.log(this.json ? JSON.stringify(value, null, 2) : human());
  }

  /** A progress note on stderr (never on stdout, which holds results). */
  note(text: string): void {
    process.stderr.write(`${text}\n`);
  }

  async openProject(dir?: string) {
    const target =
      dir ??
      this.opt('project') ??
      process.env.FLANEUR_PROJECT ??
      this.engine.home.recent().find((r) => r.exists)?.path;
    if (!target) throw new CliError('No project given and no recent project. Use --project DIR.', 'NO_PROJECT', 2);
    return this.call('project.open', { path: target });
  }

  /**
   * Waits for a job with its progress on stderr; a job that does not finish `done` is an error with its reason.
   * Ctrl-C stops the engine: the job is left interrupted and `flaneur jobs resume` continues it.
   */
  async waitJob(job: JobInfo): Promise<JobInfo> {
    const tty = process.stderr.isTTY === true;
    let last = '';
    const stop = this.engine.on((e: EngineEvent) => {
      if (e.type !== 'job.updated' || e.job.id !== job.id || e.job.state !== 'running') return;
      const p = e.job.progress;
      const pct = p.total ? Math.floor((100 * p.done) / p.total) : null;
      const line = formatProgress(p);
      if (tty) process.stderr.write(`\r${line}   `);
      else {
        // Logs get a line per phase and per 10%, not one per item.
        const key = `${p.phase}:${pct === null ? '' : Math.floor(pct / 10)}`;
        if (key !== last) process.stderr.write(`${line}\n`);
        last = key;
      }
    });
    let stopped = false;
    const onSigint = () => {
      stopped = true;
      void this.engine.close();
    };
    process.once('SIGINT', onSigint);
    await this.engine.requireProject().runner.idle();
    process.off('SIGINT', onSigint);
    stop();
    if (tty) process.stderr.write('\n');
    if (stopped)
      throw new CliError(
        `Stopped. Job #${job.id} keeps what it finished: \`flaneur jobs resume ${job.id}\` continues it.`,
        'INTERRUPTED',
        130,
      );
    const done = await this.call('jobs.get', { id: job.id });
    if (done.state !== 'done') {
      const why = done.error?.message ?? `the job ended ${done.state}`;
      throw new CliError(`${done.title}: ${why} (job #${done.id}; \`flaneur jobs show ${done.id} --items\`)`, 'JOB');
    }
    if (done.items.failed > 0)
      this.note(`${done.items.failed} item(s) failed: \`flaneur jobs show ${done.id} --items\` says why.`);
    return done;
  }

  /** Catalog items from ids, paths or unique file names (the engine refuses one that names nothing). */
  async items(refs: readonly string[]): Promise<MediaInfo[]> {
    if (refs.length === 0) return [];
    const found = await this.call('library.resolve', { refs: [...refs] });
    // A copy of a catalogued file is that item (same content): said, so that its path in results is no surprise.
    refs.forEach((ref, i) => {
      const m = found[i];
      if (m && !/^\d+$/.test(ref) && m.path !== path.resolve(ref) && sameSize(ref, m.bytes))
        this.note(`${ref} has the same content as #${m.id} ${m.path}: using that item`);
    });
    return found;
  }

  /** Every ingested item (for --all). */
  async allItems(): Promise<MediaInfo[]> {
    const out: MediaInfo[] = [];
    for (let offset = 0; ; offset += 1000) {
      const page = await this.call('library.list', { status: 'done', offset, limit: 1000 });
      out.push(...page.items);
      if (out.length >= page.total || page.items.length === 0) return out;
    }
  }

  /** The items of the command line: positionals, or every item with --all. */
  async itemsOrAll(): Promise<MediaInfo[] | null> {
    return this.flag('all') ? null : this.items(this.inv.positionals);
  }

  /** `ITEM:N` (or ITEM alone when `defaultFrame` is given) → the item and its frame index, range-checked. */
  async frame(ref: string, defaultFrame?: number): Promise<{ media: MediaInfo; frameIdx: number; frame: number }> {
    const { item, frame } = splitFrameRef(ref);
    const n = frame ?? defaultFrame;
    if (n === undefined)
      throw new UsageError(
        `${this.inv.command.name}: ${ref} needs a frame: ITEM:N (the first frame is ${FIRST_FRAME})`,
      );
    const [media] = await this.items([item]);
    if (!media) throw new CliError(`${item} is not in the catalog.`, 'NOT_FOUND');
    const idx = n - FIRST_FRAME;
    if (idx < 0 || idx >= media.frameCount) {
      throw new CliError(
        media.frameCount
          ? `${media.name} has frames ${FIRST_FRAME} to ${media.frameCount - 1 + FIRST_FRAME}, not ${n}.`
          : `${media.name} has no frames (${media.status}).`,
        'NOT_FOUND',
      );
    }
    return { media, frameIdx: idx, frame: n };
  }

  /** Every item result of a job (paged). */
  async jobItems(id: number, status?: JobItem['status']): Promise<CommandResult<'jobs.items'>['items']> {
    const out: CommandResult<'jobs.items'>['items'] = [];
    for (let offset = 0; ; offset += 1000) {
      const page = await this.call('jobs.items', { id, offset, limit: 1000, ...(status ? { status } : {}) });
      out.push(...page.items);
      if (out.length >= page.total || page.items.length === 0) return out;
    }
  }

  /**
   * What a feature extraction says per item (frames decoded again from the source at a larger input size, or
   * upsampled and why), on stderr where a script's log shows it — not only in `jobs show --items`.
   */
  async extractionNotes(job: JobInfo): Promise<string[]> {
    const items = await this.jobItems(job.id, 'ok');
    const names = await this.byId(items.map((i) => Number(i.key)).filter((id) => Number.isInteger(id)));
    const notes = items.flatMap((i) => {
      const note = (i.result as { note?: string } | null)?.note;
      return note ? [`#${i.key} ${names.get(Number(i.key))?.name ?? ''}: ${note}`.replace(' :', ':')] : [];
    });
    for (const n of notes.slice(0, 10)) this.note(n);
    if (notes.length > 10) this.note(`… and ${notes.length - 10} more (\`flaneur jobs show ${job.id} --items\`)`);
    return notes;
  }

  /** Catalog items by id (for naming results). */
  async byId(ids: readonly number[]): Promise<Map<number, MediaInfo>> {
    const out = new Map<number, MediaInfo>();
    const unique = [...new Set(ids)];
    for (let i = 0; i < unique.length; i += 1000) {
      const page = await this.call('library.list', { ids: unique.slice(i, i + 1000), limit: 1000 });
      for (const m of page.items) out.set(m.id, m);
    }
    return out;
  }

  /** An image file or a video as an item: from the catalog, or added to it first (a job) when it is a new file. */
  async itemOrAdd(ref: string): Promise<MediaInfo> {
    try {
      return (await this.items([ref]))[0] as MediaInfo;
    } catch (err) {
      if (!(err instanceof CliError) || err.code !== 'NOT_FOUND' || /^\d+$/.test(ref) || !fs.existsSync(ref)) throw err;
    }
    this.note(`adding ${ref} to the catalog`);
    await this.waitJob(await this.call('library.add', { paths: [ref] }));
    return (await this.items([ref]))[0] as MediaInfo;
  }

  /** --model, or the project's default model (`flaneur model default`; else the newest); says which on stderr. */
  async modelId(): Promise<number> {
    const given = this.num('model', { int: true, min: 1 });
    if (given !== undefined) {
      const named = (await this.call('models.list', {})).find((m) => m.id === given);
      if (named) this.note(`model #${named.id} ${named.name} (--model)`);
      return given;
    }
    const d = await this.call('models.default', {});
    if (!d)
      throw new CliError(
        `${this.inv.command.name}: the project has no model yet: add the starter model with \`flaneur model starter\`, or import one with \`flaneur model import FILE\` (or train one).`,
        'NO_MODEL',
      );
    this.note(
      `model #${d.id} ${d.name} (the project's default${d.chosen === 'newest' ? ': the newest' : ''}; --model ID or \`flaneur model default ID\` for another)`,
    );
    return d.id;
  }

  /**
   * --run, or the latest feature run (at --size S when `bySize` and it is given) — of the default model when it has
   * one; says which on stderr.
   */
  async runId(bySize = true): Promise<number> {
    const given = this.num('run', { int: true, min: 1 });
    if (given !== undefined) return given;
    const size = bySize ? this.num('size', { int: true, min: 16, max: 2048 }) : undefined;
    const runs = (await this.call('features.runs', {})).filter((r) => size === undefined || r.inputSize === size);
    const d = runs.length ? await this.call('models.default', {}) : null;
    const last = runs.filter((r) => r.modelId === d?.id).at(-1) ?? runs.at(-1);
    if (!last)
      throw new CliError(
        size === undefined
          ? 'No feature run yet: extract features first (`flaneur features --all`).'
          : `No feature run at ${size} px: extract them first (\`flaneur features --all --size ${size}\`).`,
        'NOT_FOUND',
      );
    this.note(`feature run #${last.id}: ${runLabel(last)} (--run R for another)`);
    return last.id;
  }

  /**
   * The pixels boxes and points are typed in: the source file's (default: what an image viewer shows, rotation
   * applied) or, with --stored-pixels, the stored frame's. `sx`, `sy`: stored-frame pixels per typed pixel.
   */
  pixels(media: MediaInfo): { width: number; height: number; sx: number; sy: number; words: string } {
    const fw = media.frameWidth ?? 0;
    const fh = media.frameHeight ?? 0;
    if (this.flag('stored-pixels'))
      return { width: fw, height: fh, sx: 1, sy: 1, words: `the ${fw}x${fh} stored frame (--stored-pixels)` };
    const src = sourceFrameSize({ ...media, frameWidth: fw, frameHeight: fh });
    return {
      ...src,
      sx: fw / src.width,
      sy: fh / src.height,
      words: `${media.name} (${src.width}x${src.height} source pixels; --stored-pixels for the ${fw}x${fh} stored frame)`,
    };
  }

  /**
   * `--box x,y,w,h` boxes (or another option's, `--negative`) in typed pixels → stored-frame pixels, each checked
   * to lie inside the picture.
   */
  boxes(media: MediaInfo, option = 'box'): [number, number, number, number][] {
    const px = this.pixels(media);
    return this.list(option).map((raw) => {
      const [x, y, w, h] = this.numbers(option, raw, 4) as [number, number, number, number];
      if (w <= 0 || h <= 0)
        throw new UsageError(`${this.inv.command.name}: --${option} ${raw} needs a positive width and height`);
      if (x < 0 || y < 0 || x + w > px.width || y + h > px.height)
        throw new CliError(`The box ${raw} is not inside ${px.words}.`, 'INVALID_ARGUMENT');
      return [x * px.sx, y * px.sy, w * px.sx, h * px.sy];
    });
  }

  /** --vectors cls|fungi as the engine's feature kind. */
  vectors(): 'embedding' | 'fungi' | undefined {
    const v = this.opt('vectors');
    if (v === undefined) return undefined;
    if (v === 'cls') return 'embedding';
    if (v === 'fungi') return 'fungi';
    throw new UsageError(`${this.inv.command.name}: --vectors is cls or fungi, not ${v}`);
  }

  close(): Promise<void> {
    return this.engine.close();
  }
}

/** Runs a command's body with a session (and the project open unless `project: false`), closing it after. */
export function command(body: (s: Session) => Promise<void>, o: { project?: boolean } = {}) {
  return async (inv: Invocation): Promise<void> => {
    const s = new Session(inv);
    try {
      if (o.project !== false) await s.openProject();
      await body(s);
    } finally {
      await s.close();
    }
  };
}
