import { type FormEvent, useEffect, useState } from 'react';
import type { JobInfo, JobItem } from '../../../../native/api/contract';
import type { Explained } from '../../shell/errors';
import { formatBytes, formatDuration, formatRate, formatTime, plural } from '../../shell/format';
import { JobBadge, jobOutcome, waitReason } from '../../shell/jobs';
import { PathField } from '../../shell/PathField';
import { ActionButton } from '../../shell/Why';
import { useApp } from '../../state/app-state';

const ALGORITHMS = ['sha256', 'sha1', 'md5'] as const;

function JobRow({ job, selected, onSelect }: { job: JobInfo; selected: boolean; onSelect(): void }) {
  const { client, run, jobs } = useApp();
  const p = job.progress;
  const outcome = jobOutcome(job);
  const waiting = waitReason(job, jobs);
  // A finished job's last counter may lag its last step: done means all of it.
  const shownDone = job.state === 'done' && p.total !== null ? p.total : p.done;
  const active = job.state === 'running' || job.state === 'queued';
  const resumable = job.state === 'interrupted' || job.state === 'failed' || job.state === 'cancelled';
  const pct = p.total ? Math.floor((100 * p.done) / p.total) : null;
  /** A finished job's bar is full, whatever its last counter said (nothing left to do is all of it). */
  const finished = job.state === 'done';
  return (
    <li
      className={`job job-${outcome.tone} ${selected ? 'selected' : ''}`}
      data-testid={`job-${job.id}`}
      data-state={job.state}
    >
      <div className="job-head">
        <button type="button" className="link" onClick={onSelect} aria-expanded={selected}>
          #{job.id} {job.title}
        </button>
        <JobBadge job={job} />
      </div>
      <div className="job-progress">
        <progress
          max={finished ? 1 : (p.total ?? 1)}
          value={finished ? 1 : p.total === null ? undefined : shownDone}
          aria-label={`Progress of job ${job.id}`}
          data-testid="job-progress"
          data-done={p.done}
          data-total={p.total ?? ''}
        />
        <span className="mono">
          {waiting ?? (
            <>
              {finished && shownDone === 0 ? (
                <>
                  finished: no {p.unit} needed work
                  {job.items.skipped > 0 && ` (${plural(job.items.skipped, 'item')} skipped)`}
                </>
              ) : p.unit === 'bytes' ? (
                <>
                  {p.phase}: {formatBytes(shownDone)}
                  {p.total !== null && ` of ${formatBytes(p.total)}`}
                </>
              ) : (
                <>
                  {p.phase}: {shownDone}
                  {p.total !== null && ` / ${p.total}`} {p.unit}
                </>
              )}
              {pct !== null && ` (${job.state === 'done' ? 100 : pct}%)`}
            </>
          )}
        </span>
        {job.state === 'running' && (
          <span className="muted">
            {formatRate(p.rate, p.unit)} · ETA {formatDuration(p.etaS)}
          </span>
        )}
      </div>
      <div className="job-foot">
        <span className="muted">
          {job.items.ok} ok · {job.items.failed} failed · {job.items.skipped} skipped · attempt {job.attempt}
        </span>
        {outcome.tone === 'partial' || (outcome.tone === 'failed' && job.state === 'done') ? (
          <button type="button" onClick={onSelect}>
            {selected ? 'Hide reasons' : 'Show reasons'}
          </button>
        ) : null}
        <span className="spacer" />
        {active && (
          <button
            type="button"
            onClick={() => void run('Could not cancel', () => client.call('jobs.cancel', { id: job.id }))}
          >
            Cancel
          </button>
        )}
        {resumable && (
          <button
            type="button"
            onClick={() => void run('Could not resume', () => client.call('jobs.resume', { id: job.id }))}
          >
            Resume
          </button>
        )}
      </div>
      {outcome.summary && job.state === 'done' && (
        <div className="job-error" role="alert">
          {outcome.summary}
        </div>
      )}
      {job.error && (
        <div
          className={`job-error ${job.state === 'cancelled' ? 'muted' : ''}`}
          role={job.state === 'failed' ? 'alert' : undefined}
        >
          {job.state === 'failed' ? 'Failed: ' : ''}
          {job.error.message}
          {job.error.details && (
            <details>
              <summary>Details</summary>
              <pre>{job.error.details}</pre>
            </details>
          )}
        </div>
      )}
      {selected && <JobItems job={job} />}
    </li>
  );
}

