/**
 * The job runner: queues jobs, runs them through their handlers, persists state, progress and checkpoints in the
 * project, emits events, cancels on request, and on start-up resumes the jobs a dead engine left behind.
 */
import type { JobProgress, JobState } from '../api/contract.js';
import { FlaneurError, isDatabaseBusy, serializeError } from '../api/errors.js';
import type { RuntimeSettings, SessionInfo } from '../runtime/session.js';
import type { JobRow } from '../store/jobs-repo.js';
import type { Project } from '../store/project.js';
import { RateMeter } from './progress.js';
import type { AnyJobHandler, ItemResult, JobContext } from './types.js';
import { type JobWorkers, WorkerDiedError } from './worker-host.js';

export interface RunnerOptions {
  /** Jobs run at the same time (work is CPU- and disk-bound; one at a time is the default). */
  concurrency?: number;
  /** Minimum milliseconds between progress events of one job. */
  eventIntervalMs?: number;
  /** Minimum milliseconds between progress writes to the database (commits always write). */
  persistIntervalMs?: number;
  /** Resume jobs found 'interrupted' at start-up. */
  autoResume?: boolean;
  /**
   * Another process owns this project's jobs: list them and ask for cancellation, but run nothing and leave
   * 'running' jobs alone (they are not interrupted, they run elsewhere).
   */
  observer?: { ownerPid: number } | null;
  /** The provider and thread settings jobs create their sessions with, read when each job starts. */
  runtime?: () => RuntimeSettings;
  /**
   * Waits (ms) before each new try of a job that met a database locked by another program (after SQLite's own 5 s
   * busy timeout); when they are used up the job fails with DATABASE_BUSY. Default 1, 2, 4, 8, 16, 30 s.
   */
  busyRetries?: readonly number[];
  /**
   * Where handlers run: in these worker processes (the engine's, which it closes), or, when null, in this process
   * (tests of the runner with handlers of their own).
   */
  workers?: JobWorkers | null;
  /** Told of every model session a job's worker makes (the Device view's "in use" line). */
  onWorkerSession?: (info: SessionInfo) => void;
  /** Times a job's worker may die (crash, kill) before the job fails instead of being queued again. */
  workerRestarts?: number;
}

function tryOr<T>(f: () => T, fallback: T): T {
  try {
    return f();
  } catch {
    return fallback;
  }
}

