import { type FormEvent, useCallback, useEffect, useRef, useState } from 'react';
import type { CommandResult, JobInfo, JobItem, MediaInfo, Sampling } from '../../../../native/api/contract';
import { useFileDrop } from '../../shell/drop';
import type { Explained } from '../../shell/errors';
import { formatBytes, formatDuration, plural } from '../../shell/format';
import { Icon } from '../../shell/Icon';
import { JobBadge, jobOutcome, waitReason } from '../../shell/jobs';
import { frameSrc } from '../../shell/media';
import { PathField } from '../../shell/PathField';
import { ActionButton } from '../../shell/Why';
import { useApp } from '../../state/app-state';

type LibraryList = CommandResult<'library.list'>;

/** Paths from a drop: file managers put file:// URIs in text/uri-list (browsers give no paths for File objects). */

function samplingLabel(s: Sampling | null): string {
  if (!s) return '';
  switch (s.policy) {
    case 'fps':
      return `${s.fps} fps`;
    case 'every':
      return `every ${s.n}th frame`;
    case 'keyframes':
      return 'keyframes';
    case 'scene':
      return `scene changes > ${s.threshold}`;
  }
}

function MediaCard({ m }: { m: MediaInfo }) {
  const thumb =
    m.frameCount > 0 ? (
      <img src={frameSrc(m.id, 0)} alt="" loading="lazy" />
    ) : (
      <div className="thumb-empty">{m.status}</div>
    );
  const body = (
    <>
      <div className="thumb">{thumb}</div>
      <div className="card-caption">
        <div className="media-name" title={m.path}>
          {m.name}
        </div>
        <div className="muted">
          {m.kind === 'video'
            ? `${formatDuration(m.durationS)} · ${plural(m.frameCount, 'frame')} · ${samplingLabel(m.sampling)}`
            : m.kind === 'image'
              ? `${m.width}×${m.height}`
              : m.status}
          {m.status === 'ingesting' && ' · ingesting…'}
          {m.status === 'pending' && m.problem && ' · stopped, resumes with its import job'}
        </div>
        {m.problem && (
          <div className="warn-text" title={m.problem.message}>
            <Icon name="warning" /> {m.problem.message}
          </div>
        )}
      </div>
    </>
  );
  return (
    <li className="media-card" data-testid={`media-${m.id}`} data-kind={m.kind}>
      {m.kind === 'video' && m.frameCount > 0 ? (
        <a href={`#/player/${m.id}`} className="media-link" aria-label={`Open ${m.name} in the player`}>
          {body}
        </a>
      ) : (
        body
      )}
    </li>
  );
}

