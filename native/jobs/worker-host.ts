/**
 * The engine's side of job workers: child processes that run jobs (jobs/worker-child.ts) so that a job's work —
 * its model sessions, augmentation, clustering, encoding — never runs on the engine's event loop, and a worker that
 * dies (a native crash, out of memory, killed) takes only its job with it. Workers are kept warm between jobs; one
 * that dies or runs over its memory bound is replaced by a new one for the next job.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { createRequire } from 'node:module';
import os from 'node:os';
import { pathToFileURL } from 'node:url';
import { FlaneurError, type SerializedError } from '../api/errors.js';
import { loopActivity } from '../base/loop-stalls.js';
import type { GpuFailure, SessionInfo } from '../runtime/session.js';
import type { FromWorker, ToWorker, WorkerJob, WorkerTask } from './worker-protocol.js';

export interface WorkerOptions {
  /** The worker's entry module (a .js file, or a .ts file run through tsx from a source checkout). */
  entry: string;
  /** Resident memory a worker may use before it is stopped and its job failed (MiB; default 3/4 of the RAM). */
  memoryLimitMiB?: number;
  /** How long a worker may take to stop after its job was asked to (shutdown), before it is killed (ms). */
  stopGraceMs?: number;
  /**
   * How much lower the worker's scheduling priority is than the engine's, as `nice` adds (default 0: the same). A
   * higher value lets the engine's loop run first on a busy machine, but starves the job when other programs
   * load the machine (a job at nice 10 gets about a tenth of a CPU's share beside each busy program).
   */
  nice?: number;
}

/** What a running job's worker tells the runner. */
export interface WorkerEvents {
  phase(name: string, options: { total?: number | null; unit?: string; done?: number }): void;
  progress(done: number, total?: number | null, detail?: Record<string, number>): void;
  gpuFailure(failure: GpuFailure): void;
  session(info: SessionInfo): void;
  /** The worker's resident memory now and its peak during this job (MiB), about twice a second. */
  memory(rssMiB: number, peakMiB: number, limitMiB: number): void;
}

/** How a worker ended while it ran a job. `outOfMemory`: over its bound or V8's heap limit; otherwise a crash or kill. */
export class WorkerDiedError extends FlaneurError {
  constructor(
    message: string,
    readonly outOfMemory: boolean,
  ) {
    super('INTERNAL', message);
  }
}

const MiB = 1024 * 1024;

/**
 * glibc's tunable for transparent huge pages under malloc. Not in workerEnv (measured, quiet machine, 2 threads,
 * bench/*-worker.ts with a 1 MiB threshold, 3 warm-up steps): the DINO step gained (2.9 -> 2.4-2.6 s; faults
 * ~400,000 -> ~11,000 a step), but the Dora step became bimodal (steps of 1.8 s and 2.7-3.1 s, median 2.7-2.9 s,
 * against a steady 2.21-2.25 s without) and NeCo erratic in one run of two (1.27 s steady in one, 1.3-2.3 s in the
 * other, against 1.29-1.49 s without). A setting that makes some jobs erratic is not the default; the benches still
 * give it to their PyTorch references (bench/reference.ts), whose DINO step gains from it.
 */
export const HUGE_PAGES_TUNABLE = 'glibc.malloc.hugetlb=1';

/**
 * The mmap threshold of a worker's malloc, in MiB (workerEnv). glibc's own rises to 32 MiB after the first large block
 * is freed, so a training step's activations (ONNX Runtime without its arena allocates them with malloc each run) are
 * then carved from the heap, which fragments and keeps them: measured peak RSS of a step (bench/*-worker.ts, loaded
 * machine, speed the same within its noise): DINO ViT-Ti/16 b32 2384 -> 1979 MiB, Dora 2672 -> 1587, NeCo ViT-S/16
 * 1685 -> 1595 at 1 MiB. Blocks at or above the threshold go back to the system when freed and are faulted in afresh
 * each step. 4 MiB rather than 1: the NeCo step's many 1-4 MiB tensors (its 49-patch RoI features, the diff sort's
 * 10 x 8192 rows, the head's activations) are then reused from the heap: quiet machine, 2 threads,
 * bench/neco-worker.ts 1.31/1.32 -> 1.19/1.21 s a step (bench/profile-step.ts: 288,000 -> 107,000 faults, 1.62 ->
 * 1.36 s), peak RSS 1446 -> 1540 MB; the DINO step (2.77-2.96 vs 2.83-2.85 s, RSS 1555-1579 vs 1547-1549 MB) and the
 * Dora step (1.88-1.93 vs 1.90-1.95 s, RSS 1299-1307 vs 1301-1312 MB) unchanged (bench/results/perf-issue30/
 * malloc-threshold-4mib.json); 8 MiB: NeCo's RSS 1857 MB for no more speed.
 */
