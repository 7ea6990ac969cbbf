/**
 * What a job handler sees and provides. Handlers are plain objects registered by kind; the runner owns state,
 * persistence, progress events, cancellation and resume.
 */
import type { z } from 'zod';
import type { ErrorInfo, JobItemStatus } from '../api/contract.js';
import type { RuntimeSettings } from '../runtime/session.js';
import type { Project } from '../store/project.js';

export interface ItemResult {
  key: string;
  status: JobItemStatus;
  result?: unknown;
  error?: ErrorInfo | null;
}

export interface JobContext<Args, Checkpoint> {
  readonly jobId: number;
  readonly args: Args;
  /** The checkpoint of the last commit of an earlier attempt, or null on a first run. */
  readonly checkpoint: Checkpoint | null;
  readonly attempt: number;
  readonly project: Project;
  /** The engine's execution provider and thread settings (Device view), for every model session the job makes. */
  readonly runtime: RuntimeSettings;
  /** Aborted when the user cancels or the engine shuts down. */
  readonly signal: AbortSignal;
  /** Starts a phase; `total` null when unknown. Resets `done` to `done` (default 0). */
  phase(name: string, options?: { total?: number | null; unit?: string; done?: number }): void;
  /** Reports progress within the phase (throttled for events and persistence), with optional extra counters. */
  progress(done: number, total?: number | null, detail?: Record<string, number>): void;
  /** Atomically records finished items and the position to resume from. */
  commit(items: readonly ItemResult[], checkpoint: Checkpoint): void;
  /** Items recorded by earlier attempts of this job (to skip them on resume). */
  finishedKeys(): Set<string>;
  /** Throws the cancellation error if the job was asked to stop. */
  throwIfAborted(): void;
}

export interface JobHandler<Args = unknown, Checkpoint = unknown> {
  kind: string;
  /** Arguments are re-validated when a job resumes from the database. */
  args: z.ZodType<Args>;
  title(args: Args): string;
  run(ctx: JobContext<Args, Checkpoint>): Promise<void>;
}

// biome-ignore lint/suspicious/noExplicitAny: a registry holds handlers of every argument type
export type AnyJobHandler = JobHandler<any, any>;
