/**
 * The messages between the engine (jobs/worker-host.ts) and a job worker process (jobs/worker-child.ts). Plain data
 * only: they cross a process boundary (Node's IPC channel with the structured-clone serialization).
 */
import type { SerializedError } from '../api/errors.js';
import type { GpuFailure, RuntimeSettings, SessionInfo } from '../runtime/session.js';

/** One job for a worker: what the runner read from its row, the project to open and the Device settings. */
export interface WorkerJob {
  id: number;
  kind: string;
  args: unknown;
  checkpoint: unknown;
  attempt: number;
  projectDir: string;
  runtime: Pick<RuntimeSettings, 'provider' | 'threads'>;
  /** The engine's environment when the job starts (a warm worker was started earlier; FLANEUR_* settings may differ). */
  env: Record<string, string>;
}

/** A command the engine hands to a worker (heavy host-side work of a call that is not a job: counting, a model import). */
export interface WorkerTask {
  /** Numbers the answers: a worker may run several tasks at once. */
  id: number;
  name: string;
  args: unknown;
  projectDir: string;
  runtime: Pick<RuntimeSettings, 'provider' | 'threads'>;
}

export type ToWorker =
  | { type: 'run'; job: WorkerJob }
  | { type: 'abort'; reason: 'cancel' | 'shutdown' }
  | { type: 'task'; task: WorkerTask };

export type FromWorker =
  | { type: 'ready'; pid: number }
  | { type: 'phase'; name: string; options: { total?: number | null; unit?: string; done?: number } }
  | { type: 'progress'; done: number; total?: number | null; detail?: Record<string, number> }
  | { type: 'gpu-failure'; failure: GpuFailure }
  | { type: 'session'; info: SessionInfo }
  | { type: 'memory'; rss: number }
  | { type: 'done' }
  /** `raw`: the original error's own code (SQLITE_BUSY…), for the runner's retry rules. */
  | { type: 'error'; error: SerializedError; raw: string | null }
  | { type: 'task-done'; id: number; result: unknown }
  | { type: 'task-error'; id: number; error: SerializedError; raw: string | null };
