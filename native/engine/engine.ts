/**
 * The engine: one open project at a time, its job runner, the per-user app home, and the event stream every UI
 * listens to. Transports never touch this directly; they go through the dispatcher built in handlers.ts.
 */

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { EngineEvent, IntegrityReport, JobInfo, ModelInfo, ProjectInfo } from '../api/contract.js';
import { FlaneurError } from '../api/errors.js';
import { loopActivity } from '../base/loop-stalls.js';
import { APP_ROOT, APP_VERSION } from '../base/version.js';
import { CountService } from '../count/service.js';
import { ExtractorCache } from '../features/extractor-cache.js';
import { ExactKnn } from '../features/knn.js';
import { JobRunner, type RunnerOptions } from '../jobs/runner.js';
import { JobWorkers, TaskWorker, type WorkerOptions } from '../jobs/worker-host.js';
import { announceSession } from '../runtime/session.js';
import { segmentOverlay } from '../segment/service.js';
import { AppHome } from '../store/app-home.js';
import {
  BACKUP_INTERVAL_MS,
  backupDatabase,
  backupInfo,
  DERIVED_TABLES,
  damageMessage,
  rebuildDamagedProject,
  restoreBackup,
} from '../store/integrity.js';
import type { JobRow } from '../store/jobs-repo.js';
import { Project } from '../store/project.js';
import { type LockInfo, lockedMessage, lockHolder, ProjectLock } from '../store/project-lock.js';
import { pendingRegistration } from '../train/checkpoint.js';
import { type CommandTasks, commandTasks, type TaskName } from './command-tasks.js';
import { JOB_HANDLERS } from './job-handlers.js';
import { mediaResource } from './library.js';
import { BUNDLED_MODEL_DIR, bundledManifest, TRAINED_HERE } from './model-about.js';
import { ModelService } from './models.js';
import { registerTrainedHead, TextEncoderCache } from './text-models.js';
import { TextSearchService } from './text-search.js';

/** The bundled sample video (samples/README.md says where it comes from). */
export const SAMPLE_VIDEO = path.join(APP_ROOT, 'samples', 'vtest-street.mp4');
/** The embedded default encoder (made by tools/train-default-model.ts) and its manifest. */
export const DEFAULT_MODEL_DIR = BUNDLED_MODEL_DIR;

export { JOB_HANDLERS };

/** The job worker's entry beside this file: the .ts source under tsx, the built .js otherwise. */
const JOB_WORKER_ENTRY = fileURLToPath(
  new URL(`./job-worker-main.${import.meta.url.endsWith('.ts') ? 'ts' : 'js'}`, import.meta.url),
);

export interface EngineOptions {
  home: string;
  runner?: RunnerOptions;
  /**
   * When another live process owns a project: 'fail' (the app: one window per project) or 'observe' (the CLI:
   * read and request cancellation, run nothing).
   */
  whenLocked?: 'fail' | 'observe';
  /**
   * Where jobs run: in worker processes (default; `memoryLimitMiB` bounds each), or `false` for this process (a
   * host that has no separate process to give, or a tool that wants the jobs' objects in its own process).
   */
  jobWorkers?: false | Omit<WorkerOptions, 'entry'>;
  /** How old the automatic backup may get before a clean open makes a new one (default: a day). */
  backupIntervalMs?: number;
}

export type EngineListener = (event: EngineEvent) => void;

export function jobInfo(row: JobRow): JobInfo {
  return {
    id: row.id,
    kind: row.kind,
    title: row.title,
    state: row.state,
    progress: row.progress,
    items: row.items,
    attempt: row.attempt,
    error: row.error,
    createdAt: row.createdAt,
    startedAt: row.startedAt,
    finishedAt: row.finishedAt,
    args: row.args,
  };
}