/** Resolves after `ms`, or at once when `signal` aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

type StopReason = 'cancel' | 'shutdown';

interface Active {
  controller: AbortController;
  promise: Promise<void>;
}

const RESUMABLE: readonly JobState[] = ['interrupted', 'failed', 'cancelled'];

export class JobRunner {
  private readonly handlers = new Map<string, AnyJobHandler>();
  private readonly active = new Map<number, Active>();
  private readonly options: Required<RunnerOptions>;

  private closed = false;
  /** Workers that died under each job in this engine's life (a job is queued again until workerRestarts). */
  private readonly workerDeaths = new Map<number, number>();

  constructor(
    private readonly project: Project,
    private readonly emit: (job: JobRow) => void,
    options: RunnerOptions = {},
  ) {
    this.options = {
      concurrency: options.concurrency ?? 1,
      eventIntervalMs: options.eventIntervalMs ?? 100,
      persistIntervalMs: options.persistIntervalMs ?? 1000,
      autoResume: options.autoResume ?? true,
      observer: options.observer ?? null,
      // The runtime's own default (auto provider, every core), without loading onnxruntime here.
      runtime: options.runtime ?? (() => ({ provider: 'auto', threads: null })),
      busyRetries: options.busyRetries ?? [1000, 2000, 4000, 8000, 16000, 30000],
      workers: options.workers ?? null,
      onWorkerSession: options.onWorkerSession ?? (() => {}),
      workerRestarts: options.workerRestarts ?? 3,
    };
  }

  register(handler: AnyJobHandler): void {
    this.handlers.set(handler.kind, handler);
  }

  /** Marks what a dead engine left running as interrupted, resumes interrupted jobs if configured, starts the queue. */
  start(): void {
    if (this.options.observer) return;
    this.options.workers?.prewarm(this.options.concurrency);
    for (const job of this.project.jobs.markInterrupted()) this.emit(job);
    if (this.options.autoResume) {
      for (const job of this.project.jobs.list({ states: ['interrupted'], limit: 1000 })) {
        if (this.handlers.has(job.kind)) this.emit(this.project.jobs.setState(job.id, 'queued'));
      }
    }
    this.pump();
  }

  enqueue(kind: string, args: unknown): JobRow {
    this.refuseIfObserver();
    if (this.closed) throw new FlaneurError('JOB_STATE', 'The engine is shutting down; no new jobs.');
    const handler = this.handlers.get(kind);
    if (!handler) throw new FlaneurError('INVALID_ARGUMENT', `No job handler for kind "${kind}"`, { field: 'kind' });
    const parsed = handler.args.parse(args) as Record<string, unknown>;
    const job = this.project.jobs.insert({
      kind,
      title: handler.title(parsed),
      args: parsed,
      progress: { phase: 'queued', done: 0, total: null, unit: 'items', rate: null, etaS: null },
    });
    this.emit(job);
    this.pump();
    return job;
  }

  cancel(id: number): JobRow {
    const job = this.requireJob(id);
    const active = this.active.get(id);
    if (active) {
      active.controller.abort('cancel' satisfies StopReason);
      return job;
    }
    if (job.state === 'running' && this.options.observer) {
      this.project.jobs.requestCancel(id);
      return job;
    }
    if (job.state === 'queued' || job.state === 'interrupted') {
      const row = this.project.jobs.setState(id, 'cancelled', {
        error: { code: 'CANCELLED', message: 'Cancelled before it ran.' },
      });
      this.emit(row);
      return row;
    }
    throw new FlaneurError('JOB_STATE', `Job ${id} is ${job.state}; only queued or running jobs can be cancelled.`);
  }

  resume(id: number): JobRow {
    this.refuseIfObserver();
    const job = this.requireJob(id);
    if (!RESUMABLE.includes(job.state)) {
      throw new FlaneurError(
        'JOB_STATE',
        `Job ${id} is ${job.state}; only interrupted, failed or cancelled jobs resume.`,
      );
    }
    const row = this.project.jobs.setState(id, 'queued');
    this.emit(row);
    this.pump();
    return row;
  }

  /** Stops running jobs so they resume next time (state 'interrupted'), and waits for them to settle. */
  async close(): Promise<void> {
    this.closed = true;
    for (const a of this.active.values()) a.controller.abort('shutdown' satisfies StopReason);
    await Promise.allSettled([...this.active.values()].map((a) => a.promise));
  }

  /** Resolves when no job is running or queued (for tests and the CLI). */
  async idle(): Promise<void> {
    while (this.active.size > 0) await Promise.allSettled([...this.active.values()].map((a) => a.promise));
  }

  isRunning(id: number): boolean {
    return this.active.has(id);
  }

  private refuseIfObserver(): void {
    const observer = this.options.observer;
    if (observer) {
      throw new FlaneurError(
        'PROJECT_LOCKED',
        `Another Flaneur process (pid ${observer.ownerPid}) runs this project's jobs; start or resume jobs there.`,
      );
    }
  }

  private requireJob(id: number): JobRow {
    const job = this.project.jobs.get(id);
    if (!job) throw new FlaneurError('NOT_FOUND', `No job ${id} in this project.`, { field: 'id' });
    return job;
  }

  private pump(): void {
    if (this.closed || this.options.observer) return;
    while (this.active.size < this.options.concurrency) {
      const next = this.project.jobs
        .list({ states: ['queued'], limit: 1000 })
        .filter((j) => !this.active.has(j.id))
        .sort((a, b) => a.id - b.id)[0];
      if (!next) return;
      this.launch(next);
    }
  }

  private launch(job: JobRow): void {
    const controller = new AbortController();
    const entry: Active = { controller, promise: Promise.resolve() };
    this.active.set(job.id, entry);
    let retryLater = false;
    entry.promise = this.execute(job, controller)
      .catch((err: unknown) => {
        // The job could not even be marked running (the database is locked by another program): it stays queued
        // and is tried again shortly, never an unhandled rejection that would end the engine.
        retryLater = true;
        console.error(`flaneur: job ${job.id} could not start: ${serializeError(err).message}`);
      })
      .finally(() => {
        this.active.delete(job.id);
        if (retryLater) setTimeout(() => this.pump(), 2000).unref();
        else this.pump();
      });
  }

  private async execute(queued: JobRow, controller: AbortController): Promise<void> {
    const repo = this.project.jobs;
    const handler = this.handlers.get(queued.kind);
    if (!handler) {
      this.emit(
        repo.setState(queued.id, 'failed', {
          error: { code: 'INTERNAL', message: `This version of Flaneur cannot run jobs of kind "${queued.kind}".` },
        }),
      );
      return;
    }
    const job = repo.setState(queued.id, 'running', { newAttempt: true });
    this.emit(job);

    const meter = new RateMeter();
    let progress: JobProgress = { ...job.progress, rate: null, etaS: null };
    // The worker's resident memory (MiB): now, its peak in this run and its bound, shown with the progress.
    const memory: { now: Record<string, number> | null } = { now: null };
    let lastEvent = 0;
    let lastPersist = 0;

    const publish = (force: boolean) => {
      const t = performance.now();
      progress = { ...progress, rate: meter.rate(), etaS: meter.eta(progress.done, progress.total) };
      if (memory.now) progress = { ...progress, detail: { ...progress.detail, ...memory.now } };
      if (force || t - lastPersist >= this.options.persistIntervalMs) {
        repo.saveProgress(job.id, progress);
        lastPersist = t;
        // A cancel asked for by another process (the CLI) arrives through the database.
        if (repo.cancelRequested(job.id)) controller.abort('cancel' satisfies StopReason);
      }
      if (force || t - lastEvent >= this.options.eventIntervalMs) {
        const row = repo.get(job.id);
        if (row) this.emit({ ...row, progress });
        lastEvent = t;
      }
    };

    const abortError = () =>
      new FlaneurError('JOB_STATE', controller.signal.reason === 'shutdown' ? 'Engine stopped' : 'Cancelled');

    // A GPU that fails under one of the job's sessions (device lost, out of memory): the session goes on on the CPU
    // (runtime/session.ts) and the job says so, in its phase from then on and in a 'device-fallback' item.
    let gpuNote: string | null = null;
    const withNote = (phase: string) => (gpuNote && !phase.includes(gpuNote) ? `${phase} (${gpuNote})` : phase);
    const runtime: RuntimeSettings = {
      ...this.options.runtime(),
      onGpuFailure: (f) => {
        gpuNote = `${f.provider} failed: ${f.reason.slice(0, 300)}; on the CPU since`;
        progress = { ...progress, phase: withNote(progress.phase) };
        repo.commit(job.id, {
          items: [
            {
              key: 'device-fallback',
              status: 'ok',
              result: { from: f.provider, to: 'cpu', reason: f.reason, done: progress.done },
            },
          ],
          progress,
        });
        publish(true);
      },
    };

    const ctx: JobContext<unknown, unknown> = {
      jobId: job.id,
      args: handler.args.parse(job.args),
      checkpoint: job.checkpoint,
      attempt: job.attempt,
      project: this.project,
      runtime,
      signal: controller.signal,
      phase(name, options = {}) {
        meter.reset();
        progress = {
          phase: withNote(name),
          done: options.done ?? 0,
          total: options.total === undefined ? null : options.total,
          unit: options.unit ?? progress.unit,
          rate: null,
          etaS: null,
        };
        meter.add(progress.done);
        publish(true);
      },
      progress(done, total, detail) {
        progress = {
          ...progress,
          done,
          total: total === undefined ? progress.total : total,
          ...(detail ? { detail } : {}),
        };
        meter.add(done);
        publish(false);
      },
      commit(items: readonly ItemResult[], next) {
        repo.commit(job.id, { items, checkpoint: next, progress });
      },
      finishedKeys: () => repo.finishedKeys(job.id),
      throwIfAborted() {
        if (controller.signal.aborted) throw abortError();
      },
    };

    // Another program holding project.sqlite locked past SQLite's busy timeout: wait and run the job again from its
    // last checkpoint, backing off, before failing with DATABASE_BUSY (what to close) instead of INTERNAL.
    for (let busyTry = 0; ; busyTry++) {
      try {
        await this.runHandler(handler, ctx, runtime, (m) => {
          memory.now = m;
        });
        if (controller.signal.aborted) throw abortError();
        progress = { ...progress, phase: 'done', etaS: 0 };
        if (memory.now) progress = { ...progress, detail: { ...progress.detail, ...memory.now } };
        repo.saveProgress(job.id, progress);
        this.emit(repo.setState(job.id, 'done'));
        return;
      } catch (err) {
        if (isDatabaseBusy(err) && !controller.signal.aborted && busyTry < this.options.busyRetries.length) {
          const waitMs = this.options.busyRetries[busyTry] as number;
          progress = {
            ...progress,
            phase: `waiting: another program is locking the project database (retry in ${Math.round(waitMs / 1000)} s)`,
            rate: null,
            etaS: null,
          };
          const row = tryOr(() => repo.get(job.id), undefined);
          if (row) this.emit({ ...row, progress });
          await sleep(waitMs, controller.signal);
          const checkpoint = tryOr(() => repo.get(job.id)?.checkpoint ?? null, ctx.checkpoint);
          (ctx as { checkpoint: unknown }).checkpoint = checkpoint;
          continue;
        }
        if (err instanceof WorkerDiedError && !controller.signal.aborted) {
          const deaths = (this.workerDeaths.get(job.id) ?? 0) + 1;
          this.workerDeaths.set(job.id, deaths);
          // A crash or a kill: queued again, to resume from its checkpoint in a new worker (the reason stays in the
          // job's error until it runs). Out of memory would only happen again: the job fails with the reason.
          if (!err.outOfMemory && deaths <= this.options.workerRestarts) {
            const message = `${err.message} It was queued again to resume from its last checkpoint (${deaths} of ${this.options.workerRestarts} restarts).`;
            console.error(`flaneur: job ${job.id}: ${message}`);
            repo.saveProgress(job.id, { ...progress, rate: null, etaS: null });
            this.emit(repo.setState(job.id, 'queued', { error: { code: 'INTERNAL', message } }));
            return;
          }
        }
        this.finishFailed(job.id, err, controller, progress);
        return;
      }
    }
  }

  /** Runs the handler in a worker process when the runner has workers, else here. */
  private runHandler(
    handler: AnyJobHandler,
    ctx: JobContext<unknown, unknown>,
    runtime: RuntimeSettings,
    onMemory: (m: Record<string, number>) => void,
  ): Promise<void> {
    const workers = this.options.workers;
    if (!workers) return handler.run(ctx);
    return workers.run(
      {
        id: ctx.jobId,
        kind: handler.kind,
        args: ctx.args,
        checkpoint: ctx.checkpoint,
        attempt: ctx.attempt,
        projectDir: this.project.dir,
        runtime: { provider: runtime.provider, threads: runtime.threads },
        env: Object.fromEntries(Object.entries(process.env).filter((e): e is [string, string] => e[1] !== undefined)),
      },
      {
        phase: (name, options) => ctx.phase(name, options),
        progress: (done, total, detail) => ctx.progress(done, total, detail),
        gpuFailure: (failure) => runtime.onGpuFailure?.(failure),
        session: (info) => this.options.onWorkerSession(info),
        memory: (rss, peak, limit) =>
          onMemory({ worker_rss_mib: rss, worker_peak_rss_mib: peak, worker_memory_limit_mib: limit }),
      },
      ctx.signal,
    );
  }

  /**
   * Records how a job ended. When the database is still locked by another program even that cannot be written: the
   * ending is announced at once (an event with the in-memory row) and written as soon as the lock is gone; if the
   * engine stops first, the job is left 'running' and marked interrupted at the next start, resumable.
   */
  private finishFailed(id: number, err: unknown, controller: AbortController, progress: JobProgress): void {
    const repo = this.project.jobs;
    const reason = controller.signal.aborted ? (controller.signal.reason as StopReason) : null;
    const record = () => {
      repo.saveProgress(id, { ...progress, rate: null, etaS: null });
      if (reason === 'shutdown') return repo.setState(id, 'interrupted');
      if (reason === 'cancel') {
        return repo.setState(id, 'cancelled', { error: { code: 'CANCELLED', message: 'Cancelled by the user.' } });
      }
      return repo.setState(id, 'failed', { error: serializeError(err) });
    };
    try {
      this.emit(record());
    } catch (writeErr) {
      if (!isDatabaseBusy(writeErr) || reason === 'shutdown') {
        console.error(`flaneur: job ${id} ended but could not be recorded: ${serializeError(writeErr).message}`);
        return;
      }
      const row = tryOr(() => repo.get(id), undefined);
      if (row) this.emit({ ...row, state: 'failed', error: serializeError(err), progress });
      let tries = 0;
      const again = () => {
        if (this.closed || tries++ > 60) return;
        try {
          this.emit(record());
        } catch {
          setTimeout(again, 2000).unref();
        }
      };
      setTimeout(again, 2000).unref();
    }
  }
}