export const WORKER_MMAP_THRESHOLD_MIB = 4;

/**
 * The environment of a worker process: the engine's, and on Linux (glibc) a fixed malloc mmap threshold
 * (WORKER_MMAP_THRESHOLD_MIB) unless one is set; transparent huge pages would cut the faults further, see
 * HUGE_PAGES_TUNABLE. `npm run bench` gives its own workers the same (bench/reference.ts `oursWorker`), as the app
 * runs those jobs here.
 */
export function workerEnv(base: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...base };
  if (process.platform === 'linux' && env.MALLOC_MMAP_THRESHOLD_ === undefined)
    env.MALLOC_MMAP_THRESHOLD_ = String(WORKER_MMAP_THRESHOLD_MIB * MiB);
  return env;
}

function withDefaults(options: WorkerOptions): Required<WorkerOptions> {
  return {
    entry: options.entry,
    nice: options.nice ?? 0,
    memoryLimitMiB: options.memoryLimitMiB ?? Math.floor((os.totalmem() / MiB) * 0.75),
    stopGraceMs: options.stopGraceMs ?? 30_000,
  };
}

function describeExit(code: number | null, signal: NodeJS.Signals | null): string {
  if (signal) return `was killed by ${signal}`;
  return `exited with code ${code}`;
}

class JobWorker {
  readonly child: ChildProcess;
  private listener: ((m: FromWorker) => void) | null = null;
  private exitListener: ((code: number | null, signal: NodeJS.Signals | null) => void) | null = null;
  readonly ready: Promise<void>;
  exited = false;
  /** Set when the host stopped the worker for its memory: the exit is then reported as out of memory. */
  overLimit: string | null = null;
  stderrTail = '';

  /** `role` is the worker's one argument (what `ps` shows): 'job' or 'task'. */
  constructor(options: Required<WorkerOptions>, role: 'job' | 'task') {
    const execArgv = [`--max-old-space-size=${Math.max(512, Math.floor(options.memoryLimitMiB * 0.75))}`];
    // A source checkout (tests, `npm run bench`, the CLI from source): the worker runs its .ts through tsx too.
    if (options.entry.endsWith('.ts'))
      execArgv.unshift('--import', pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href);
    const env = workerEnv(process.env);
    // Under Electron the engine's executable is Electron's: run it as plain Node (same native module ABI).
    if (process.versions.electron) env.ELECTRON_RUN_AS_NODE = '1';
    this.child = fork(options.entry, [role], {
      execArgv,
      env,
      serialization: 'advanced',
      stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
    });
    this.child.stderr?.on('data', (d: Buffer) => {
      process.stderr.write(d);
      this.stderrTail = (this.stderrTail + d.toString()).slice(-4000);
    });
    this.ready = new Promise((resolve, reject) => {
      const onReady = (m: FromWorker) => {
        if (m.type === 'ready') resolve();
      };
      this.child.on('message', onReady);
      this.child.once('exit', (code, signal) =>
        reject(
          new WorkerDiedError(
            `The job worker could not start: it ${describeExit(code, signal)}. ${this.stderrTail.slice(-500)}`,
            false,
          ),
        ),
      );
    });
    this.ready.catch(() => {});
    this.child.on('message', (m: FromWorker) => this.listener?.(m));
    this.child.on('exit', (code, signal) => {
      this.exited = true;
      this.exitListener?.(code, signal);
    });
    // A closed channel (the worker died) must not throw in the engine.
    this.child.on('error', () => {});
    if (options.nice !== 0 && this.child.pid !== undefined) {
      try {
        os.setPriority(this.child.pid, Math.min(19, os.getPriority() + options.nice));
      } catch {
        // Not allowed here (some sandboxes): the worker runs at the engine's priority.
      }
    }
  }

