/**
 * What every command's code shares: an in-process engine (observing a project another process owns), typed calls
 * through the same dispatcher as the UI, jobs waited for with progress on stderr, results on stdout (JSON with
 * --json), catalog items and frames named as people name them. Loaded only when a command runs.
 */
import fs from 'node:fs';
import type {
  CallResponse,
  CommandArgs,
  CommandName,
  CommandResult,
  EngineEvent,
  JobInfo,
  MediaInfo,
} from '../api/contract.js';
import { FIRST_FRAME, frameNumber } from '../api/frames.js';
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

export function formatJob(j: JobInfo): string {
  const p = j.progress;
  const pct = p.total ? ` ${Math.floor((100 * p.done) / p.total)}%` : '';
  const err = j.error ? ` — ${j.error.message}` : '';
  return `#${j.id}\t${j.state}${pct}\t${j.title}\t(${j.items.ok} ok, ${j.items.failed} failed, ${j.items.skipped} skipped)${err}`;
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
      const line = `${p.phase} ${p.done}${p.total !== null ? `/${p.total}` : ''} ${p.unit}`;
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
    return this.call('library.resolve', { refs: [...refs] });
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
  async jobItems(id: number): Promise<CommandResult<'jobs.items'>['items']> {
    const out: CommandResult<'jobs.items'>['items'] = [];
    for (let offset = 0; ; offset += 1000) {
      const page = await this.call('jobs.items', { id, offset, limit: 1000 });
      out.push(...page.items);
      if (out.length >= page.total || page.items.length === 0) return out;
    }
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

  /** --model, or the only registered model. */
  async modelId(): Promise<number> {
    const given = this.num('model', { int: true, min: 1 });
    if (given !== undefined) return given;
    const models = await this.call('models.list', {});
    if (models.length === 1) return (models[0] as { id: number }).id;
    throw new UsageError(
      `${this.inv.command.name}: missing --model ID (${models.length ? `${models.length} models: ${models.map((m) => `#${m.id} ${m.name}`).join(', ')}` : 'import one with `flaneur model import`'})`,
    );
  }

  /** --run, or the latest feature run (at --size S when `bySize` and it is given). */
  async runId(bySize = true): Promise<number> {
    const given = this.num('run', { int: true, min: 1 });
    if (given !== undefined) return given;
    const size = bySize ? this.num('size', { int: true, min: 16, max: 2048 }) : undefined;
    const runs = (await this.call('features.runs', {})).filter((r) => size === undefined || r.inputSize === size);
    const last = runs[runs.length - 1];
    if (!last)
      throw new CliError(
        size === undefined
          ? 'No feature run yet: extract features first (`flaneur features --all`).'
          : `No feature run at ${size} px: extract them first (\`flaneur features --all --size ${size}\`).`,
        'NOT_FOUND',
      );
    return last.id;
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
