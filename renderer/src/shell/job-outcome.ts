/**
 * How a job's state reads (no React here, so tests can use it): a finished job with failed items is not a success,
 * and a queued job says what it waits for.
 */
import type { JobInfo } from '../../../native/api/contract.js';
import { plural } from './format.js';

export type JobTone = 'running' | 'done' | 'partial' | 'failed' | 'cancelled' | 'interrupted' | 'queued';

export interface JobOutcome {
  /** Short badge text: "done", "failed", "partly failed", … */
  label: string;
  tone: JobTone;
  /** A sentence for a finished job with problems: what happened and where to look. */
  summary: string | null;
}

export function jobOutcome(job: JobInfo): JobOutcome {
  const { ok, failed, skipped } = job.items;
  if (job.state === 'done' && failed > 0) {
    const what = `${plural(failed, 'item')} of ${ok + failed + skipped} failed`;
    return ok === 0
      ? { label: 'failed', tone: 'failed', summary: `Nothing succeeded: ${what}. The reasons are listed with the job.` }
      : {
          label: 'partly failed',
          tone: 'partial',
          summary: `${what}; the rest succeeded. The reasons are listed with the job.`,
        };
  }
  if (job.state === 'failed') return { label: 'failed', tone: 'failed', summary: job.error?.message ?? null };
  return { label: job.state, tone: job.state, summary: null };
}

/** Why a queued job has not started: jobs run one at a time, oldest first. */
export function waitReason(job: JobInfo, jobs: readonly JobInfo[]): string | null {
  if (job.state !== 'queued') return null;
  const running = jobs.find((j) => j.state === 'running');
  if (running) return `waiting for job #${running.id} (${running.title}) to finish: jobs run one at a time`;
  const ahead = jobs.filter((j) => j.state === 'queued' && j.id < job.id).length;
  return ahead > 0 ? `waiting: ${plural(ahead, 'job')} ahead in the queue` : 'starting…';
}