  /** Whether the worker keeps the engine's process alive: only while it works (an idle one must not keep a CLI). */
  hold(held: boolean): void {
    const channel = this.child.channel as { ref?: () => void; unref?: () => void } | null | undefined;
    if (held) {
      this.child.ref();
      channel?.ref?.();
    } else {
      this.child.unref();
      channel?.unref?.();
    }
  }

  send(message: ToWorker): void {
    if (!this.exited && this.child.connected) this.child.send(message, () => {});
  }

  on(listener: ((m: FromWorker) => void) | null, onExit: typeof this.exitListener): void {
    this.listener = listener;
    this.exitListener = onExit;
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (!this.exited) this.child.kill(signal);
  }
}

export class JobWorkers {
  private readonly options: Required<WorkerOptions>;
  private readonly idle: JobWorker[] = [];
  private readonly busy = new Set<JobWorker>();
  private closed = false;

  constructor(options: WorkerOptions) {
    this.options = withDefaults(options);
  }

  /** Starts `count` workers ahead of the first job, so that it does not wait for a process to start. */
  prewarm(count: number): void {
    while (!this.closed && this.idle.length + this.busy.size < count) {
      const worker = new JobWorker(this.options, 'job');
      worker.hold(false);
      this.idle.push(worker);
    }
  }

  /** Process ids of the workers running jobs now (for the Device view and tests). */
  pids(): number[] {
    return [...this.busy].map((w) => w.child.pid).filter((p): p is number => p !== undefined);
  }

  /**
   * Runs `job` in a worker. Resolves when the handler returned; rejects with the handler's error (code and message
   * as the worker serialized them; SQLite's busy code kept for the runner's retries), or with a WorkerDiedError.
   */
  async run(job: WorkerJob, events: WorkerEvents, signal: AbortSignal): Promise<void> {
    if (this.closed) throw new FlaneurError('JOB_STATE', 'The engine is shutting down; no new jobs.');
    let worker = this.idle.pop();
    while (worker?.exited) worker = this.idle.pop();
    worker ??= new JobWorker(this.options, 'job');
    this.busy.add(worker);
    worker.hold(true);
    let graceTimer: NodeJS.Timeout | null = null;
    const limit = this.options.memoryLimitMiB;
    let peak = 0;
    const onAbort = () => {
      worker.send({ type: 'abort', reason: signal.reason === 'shutdown' ? 'shutdown' : 'cancel' });
      graceTimer = setTimeout(() => worker.kill(), this.options.stopGraceMs);
      graceTimer.unref();
    };
    try {
      await worker.ready;
      await new Promise<void>((resolve, reject) => {
        worker.on(
          (m) => {
            loopActivity(`job ${job.kind}: ${m.type}`);
            switch (m.type) {
              case 'phase':
                return events.phase(m.name, m.options);
              case 'progress':
                return events.progress(m.done, m.total, m.detail);
              case 'gpu-failure':
                return events.gpuFailure(m.failure);
              case 'session':
                return events.session(m.info);
              case 'memory': {
                const rss = m.rss / MiB;
                peak = Math.max(peak, rss);
                if (rss > limit && !worker.overLimit) {
                  worker.overLimit = `it used ${Math.round(rss)} MiB of memory, over the ${limit} MiB a job may use`;
                  worker.kill();
                }
                return events.memory(Math.round(rss), Math.round(peak), limit);
              }
              // A worker stopped for its memory: its exit says so, whatever it sent after.
              case 'done':
                return worker.overLimit ? undefined : resolve();
              case 'error':
                return worker.overLimit ? undefined : reject(rebuildError(m.error, m.raw));
              default:
                return;
            }
          },
          (code, signal) => reject(diedError(worker, code, signal)),
        );
        if (worker.exited) reject(diedError(worker, worker.child.exitCode, worker.child.signalCode));
        // The job first: an abort sent before it would find nothing to stop.
        worker.send({ type: 'run', job });
        signal.addEventListener('abort', onAbort, { once: true });
        if (signal.aborted) onAbort();
      });
    } finally {
      signal.removeEventListener('abort', onAbort);
      if (graceTimer) clearTimeout(graceTimer);
      worker.on(null, null);
      this.busy.delete(worker);
      if (!worker.exited && !this.closed && !worker.overLimit) {
        worker.hold(false);
        this.idle.push(worker);
      } else worker.kill();
    }
  }

