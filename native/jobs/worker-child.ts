/**
 * The job worker's side: runs one job at a time for the engine, in this process, with the job's own model sessions
 * and its own connection to the project database. Phase and progress go to the engine (which owns the job's state,
 * its progress rows and the events); the job's results and checkpoints are written here, in the handler's own
 * transactions, so a commit stays atomic with the results it records.
 */
import { serializeError } from '../api/errors.js';
import type { RuntimeSettings } from '../runtime/session.js';
import type { JobRepository } from '../store/jobs-repo.js';
import type { Project } from '../store/project.js';
import type { AnyJobHandler, ItemResult, JobContext } from './types.js';
import type { FromWorker, ToWorker, WorkerJob } from './worker-protocol.js';

export interface WorkerChannel {
  send(message: FromWorker): void;
  onMessage(listener: (message: ToWorker) => void): void;
}

/** The IPC channel of a process started by child_process.fork. */
export function parentChannel(): WorkerChannel {
  const send = process.send?.bind(process);
  if (!send) throw new Error('a job worker must be started by the engine (child_process.fork)');
  return {
    send: (m) => void send(m),
    onMessage: (l) => process.on('message', (m) => l(m as ToWorker)),
  };
}

const MEMORY_REPORT_MS = 500;

/** A command run in the worker: the project (the worker's own connection), the Device settings, the arguments. */
export type WorkerTaskFn = (
  project: () => Project,
  args: never,
  runtime: RuntimeSettings,
) => Promise<unknown> | unknown;

function rawCode(err: unknown): string | null {
  const raw = (err as { code?: unknown } | null)?.code;
  return typeof raw === 'string' ? raw : null;
}

/** A list given now or loaded when first needed (a worker loads the modules of its role only). */
type Lazy<T> = T | (() => Promise<T>);

function memo<T>(value: Lazy<T> | undefined, empty: T): () => Promise<T> {
  if (typeof value !== 'function') return () => Promise.resolve(value ?? empty);
  let loading: Promise<T> | null = null;
  return () => {
    loading ??= (value as () => Promise<T>)();
    return loading;
  };
}

export function serveJobs(options: {
  /** The job handlers, or how to load them (when the first job comes). */
  handlers: Lazy<readonly AnyJobHandler[]>;
  /** Commands this worker runs for the engine (worker-protocol.ts's WorkerTask), by name, or how to load them. */
  tasks?: Lazy<Readonly<Record<string, WorkerTaskFn>>>;
  channel: WorkerChannel;
  /** Opens the project the engine already opened (no migration): the worker's own connection. */
  attach: (dir: string) => Project;
}): void {
  const { channel } = options;
  const handlers = memo(options.handlers, []);
  const tasks = memo(options.tasks, {});
  let project: Project | null = null;
  let controller: AbortController | null = null;
  const projectAt = (dir: string): Project => {
    if (!project || project.dir !== dir) {
      project?.close();
      project = options.attach(dir);
    }
    return project;
  };

  const memory = setInterval(() => channel.send({ type: 'memory', rss: process.memoryUsage.rss() }), MEMORY_REPORT_MS);
  memory.unref();
  // The engine went away (its channel closed): nothing would record this worker's work, so it ends too.
  process.on('disconnect', () => process.exit(0));

  const run = async (job: WorkerJob) => {
    // The environment the engine had when the job started, as a worker started for this job would have it.
    for (const key of Object.keys(process.env)) if (!(key in job.env)) delete process.env[key];
    Object.assign(process.env, job.env);
    // Set before the handlers load: a cancel that comes meanwhile is seen by the job when it starts.
    const own = new AbortController();
    controller = own;
    const handler = (await handlers()).find((h) => h.kind === job.kind);
    if (!handler) throw new Error(`This worker cannot run jobs of kind "${job.kind}".`);
    const project = projectAt(job.projectDir);
    const repo: JobRepository = project.jobs;
    // A mirror of the phase and count, written with each commit as the in-process runner does.
    let progress = { phase: 'running', done: 0, total: null as number | null, unit: 'items' };
    const ctx: JobContext<unknown, unknown> = {
      jobId: job.id,
      args: handler.args.parse(job.args),
      checkpoint: job.checkpoint,
      attempt: job.attempt,
      project,
      runtime: {
        ...job.runtime,
        onGpuFailure: (failure) => channel.send({ type: 'gpu-failure', failure }),
      },
      signal: own.signal,
      phase(name, o = {}) {
        progress = { phase: name, done: o.done ?? 0, total: o.total ?? null, unit: o.unit ?? progress.unit };
        channel.send({ type: 'phase', name, options: o });
      },
      progress(done, total, detail) {
        progress = { ...progress, done, total: total === undefined ? progress.total : total };
        channel.send({
          type: 'progress',
          done,
          ...(total === undefined ? {} : { total }),
          ...(detail ? { detail } : {}),
        });
      },
      commit(items: readonly ItemResult[], next) {
        repo.commit(job.id, { items, checkpoint: next, progress: { ...progress, rate: null, etaS: null } });
      },
      finishedKeys: () => repo.finishedKeys(job.id),
      throwIfAborted() {
        if (own.signal.aborted) throw new Error(own.signal.reason === 'shutdown' ? 'Engine stopped' : 'Cancelled');
      },
    };
    // Where the job starts from: a worker already over its bound is stopped before the job's results count.
    channel.send({ type: 'memory', rss: process.memoryUsage.rss() });
    await handler.run(ctx);
  };

  channel.onMessage((message) => {
    if (message.type === 'abort') {
      controller?.abort(message.reason);
      return;
    }
    if (message.type === 'task') {
      const { id, name, args, projectDir, runtime } = message.task;
      tasks()
        .then((all) => {
          const fn = all[name];
          if (!fn) throw new Error(`This worker cannot run "${name}".`);
          return fn(() => projectAt(projectDir), args as never, runtime);
        })
        .then(
          (result) => channel.send({ type: 'task-done', id, result }),
          (err: unknown) => channel.send({ type: 'task-error', id, error: serializeError(err), raw: rawCode(err) }),
        );
      return;
    }
    run(message.job).then(
      () => {
        controller = null;
        channel.send({ type: 'done' });
      },
      (err: unknown) => {
        controller = null;
        channel.send({ type: 'error', error: serializeError(err), raw: rawCode(err) });
      },
    );
  });
  channel.send({ type: 'ready', pid: process.pid });
}