/** The outcome of the import started here, beside the form: what was added and, for each failure, why. */
function ImportOutcome({ job }: { job: JobInfo | null }) {
  const { client } = useApp();
  const [failed, setFailed] = useState<JobItem[]>([]);
  const finished = job !== null && job.state !== 'running' && job.state !== 'queued';
  const failures = job?.items.failed ?? 0;
  useEffect(() => {
    if (!job || !finished || failures === 0) {
      setFailed([]);
      return;
    }
    let live = true;
    void client.call('jobs.items', { id: job.id, status: 'failed', limit: 20 }).then(
      (r) => live && setFailed(r.items),
      () => {},
    );
    return () => {
      live = false;
    };
  }, [client, job, finished, failures]);
  if (!job || !finished) return null;
  const o = jobOutcome(job);
  return (
    <div className={`import-outcome tone-${o.tone}`} data-testid="import-outcome" role={failures ? 'alert' : 'status'}>
      <JobBadge job={job} />{' '}
      {job.state === 'done'
        ? `Import #${job.id}: ${plural(job.items.ok, 'file')} added${job.items.skipped ? `, ${job.items.skipped} skipped (already in the library or duplicates)` : ''}${failures ? `, ${failures} could not be read:` : '.'}`
        : `Import #${job.id} ${job.state}${job.error ? `: ${job.error.message}` : '.'}`}
      {failed.length > 0 && (
        <ul className="plain">
          {failed.map((it) => (
            <li key={it.key}>
              <span className="mono">{it.key}</span> — {it.error?.message}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

export function LibraryView() {
  const { client, run, attempt, jobs, project, selection, setSelection } = useApp();
  const [addError, setAddError] = useState<Explained | null>(null);
  /** The import this view started last: its outcome is shown beside the form. */
  const [lastImport, setLastImport] = useState<number | null>(null);
  const [list, setList] = useState<LibraryList | null>(null);
  const [problems, setProblems] = useState<MediaInfo[]>([]);
  const [paths, setPaths] = useState('');
  const [policy, setPolicy] = useState<Sampling['policy']>('fps');
  const [value, setValue] = useState('1');
  const [size, setSize] = useState('224');
  const lastLoad = useRef(0);

  const loads = useRef(0);

  /** How many imports had ended when the list shown was asked for: an outcome waits for a list as new as it. */
  const endedAtLoad = useRef(0);
  const [listEnded, setListEnded] = useState(0);
  const load = useCallback(async () => {
    lastLoad.current = performance.now();
    const mine = ++loads.current;
    const asked = endedAtLoad.current;
    const [all, bad] = await Promise.all([
      client.call('library.list', { limit: 1000, ...(selection ? { ids: selection.mediaIds } : {}) }),
      client.call('library.list', { withProblem: true, limit: 1000 }),
    ]);
    // Only the latest load is shown: an earlier one (e.g. still filtered by a Map selection that was just cleared)
    // may answer after it.
    if (mine !== loads.current) return;
    setList(all);
    setProblems(bad.items);
    setListEnded(asked);
  }, [client, selection]);

  // biome-ignore lint/correctness/useExhaustiveDependencies: reload when another project opens
  useEffect(() => {
    void run('Could not load the library', load);
  }, [run, load, project?.id]);

  // Follow ingest jobs: reload at most once a second while they run, and when they end.
  const ingest = jobs.filter((j) => j.kind === 'ingest.media');
  const signature = ingest
    .map((j) => `${j.id}:${j.state}:${j.progress.detail?.frames ?? 0}:${j.items.ok + j.items.failed + j.items.skipped}`)
    .join('|');
  /** Imports that have ended: when one more ends, the cards are reloaded at once (not up to a second later). */
  const ended = ingest.filter((j) => j.state !== 'running' && j.state !== 'queued').length;
  endedAtLoad.current = ended;
  const endedBefore = useRef(ended);
  // biome-ignore lint/correctness/useExhaustiveDependencies: the signature summarises the jobs that matter
  useEffect(() => {
    if (!signature) return;
    const justEnded = ended !== endedBefore.current;
    endedBefore.current = ended;
    // An import that just ended says "added" beside the form: its cards must not still say ingesting.
    const wait = justEnded ? 0 : Math.max(0, 1000 - (performance.now() - lastLoad.current));
    const t = setTimeout(() => void load().catch(() => {}), wait);
    return () => clearTimeout(t);
  }, [signature]);

  const sampling = (): Sampling => {
    const v = Number(value);
    if (policy === 'fps') return { policy, fps: v };
    if (policy === 'every') return { policy, n: Math.round(v) };
    if (policy === 'scene') return { policy, threshold: v };
    return { policy: 'keyframes' };
  };

  const add = async (list: string[]) => {
    if (list.length === 0) return;
    const r = await attempt(() =>
      client.call('library.add', {
        paths: list,
        sampling: sampling(),
        frameSize: { mode: 'short-side', size: Number(size) },
      }),
    );
    // A refused path stays in the field with the reason under it; an accepted one clears it.
    setAddError(r.ok ? null : r.error);
    if (r.ok) {
      setPaths('');
      setLastImport(r.value.id);
    }
  };
  const submit = (e: FormEvent) => {
    e.preventDefault();
    void add(
      paths
        .split('\n')
        .map((p) => p.trim())
        .filter(Boolean),
    );
  };
  const drop = useFileDrop((dropped) => {
    if (dropped.length) void add(dropped);
  });
  const running = ingest.filter((j) => j.state === 'running' || j.state === 'queued');

  return (
    <div className="view view-wide">
      <header className="view-header">
        <h1>Library</h1>
        {list && (
          <span className="muted" data-testid="library-counts">
            {plural(list.counts.images, 'image')} · {plural(list.counts.videos, 'video')} ·{' '}
            {plural(list.counts.frames, 'sampled frame')}
            {list.counts.failed > 0 && ` · ${list.counts.failed} unreadable`}
          </span>
        )}
        {selection && (
          <span className="filter-chip" data-testid="library-filter-chip">
            Filtered: {selection.label}
            <button type="button" className="icon-button" onClick={() => setSelection(null)} aria-label="Clear filter">
              <Icon name="close" />
            </button>
          </span>
        )}
      </header>

      <form
        className={`card dropzone ${drop.dragging ? 'dragging' : ''}`}
        onSubmit={submit}
        {...drop.handlers}
        aria-labelledby="add-title"
      >
        <h2 id="add-title">Add images and videos</h2>
        <p className="muted">
          A folder (searched recursively) or files. Drop them here from your file manager, type a path, or choose one.
        </p>
        <PathField
          label="Folder or file"
          name="library-path"
          value={paths}
          onChange={(v) => {
            setPaths(v);
            setAddError(null);
          }}
          placeholder="/path/to/photos or /path/to/walk.mp4"
          error={addError}
        />
        <div className="field-row">
          <div className="field">
            <label htmlFor="sampling-policy">Video sampling</label>
            <select
              id="sampling-policy"
              value={policy}
              onChange={(e) => setPolicy(e.target.value as Sampling['policy'])}
            >
              <option value="fps">Uniform rate (frames per second)</option>
              <option value="every">Every Nth frame</option>
              <option value="keyframes">Keyframes only (fast)</option>
              <option value="scene">Scene changes (threshold)</option>
            </select>
          </div>
          {policy !== 'keyframes' && (
            <div className="field">
              <label htmlFor="sampling-value">
                {policy === 'fps' ? 'Frames per second' : policy === 'every' ? 'N' : 'Threshold (0–1)'}
              </label>
              <input
                id="sampling-value"
                type="number"
                min="0"
                step="any"
                value={value}
                onChange={(e) => setValue(e.target.value)}
              />
            </div>
          )}
          <div className="field">
            <label htmlFor="frame-size">Frame size (shorter side, px)</label>
            <input
              id="frame-size"
              type="number"
              min="32"
              max="2048"
              value={size}
              onChange={(e) => setSize(e.target.value)}
            />
          </div>
        </div>
        <ActionButton
          type="submit"
          className="primary"
          why={!paths.trim() && 'Type a folder or file above, or drop files here.'}
        >
          Add to library
        </ActionButton>
        {/* Said once the cards below are as new as the job's end (not "added" beside a card still ingesting). */}
        <ImportOutcome job={listEnded >= ended ? (ingest.find((j) => j.id === lastImport) ?? null) : null} />
      </form>

      {running.map((j) => (
        <section key={j.id} className="card" aria-label={`Import ${j.id}`} data-testid={`ingest-${j.id}`}>
          <div className="job-head">
            <strong>{j.title}</strong>
            <JobBadge job={j} />
          </div>
          <progress
            max={j.progress.total ?? 1}
            value={j.progress.total ? j.progress.done : undefined}
            aria-label="Import progress"
          />
          <div className="muted mono">
            {j.state === 'queued'
              ? waitReason(j, jobs)
              : `${j.progress.phase}: ${formatBytes(j.progress.done)} of ${formatBytes(j.progress.total ?? 0)}`}
            {j.state === 'running' &&
              j.progress.detail &&
              ` · ${j.progress.detail.files_done ?? 0}/${plural(j.progress.detail.files_total ?? 0, 'file')} · ${plural(j.progress.detail.frames ?? 0, 'frame')}`}
            {j.state === 'running' && j.progress.rate !== null && ` · ${formatBytes(j.progress.rate)}/s`}
            {j.state === 'running' && j.progress.etaS !== null && ` · ETA ${formatDuration(j.progress.etaS)}`}
          </div>
        </section>
      ))}

      {selection && (
        <section className="card selection-banner" data-testid="library-selection" role="status">
          <strong>
            Showing {plural(list?.total ?? selection.mediaIds.length, 'item')} of{' '}
            {list ? list.counts.images + list.counts.videos : '…'}: {selection.label}.
          </strong>{' '}
          {list && list.total > list.items.length && <span className="muted">(first {list.items.length} shown)</span>}{' '}
          <button type="button" className="primary" onClick={() => setSelection(null)}>
            Show everything
          </button>
        </section>
      )}
      {problems.length > 0 && (
        <section className="card" aria-labelledby="problems-title">
          <h2 id="problems-title">
            <Icon name="warning" /> {plural(problems.length, 'file')} could not be read, or read with problems
          </h2>
          <table className="items">
            <thead>
              <tr>
                <th>File</th>
                <th>Problem</th>
                <th>Reason</th>
              </tr>
            </thead>
            <tbody>
              {problems.map((m) => (
                <tr key={m.id} data-testid={`problem-${m.id}`}>
                  <td className="mono">{m.path}</td>
                  <td>
                    <span className={`badge badge-${m.status === 'failed' ? 'failed' : 'cancelled'}`}>
                      {m.problem?.code}
                    </span>
                  </td>
                  <td>
                    {m.problem?.message}
                    {m.problem?.details && (
                      <details>
                        <summary>ffmpeg said</summary>
                        <pre>{m.problem.details}</pre>
                      </details>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </section>
      )}
      {list && list.items.length === 0 && running.length === 0 ? (
        <p className="card empty muted">Nothing here yet. Add a folder of photos or a video above.</p>
      ) : (
        <ul className="media-grid" aria-label="Media">
          {list?.items
            .filter((m) => m.status !== 'failed')
            .map((m) => (
              <MediaCard key={m.id} m={m} />
            ))}
        </ul>
      )}
    </div>
  );
}
