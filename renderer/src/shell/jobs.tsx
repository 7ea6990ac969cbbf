/**
 * How a job's state reads everywhere it is shown (Jobs, Library imports, the status bar, the views that start
 * jobs): a finished job with failed items does not look like a success, and a queued job says what it waits for.
 */
import type { JobInfo } from '../../../native/api/contract';
import { plural } from './format';

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

export function JobBadge({ job }: { job: JobInfo }) {
  const o = jobOutcome(job);
  return (
    <span className={`badge badge-${o.tone}`} data-testid="job-state" data-tone={o.tone}>
      {o.label}
    </span>
  );
}

/** Why a queued job has not started: jobs run one at a time, oldest first. */
export function waitReason(job: JobInfo, jobs: readonly JobInfo[]): string | null {
  if (job.state !== 'queued') return null;
  const running = jobs.find((j) => j.state === 'running');
  if (running) return `waiting for job #${running.id} (${running.title}) to finish: jobs run one at a time`;
  const ahead = jobs.filter((j) => j.state === 'queued' && j.id < job.id).length;
  return ahead > 0 ? `waiting: ${plural(ahead, 'job')} ahead in the queue` : 'starting…';
}

/**
 * The newest job of some kinds, where a view starts it: progress while it runs, what it waits for while queued,
 * and a failure that is not hidden once it ends (with a link to its reasons in Jobs). Nothing once it succeeded.
 */
export function JobStatus({
  kinds,
  jobs,
  testId,
}: {
  kinds: readonly string[];
  jobs: readonly JobInfo[];
  testId?: string;
}) {
  const job = jobs.find((j) => kinds.includes(j.kind));
  if (!job) return null;
  const o = jobOutcome(job);
  if (o.tone === 'done') return null;
  const p = job.progress;
  return (
    <div
      className={`job-status tone-${o.tone}`}
      data-testid={testId ?? 'job-status'}
      role={o.tone === 'failed' || o.tone === 'partial' ? 'alert' : 'status'}
    >
      <JobBadge job={job} /> <span className="muted">#{job.id}</span>{' '}
      {job.state === 'running' && (
        <span>
          {p.phase} {p.done}
          {p.total !== null && `/${p.total}`} {p.unit}
        </span>
      )}
      {job.state === 'queued' && <span>{waitReason(job, jobs)}</span>}
      {(o.tone === 'failed' || o.tone === 'partial' || job.state === 'cancelled' || job.state === 'interrupted') && (
        <span>
          {o.summary ??
            job.error?.message ??
            (job.state === 'cancelled' ? 'Cancelled; resume it in Jobs.' : 'Stopped; it resumes in Jobs.')}{' '}
          <a href="#/jobs">Jobs</a>
        </span>
      )}
    </div>
  );
}