export class Engine {
  readonly home: AppHome;
  readonly models: ModelService;
  /** Exact nearest-neighbour search, with its ONNX sessions kept warm. */
  readonly knn: ExactKnn;
  /** Feature extractors kept warm for commands (counting, segmenting a frame), made with the Device settings. */
  readonly extractors: ExtractorCache;
  readonly counting: CountService;
  /** The language model kept loaded for `text.features` run in the engine (job workers off). */
  readonly textEncoders: TextEncoderCache;
  /** Text queries' warm state (a head's projector, a run's embeddings) when they run in the engine. */
  readonly textSearch: TextSearchService;
  private current: { project: Project; runner: JobRunner; lock: ProjectLock | null } | null = null;
  private backup: Promise<void> = Promise.resolve();
  private readonly listeners = new Set<EngineListener>();
  /** Trained encoders being registered as models (onJob starts them; modelsRegistered waits for them). */
  private readonly registrations = new Set<Promise<void>>();
  /** Where heavy commands run (command-tasks.ts): the task worker process, or here with job workers off. */
  private readonly taskWorker: TaskWorker | null;
  /** The job workers of every project this engine opens (a worker connects to the project of each job). */
  private readonly jobWorkers: JobWorkers | null;
  private readonly localTasks: CommandTasks;

  constructor(private readonly options: EngineOptions) {
    this.home = new AppHome(options.home);
    this.models = new ModelService(this.home, (runtime) => this.emit({ type: 'runtime.changed', runtime }));
    this.extractors = new ExtractorCache(() => this.models.runtimeSettings());
    this.knn = new ExactKnn(() => this.models.runtimeSettings());
    this.counting = new CountService(this.extractors);
    this.textEncoders = new TextEncoderCache(() => this.models.runtimeSettings());
    this.textSearch = new TextSearchService(this.textEncoders, () => this.models.runtimeSettings());
    this.localTasks = commandTasks(this);
    const workers = options.jobWorkers === false ? null : { ...options.jobWorkers, entry: JOB_WORKER_ENTRY };
    this.taskWorker = workers && new TaskWorker(workers);
    this.jobWorkers = workers && new JobWorkers(workers);
    // Started with the engine, so that the first job does not wait for a process to start (not for a CLI that
    // watches another process's project: it may never run a job).
    if (options.whenLocked !== 'observe') this.jobWorkers?.prewarm(options.runner?.concurrency ?? 1);
  }

  /**
   * Runs a heavy command (command-tasks.ts) off the event loop, in the task worker, against the open project
   * (count.peaks needs none: it reads what the last count kept).
   */
  async command<K extends TaskName>(
    name: K,
    args: Parameters<CommandTasks[K]>[1],
  ): Promise<Awaited<ReturnType<CommandTasks[K]>>> {
    const projectDir = name === 'count.peaks' ? (this.project?.dir ?? '') : this.requireProject().project.dir;
    if (this.taskWorker) {
      const { provider, threads } = this.models.runtimeSettings();
      return (await this.taskWorker.call({ name, args, projectDir, runtime: { provider, threads } })) as never;
    }
    const fn = this.localTasks[name] as (project: () => Project, a: typeof args) => unknown;
    return (await fn(() => this.requireProject().project, args)) as never;
  }

