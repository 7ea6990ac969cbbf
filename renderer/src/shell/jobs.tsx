/**
 * How a job's state reads everywhere it is shown (Jobs, Library imports, the status bar, the views that start
 * jobs): a finished job with failed items does not look like a success, and a queued job says what it waits for.
 */
import type { JobInfo } from '../../../native/api/contract';
import { jobOutcome, waitReason } from './job-outcome';

export { type JobOutcome, type JobTone, jobOutcome, waitReason } from './job-outcome';

export function JobBadge({ job }: { job: JobInfo }) {
  const o = jobOutcome(job);
  return (
    <span className={`badge badge-${o.tone}`} data-testid="job-state" data-tone={o.tone}>
      {o.label}
    </span>
  );
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
