/**
 * Jobs: states, progress, items, errors, and the commands that list, follow, cancel and resume them.
 * Part of the engine's contract (contract.ts is the index that exports every name).
 */
import { z } from 'zod';
import { JobId } from './common.js';

export const JOB_STATES = ['queued', 'running', 'done', 'failed', 'cancelled', 'interrupted'] as const;

export const JobState = z.enum(JOB_STATES);

export type JobState = z.infer<typeof JobState>;

export const ErrorInfo = z.object({
  code: z.string(),
  message: z.string(),
  field: z.string().optional(),
  details: z.string().optional(),
});

export type ErrorInfo = z.infer<typeof ErrorInfo>;

export const JobProgress = z.object({
  phase: z.string(),
  done: z.number().nonnegative(),
  total: z.number().nonnegative().nullable(),
  unit: z.string(),
  /** Items per second over the recent window, null until measurable. */
  rate: z.number().nonnegative().nullable(),
  /** Seconds left at the current rate, null when unknown. */
  etaS: z.number().nonnegative().nullable(),
  /** Other counters of the job (files, frames, bytes…), for display. */
  detail: z.record(z.string(), z.number()).optional(),
});

export type JobProgress = z.infer<typeof JobProgress>;

export const JobInfo = z.object({
  id: z.int().positive(),
  kind: z.string(),
  title: z.string(),
  state: JobState,
  progress: JobProgress,
  items: z.object({ ok: z.int(), failed: z.int(), skipped: z.int() }),
  /** How many times the job has been started (1 + number of resumes). */
  attempt: z.int(),
  error: ErrorInfo.nullable(),
  createdAt: z.string(),
  startedAt: z.string().nullable(),
  finishedAt: z.string().nullable(),
  args: z.record(z.string(), z.unknown()),
});

export type JobInfo = z.infer<typeof JobInfo>;

export const JobItemStatus = z.enum(['ok', 'failed', 'skipped']);

export type JobItemStatus = z.infer<typeof JobItemStatus>;

export const JobItem = z.object({
  key: z.string(),
  status: JobItemStatus,
  result: z.unknown().nullable(),
  error: ErrorInfo.nullable(),
  attempt: z.int(),
  finishedAt: z.string(),
});

export type JobItem = z.infer<typeof JobItem>;

/** The commands of this capability (merged into `commands` by contract.ts). */
export const jobsCommands = {
  'jobs.list': {
    args: z
      .object({
        states: z.array(JobState).optional(),
        limit: z.int().min(1).max(1000).optional(),
      })
      .strict(),
    result: z.array(JobInfo),
  },
  'jobs.get': { args: JobId, result: JobInfo },
  'jobs.items': {
    args: z
      .object({
        id: z.int().positive(),
        status: JobItemStatus.optional(),
        offset: z.int().min(0).optional(),
        limit: z.int().min(1).max(1000).optional(),
      })
      .strict(),
    result: z.object({ total: z.int(), items: z.array(JobItem) }),
  },
  'jobs.cancel': { args: JobId, result: JobInfo },
  'jobs.resume': { args: JobId, result: JobInfo },
} as const;