  on(listener: EngineListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  emit(event: EngineEvent): void {
    loopActivity(
      event.type === 'job.updated' ? `event job.updated (${event.job.kind} ${event.job.state})` : `event ${event.type}`,
    );
    for (const l of this.listeners) {
      try {
        l(event);
      } catch {
        // A failing listener (a closed socket) must not stop the others or the job that emitted.
      }
    }
  }

  get project(): Project | null {
    return this.current?.project ?? null;
  }

  requireProject(): { project: Project; runner: JobRunner } {
    if (!this.current) throw new FlaneurError('NO_PROJECT', 'No project is open. Create or open a project first.');
    return this.current;
  }

  projectInfo(): ProjectInfo | null {
    if (!this.current) return null;
    const { project } = this.current;
    const counts = project.jobs.count();
    return {
      id: project.meta.id,
      name: project.meta.name,
      path: project.dir,
      isDemo: path.resolve(project.dir) === path.resolve(this.home.demoProjectDir),
      schemaVersion: project.schemaVersion,
      createdAt: project.meta.createdAt,
      summary: { jobs: counts.total, runningJobs: counts.running },
    };
  }

  async createProject(dir: string, name?: string): Promise<ProjectInfo> {
    const project = Project.create(dir, { appVersion: APP_VERSION, ...(name ? { name } : {}) });
    return this.activate(project);
  }

  /**
   * Opens another project. Checked first, switched after: a project locked by another process (or one that does not
   * open) is refused while the current project and its running job carry on untouched.
   */
  async openProject(dir: string): Promise<ProjectInfo> {
    if (this.current && path.resolve(dir) === this.current.project.dir) return this.projectInfo() as ProjectInfo;
    let abs = path.resolve(dir);
    if (path.basename(abs) === 'project.sqlite') abs = path.dirname(abs);
    if (this.options.whenLocked !== 'observe' && fs.existsSync(abs) && fs.statSync(abs).isDirectory()) {
      // Before Project.open, which may migrate the database another process is using.
      const holder = lockHolder(abs);
      if (holder) throw new FlaneurError('PROJECT_LOCKED', lockedMessage(abs, holder), { field: 'path' });
    }
    return this.activate(Project.open(abs));
  }

  /** The demo project lives in the app home; it is created on first use and ingests the bundled sample clip. */
  async openDemo(): Promise<ProjectInfo> {
    const dir = this.home.demoProjectDir;
    if (Project.exists(dir)) return this.openProject(dir);
    const info = await this.activate(Project.create(dir, { appVersion: APP_VERSION, name: 'Demo project' }));
    if (fs.existsSync(SAMPLE_VIDEO)) this.requireProject().runner.enqueue('ingest.media', { paths: [SAMPLE_VIDEO] });
    await this.importDefaultModel();
    return info;
  }

  /** Registers the embedded default encoder in the open project (a no-op when the app has none). */
  private async importDefaultModel(): Promise<void> {
    try {
      await this.addBundledModel();
    } catch (err) {
      // The demo still opens; the Models view lets the user import weights themselves.
      console.error(`flaneur: the default model could not be registered: ${(err as Error).message}`);
    }
  }

  /**
   * The starter encoder that ships with the app (models/default), registered in the open project: one click for a
   * new project to see. Registering it again returns the model already there.
   */
  async addBundledModel(): Promise<ModelInfo> {
    const m = bundledManifest();
    if (!m) {
      throw new FlaneurError(
        'NOT_FOUND',
        'This copy of Flaneur ships no starter model (models/default is missing). Get a published model in Models → Get models.',
      );
    }
    const info = await this.models.import(this.requireProject().project, {
      path: path.join(DEFAULT_MODEL_DIR, m.file),
      name: m.name,
      ...(m.licence ? { licence: m.licence } : {}),
    });
    this.emit({ type: 'models.changed', models: this.models.list(this.requireProject().project) });
    return info;
  }

  private onJob(project: Project, row: JobRow): void {
    this.emit({ type: 'job.updated', job: jobInfo(row) });
    if ((row.kind === 'train.dino' || row.kind === 'train.import') && row.state === 'done')
      this.track(this.registerTrainedModel(project, row.id));
    if (row.kind === 'train.sharelock' && row.state === 'done') this.track(this.registerHead(project, row.id));
    if (row.kind === 'models.download' && row.state === 'done' && this.project === project) {
      this.emit({ type: 'models.changed', models: this.models.list(project) });
    }
  }

  /**
   * Resolves when the trained encoders being registered now are in the registry (a script that waited for a
   * training job waits for this before it names the model, instead of finding it only at the next open).
   */
  async modelsRegistered(): Promise<void> {
    await Promise.all([...this.registrations]);
  }

  private track(registering: Promise<void>): void {
    this.registrations.add(registering);
    void registering.finally(() => this.registrations.delete(registering));
  }

  /** A finished ShareLock job's head goes into the project's text models. */
  private async registerHead(project: Project, jobId: number): Promise<void> {
    try {
      if (this.project === project) await registerTrainedHead(project, jobId);
    } catch (err) {
      console.error(`flaneur: could not register the ShareLock head of job ${jobId}: ${(err as Error).message}`);
    }
  }

  /** A finished training job's exported encoder goes into the model registry. */
  private async registerTrainedModel(project: Project, jobId: number): Promise<void> {
    const item = project.jobs.items(jobId, { limit: 10 }).items.find((i) => i.key === 'export');
    const r = item?.result as {
      encoder?: string;
      name?: string;
      origin?: string;
      provenance?: Record<string, unknown>;
    } | null;
    if (!r?.encoder || this.project !== project) return;
    loopActivity(`register the model of job ${jobId}`);
    const encoder = path.join(project.dir, r.encoder);
    try {
      // Hashing, reading and copying the weights: in the task worker, off the engine's event loop.
      await this.command('models.import', {
        path: encoder,
        name: r.name ?? `trained (job ${jobId})`,
        licence: TRAINED_HERE,
        ...(r.origin ? { origin: r.origin } : {}),
        ...(r.provenance ? { provenance: r.provenance } : {}),
      });
      fs.rmSync(pendingRegistration(encoder), { force: true });
      this.emit({ type: 'models.changed', models: this.models.list(project) });
    } catch (err) {
      console.error(`flaneur: could not register the model of job ${jobId}: ${(err as Error).message}`);
    }
  }

  /** Binary resources for the UI (frame images); null when the path is not one of ours. */
  resource(urlPath: string): { contentType: string; body: Buffer } | null {
    const project = this.project;
    if (!project) throw new FlaneurError('NO_PROJECT', 'No project is open.');
    const overlay = segmentOverlay(project, urlPath);
    if (overlay) return { contentType: 'image/png', body: overlay };
    return mediaResource(project, urlPath);
  }

  /** At launch: the given project, else the most recent one that opens, else the demo project. */
  async openStartupProject(project?: string): Promise<ProjectInfo> {
    if (project) return this.openProject(project);
    for (const recent of this.home.recent()) {
      if (!recent.exists) continue;
      try {
        return await this.openProject(recent.path);
      } catch {
        // Locked elsewhere or damaged: try the next; the UI lists recent projects with their state.
      }
    }
    return this.openDemo();
  }

  async closeProject(): Promise<void> {
    const cur = this.current;
    if (!cur) return;
    await this.modelsRegistered(); // a trained model being registered lands before the database closes
    this.current = null;
    await this.models.dropSessions();
    this.counting.release();
    await this.extractors.release();
    await this.textSearch.release();
    await this.textEncoders.release();
    await cur.runner.close();
    cur.project.close();
    cur.lock?.release();
    this.emit({ type: 'project.changed', project: null });
  }

  async close(): Promise<void> {
    await this.closeProject();
    await this.knn.release();
    this.taskWorker?.close();
    this.jobWorkers?.close();
    this.models.dispose();
    this.listeners.clear();
  }

  /**
   * The automatic backup (backups/project.sqlite): made in the background with SQLite's online backup when the
   * check at open reached every table and found nothing, and the last backup is missing or older than a day. It
   * fails harmlessly when the project closes first (the previous good backup stays).
   */
  private backupIfDue(project: Project): void {
    const check = project.openCheck;
    if (check && (check.damage || check.unchecked.length > 0)) return;
    const last = backupInfo(project.dir);
    if (last && Date.now() - Date.parse(last.at) < (this.options.backupIntervalMs ?? BACKUP_INTERVAL_MS)) return;
    this.backup = backupDatabase(project.db, project.dir).then(
      () => undefined,
      (err: unknown) => {
        if (project.db.open) console.error(`flaneur: the automatic backup failed: ${(err as Error).message}`);
      },
    );
  }

  /** Resolves when the automatic backup started at open (if any) has finished or failed. */
  async backupSettled(): Promise<void> {
    await this.backup;
  }

  /** The full integrity check of the open project, with the automatic backup's state. */
  checkProject(): IntegrityReport {
    const { project } = this.requireProject();
    const result = project.check();
    const backup = backupInfo(project.dir);
    const tables = result.damage?.tables ?? [];
    return {
      ok: result.damage === null,
      tables,
      derivedOnly: tables.length > 0 && tables.every((t) => DERIVED_TABLES.has(t)),
      message: result.damage ? damageMessage(project.dir, result.damage) : '',
      details: result.damage?.messages ?? [],
      ms: Math.round(result.ms),
      backup,
    };
  }

  /** A damaged project (open or not): closed if it is the current one, locked by nobody else, then `fix`ed and opened. */
  private async repair(dir: string, fix: (abs: string) => void): Promise<ProjectInfo> {
    let abs = path.resolve(dir);
    if (path.basename(abs) === 'project.sqlite') abs = path.dirname(abs);
    const holder = lockHolder(abs);
    if (holder) throw new FlaneurError('PROJECT_LOCKED', lockedMessage(abs, holder), { field: 'path' });
    if (this.current?.project.dir === abs) await this.closeProject();
    fix(abs);
    return this.openProject(abs);
  }

  /** Puts the automatic backup in place of a damaged database (kept beside it) and opens the project. */
  async restoreBackup(dir: string): Promise<ProjectInfo> {
    return this.repair(dir, (abs) => {
      restoreBackup(abs);
    });
  }

  /** Rebuilds a project whose damage is only in derived tables, without them, and opens it. */
  async rebuildProject(dir: string): Promise<ProjectInfo> {
    return this.repair(dir, (abs) => {
      rebuildDamagedProject(abs);
    });
  }

  /** Makes `project` (already open) the current one: its lock is taken before the current project is closed. */
  private async activate(project: Project): Promise<ProjectInfo> {
    let lockOrHolder: ProjectLock | LockInfo;
    try {
      lockOrHolder = ProjectLock.acquire(project.dir);
    } catch (err) {
      project.close();
      throw err;
    }
    let lock: ProjectLock | null = null;
    let observer: { ownerPid: number } | null = null;
    if (lockOrHolder instanceof ProjectLock) {
      lock = lockOrHolder;
    } else if (this.options.whenLocked === 'observe') {
      observer = { ownerPid: lockOrHolder.pid };
    } else {
      project.close();
      throw new FlaneurError('PROJECT_LOCKED', lockedMessage(project.dir, lockOrHolder), { field: 'path' });
    }
    await this.closeProject();
    const runner = new JobRunner(project, (row) => this.onJob(project, row), {
      ...this.options.runner,
      observer,
      runtime: () => this.models.runtimeSettings(),
      workers: observer ? null : this.jobWorkers,
      onWorkerSession: announceSession,
    });
    for (const h of JOB_HANDLERS) runner.register(h);
    this.current = { project, runner, lock };
    if (lock) this.backupIfDue(project);
    this.home.touchRecent(project.dir, project.meta.name);
    const info = this.projectInfo() as ProjectInfo;
    this.emit({ type: 'project.changed', project: info });
    runner.start();
    void this.registerPendingModels(project);
    return info;
  }

  /**
   * Trained encoders still marked as not registered (the engine stopped between their job's end and the
   * registration) are registered when their project opens.
   */
  private async registerPendingModels(project: Project): Promise<void> {
    const kinds = ['train.sharelock', 'train.dino', 'train.import'];
    for (const job of project.jobs.list({ states: ['done'], kinds, limit: 100_000 })) {
      if (job.kind === 'train.sharelock') await this.registerHead(project, job.id);
      if (job.kind !== 'train.dino' && job.kind !== 'train.import') continue;
      const item = project.jobs.items(job.id, { limit: 10 }).items.find((i) => i.key === 'export');
      const encoder = (item?.result as { encoder?: unknown } | null)?.encoder;
      if (typeof encoder !== 'string' || !fs.existsSync(pendingRegistration(path.join(project.dir, encoder)))) continue;
      await this.registerTrainedModel(project, job.id);
    }
  }
}