function JobItems({ job }: { job: JobInfo }) {
  const { client, run } = useApp();
  const [filter, setFilter] = useState<'problems' | 'all'>('problems');
  const [items, setItems] = useState<{ total: number; items: JobItem[] } | null>(null);
  const counts = job.items.ok + job.items.failed + job.items.skipped;

  // biome-ignore lint/correctness/useExhaustiveDependencies: reload as the job records items (counts)
  useEffect(() => {
    void run('Could not load job items', async () => {
      if (filter === 'all') {
        setItems(await client.call('jobs.items', { id: job.id, limit: 200 }));
      } else {
        const [failed, skipped] = await Promise.all([
          client.call('jobs.items', { id: job.id, status: 'failed', limit: 200 }),
          client.call('jobs.items', { id: job.id, status: 'skipped', limit: 200 }),
        ]);
        setItems({ total: failed.total + skipped.total, items: [...failed.items, ...skipped.items] });
      }
    });
  }, [client, run, job.id, filter, counts]);

  return (
    <section className="card" aria-label={`Items of job ${job.id}`}>
      <div className="card-head">
        <h3>
          Job #{job.id}: {plural(counts, 'item')}
        </h3>
        <fieldset className="segmented" aria-label="Which items">
          <button type="button" aria-pressed={filter === 'problems'} onClick={() => setFilter('problems')}>
            Failed and skipped
          </button>
          <button type="button" aria-pressed={filter === 'all'} onClick={() => setFilter('all')}>
            All
          </button>
        </fieldset>
      </div>
      <p className="muted">
        Created {formatTime(job.createdAt)} · started {formatTime(job.startedAt)} · finished{' '}
        {formatTime(job.finishedAt)}
      </p>
      {items && items.items.length === 0 ? (
        <p className="muted">{filter === 'problems' ? 'No failed or skipped items.' : 'No items yet.'}</p>
      ) : (
        <table className="items">
          <thead>
            <tr>
              <th>Item</th>
              <th>Status</th>
              <th>Result or reason</th>
            </tr>
          </thead>
          <tbody>
            {items?.items.map((it) => (
              <tr key={it.key}>
                <td className="mono">{it.key}</td>
                <td>
                  <span
                    className={`badge badge-${it.status === 'ok' ? 'done' : it.status === 'failed' ? 'failed' : 'cancelled'}`}
                  >
                    {it.status}
                  </span>
                </td>
                <td>
                  {it.error ? (
                    <>
                      {it.error.message} <span className="muted mono">({it.error.code})</span>
                    </>
                  ) : (
                    <span className="mono">{JSON.stringify(it.result)}</span>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {items && items.total > items.items.length && (
        <p className="muted">
          Showing {items.items.length} of {items.total}.
        </p>
      )}
    </section>
  );
}

export function JobsView() {
  const { client, jobs, attempt } = useApp();
  const [root, setRoot] = useState('');
  const [algorithm, setAlgorithm] = useState<(typeof ALGORITHMS)[number]>('sha256');
  const [selected, setSelected] = useState<number | null>(null);

  const [rootError, setRootError] = useState<Explained | null>(null);
  const start = async (e: FormEvent) => {
    e.preventDefault();
    const r = await attempt(() => client.call('ingest.hashFolder', { root, algorithm }));
    setRootError(r.ok ? null : r.error);
    if (r.ok) setSelected(r.value.id);
  };

  return (
    <div className="view">
      <header className="view-header">
        <h1>Jobs</h1>
      </header>
      <form className="card" onSubmit={start} aria-labelledby="hash-title">
        <h2 id="hash-title">Hash a folder</h2>
        <p className="muted">
          Computes a content hash of every file (integrity checks, finding copies). Runs as a job: it shows progress,
          can be cancelled, and resumes where it stopped.
        </p>
        <PathField
          label="Folder"
          name="hash-root"
          value={root}
          onChange={(v) => {
            setRoot(v);
            setRootError(null);
          }}
          error={rootError}
        />
        <div className="field">
          <label htmlFor="hash-algorithm">Algorithm</label>
          <select
            id="hash-algorithm"
            value={algorithm}
            onChange={(e) => setAlgorithm(e.target.value as typeof algorithm)}
          >
            {ALGORITHMS.map((a) => (
              <option key={a}>{a}</option>
            ))}
          </select>
        </div>
        <ActionButton type="submit" className="primary" why={!root.trim() && 'Type the folder to hash first.'}>
          Start
        </ActionButton>
      </form>

      <section aria-labelledby="jobs-title">
        <h2 id="jobs-title">All jobs</h2>
        {jobs.length === 0 ? (
          <p className="muted card empty">No jobs yet. Jobs you start appear here with their progress.</p>
        ) : (
          <ul className="jobs">
            {jobs.map((j) => (
              <JobRow
                key={j.id}
                job={j}
                selected={j.id === selected}
                onSelect={() => setSelected(j.id === selected ? null : j.id)}
              />
            ))}
          </ul>
        )}
      </section>
    </div>
  );
}