  /** Ends the idle workers (running jobs are stopped by the runner first). */
  close(): void {
    this.closed = true;
    for (const w of this.idle.splice(0)) w.kill('SIGTERM');
    for (const w of this.busy) w.kill();
  }
}

/**
 * One warm worker process for the heavy part of commands that are not jobs (counting, k-means banks, model
 * imports): several may run at once; a call waits for its answer. A worker that dies fails the calls it had (with
 * the reason) and the next call starts a new one; state kept in it (count tokens for count.peaks) goes with it.
 */
export class TaskWorker {
  private readonly options: Required<WorkerOptions>;
  private worker: JobWorker | null = null;
  private readonly pending = new Map<number, { name: string; resolve(v: unknown): void; reject(e: Error): void }>();
  private nextId = 1;
  private closed = false;

  constructor(options: WorkerOptions) {
    this.options = withDefaults(options);
  }

  private start(): JobWorker {
    const worker = new JobWorker(this.options, 'task');
    const limit = this.options.memoryLimitMiB;
    worker.on(
      (m) => {
        if (m.type === 'memory' && m.rss / MiB > limit && !worker.overLimit) {
          worker.overLimit = `it used ${Math.round(m.rss / MiB)} MiB of memory, over the ${limit} MiB a worker may use`;
          worker.kill();
        }
        if (m.type !== 'task-done' && m.type !== 'task-error') return;
        const call = this.pending.get(m.id);
        this.pending.delete(m.id);
        loopActivity(`task ${call?.name}: ${m.type}`);
        if (m.type === 'task-done') call?.resolve(m.result);
        else call?.reject(rebuildError(m.error, m.raw));
      },
      (code, signal) => {
        if (this.worker === worker) this.worker = null;
        const err = diedError(worker, code, signal);
        for (const call of this.pending.values()) call.reject(err);
        this.pending.clear();
      },
    );
    return worker;
  }

  /** Starts the worker ahead of the first call. */
  prewarm(): void {
    if (this.closed || (this.worker && !this.worker.exited)) return;
    this.worker = this.start();
    this.worker.hold(this.pending.size > 0);
  }

  async call(task: Omit<WorkerTask, 'id'>): Promise<unknown> {
    if (this.closed) throw new FlaneurError('JOB_STATE', 'The engine is shutting down.');
    this.prewarm();
    const worker = this.worker as JobWorker;
    await worker.ready;
    const id = this.nextId++;
    worker.hold(true);
    try {
      return await new Promise((resolve, reject) => {
        this.pending.set(id, { name: task.name, resolve, reject });
        loopActivity(`task ${task.name}: sent`);
        worker.send({ type: 'task', task: { ...task, id } });
      });
    } finally {
      if (this.pending.size === 0) worker.hold(false);
    }
  }

  close(): void {
    this.closed = true;
    this.worker?.kill('SIGTERM');
    this.worker = null;
  }
}

function diedError(worker: JobWorker, code: number | null, signal: NodeJS.Signals | null): WorkerDiedError {
  if (worker.overLimit) return new WorkerDiedError(`The job was stopped: ${worker.overLimit}.`, true);
  // V8 reports its own heap limit on stderr before it aborts.
  if (/heap out of memory|Reached heap limit/i.test(worker.stderrTail)) {
    return new WorkerDiedError("The job ran out of memory: its worker's JavaScript heap reached its limit.", true);
  }
  return new WorkerDiedError(`The job's worker process ${describeExit(code, signal)}.`, false);
}

function rebuildError(error: SerializedError, raw: string | null): Error {
  // SQLite's own code is what the runner's busy retries look for.
  if (raw && (raw.startsWith('SQLITE_BUSY') || raw.startsWith('SQLITE_LOCKED'))) {
    return Object.assign(new Error(error.details ?? error.message), { code: raw });
  }
  return new FlaneurError(error.code, error.message, {
    ...(error.field === undefined ? {} : { field: error.field }),
    ...(error.details === undefined ? {} : { details: error.details }),
  });
}
