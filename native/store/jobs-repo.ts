/**
 * Jobs and their per-item results. A job's checkpoint, progress and the items finished since the last commit are
 * written in one transaction, so a crash loses at most the batch in flight and never records an item twice.
 */
import type { ErrorInfo, JobItem, JobItemStatus, JobProgress, JobState } from '../api/contract.js';
import type { Db } from './db.js';

export interface JobRow {
  id: number;
  kind: string;
  title: string;
  state: JobState;
  args: Record<string, unknown>;
  progress: JobProgress;
  checkpoint: unknown;
  attempt: number;
  error: ErrorInfo | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  items: { ok: number; failed: number; skipped: number };
}

export interface NewItem {
  key: string;
  status: JobItemStatus;
  result?: unknown;
  error?: ErrorInfo | null;
}

interface RawJob {
  id: number;
  kind: string;
  title: string;
  state: JobState;
  args: string;
  progress: string;
  checkpoint: string | null;
  attempt: number;
  error: string | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  n_ok: number | null;
  n_failed: number | null;
  n_skipped: number | null;
}

interface RawItem {
  key: string;
  status: JobItemStatus;
  result: string | null;
  error: string | null;
  attempt: number;
  finished_at: string;
}

const SELECT_JOB = `
  SELECT j.*, c.n_ok, c.n_failed, c.n_skipped FROM jobs j
  LEFT JOIN (
    SELECT job_id,
      sum(status = 'ok') AS n_ok, sum(status = 'failed') AS n_failed, sum(status = 'skipped') AS n_skipped
    FROM job_items GROUP BY job_id
  ) c ON c.job_id = j.id`;

const now = () => new Date().toISOString();
const parseJson = (s: string | null): unknown => (s === null ? null : JSON.parse(s));

function toRow(r: RawJob): JobRow {
  return {
    id: r.id,
    kind: r.kind,
    title: r.title,
    state: r.state,
    args: JSON.parse(r.args) as Record<string, unknown>,
    progress: JSON.parse(r.progress) as JobProgress,
    checkpoint: parseJson(r.checkpoint),
    attempt: r.attempt,
    error: parseJson(r.error) as ErrorInfo | null,
    createdAt: r.created_at,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
    items: { ok: r.n_ok ?? 0, failed: r.n_failed ?? 0, skipped: r.n_skipped ?? 0 },
  };
}

export class JobRepository {
  constructor(private readonly db: Db) {}

  insert(job: { kind: string; title: string; args: Record<string, unknown>; progress: JobProgress }): JobRow {
    const t = now();
    const info = this.db
      .prepare(
        `INSERT INTO jobs (kind, title, state, args, progress, created_at, updated_at)
         VALUES (?, ?, 'queued', ?, ?, ?, ?)`,
      )
      .run(job.kind, job.title, JSON.stringify(job.args), JSON.stringify(job.progress), t, t);
    return this.require(Number(info.lastInsertRowid));
  }

  get(id: number): JobRow | undefined {
    const r = this.db.prepare(`${SELECT_JOB} WHERE j.id = ?`).get(id) as RawJob | undefined;
    return r && toRow(r);
  }

  require(id: number): JobRow {
    const row = this.get(id);
    if (!row) throw new Error(`job ${id} vanished`);
    return row;
  }

  /** Newest first; only the given states and kinds when given (an empty list filters nothing). */
  list(options: { states?: readonly JobState[]; kinds?: readonly string[]; limit?: number } = {}): JobRow[] {
    const where: string[] = [];
    const params: (string | number)[] = [];
    for (const [column, values] of [
      ['j.state', options.states],
      ['j.kind', options.kinds],
    ] as const) {
      if (!values || values.length === 0) continue;
      where.push(`${column} IN (${values.map(() => '?').join(',')})`);
      params.push(...values);
    }
    const sql = `${SELECT_JOB} ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY j.id DESC LIMIT ?`;
    return (this.db.prepare(sql).all(...params, options.limit ?? 200) as RawJob[]).map(toRow);
  }

  count(): { total: number; running: number } {
    const r = this.db
      .prepare(`SELECT count(*) AS total, coalesce(sum(state = 'running'), 0) AS running FROM jobs`)
      .get() as { total: number; running: number };
    return r;
  }

  /** Moves a job to `state`, stamping start/finish times and the error as the state implies. */
  setState(id: number, state: JobState, options: { error?: ErrorInfo | null; newAttempt?: boolean } = {}): JobRow {
    const t = now();
    const finished = state === 'done' || state === 'failed' || state === 'cancelled';
    this.db
      .prepare(
        `UPDATE jobs SET state = @state,
           attempt = attempt + @inc,
           cancel_requested = 0,
           started_at = CASE WHEN @state = 'running' THEN coalesce(started_at, @t) ELSE started_at END,
           finished_at = CASE WHEN @finished THEN @t ELSE NULL END,
           error = @error,
           updated_at = @t
         WHERE id = @id`,
      )
      .run({
        id,
        state,
        t,
        inc: options.newAttempt ? 1 : 0,
        finished: finished ? 1 : 0,
        error: options.error ? JSON.stringify(options.error) : null,
      });
    return this.require(id);
  }

  saveProgress(id: number, progress: JobProgress): void {
    this.db
      .prepare(`UPDATE jobs SET progress = ?, updated_at = ? WHERE id = ?`)
      .run(JSON.stringify(progress), now(), id);
  }

  /** Atomically records finished items, the checkpoint to resume from, and the progress that goes with it. */
  commit(id: number, batch: { items: readonly NewItem[]; checkpoint?: unknown; progress?: JobProgress }): void {
    const { db } = this;
    const attempt = (db.prepare(`SELECT attempt FROM jobs WHERE id = ?`).get(id) as { attempt: number }).attempt;
    const insert = db.prepare(
      `INSERT INTO job_items (job_id, key, status, result, error, attempt, finished_at)
       VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (job_id, key) DO UPDATE SET
         status = excluded.status, result = excluded.result, error = excluded.error,
         attempt = excluded.attempt, finished_at = excluded.finished_at`,
    );
    db.transaction(() => {
      const t = now();
      for (const item of batch.items) {
        insert.run(
          id,
          item.key,
          item.status,
          item.result === undefined ? null : JSON.stringify(item.result),
          item.error ? JSON.stringify(item.error) : null,
          attempt,
          t,
        );
      }
      if (batch.checkpoint !== undefined) {
        db.prepare(`UPDATE jobs SET checkpoint = ?, updated_at = ? WHERE id = ?`).run(
          JSON.stringify(batch.checkpoint),
          t,
          id,
        );
      }
      if (batch.progress) {
        db.prepare(`UPDATE jobs SET progress = ? WHERE id = ?`).run(JSON.stringify(batch.progress), id);
      }
    })();
  }

  /** Asks the process that runs a job to cancel it (used by a second process such as the CLI). */
  requestCancel(id: number): void {
    this.db.prepare(`UPDATE jobs SET cancel_requested = 1, updated_at = ? WHERE id = ?`).run(now(), id);
  }

  cancelRequested(id: number): boolean {
    const r = this.db.prepare(`SELECT cancel_requested FROM jobs WHERE id = ?`).pluck().get(id) as number | undefined;
    return r === 1;
  }

  hasItem(id: number, key: string): boolean {
    return this.db.prepare(`SELECT 1 FROM job_items WHERE job_id = ? AND key = ?`).get(id, key) !== undefined;
  }

  finishedKeys(id: number): Set<string> {
    const rows = this.db.prepare(`SELECT key FROM job_items WHERE job_id = ?`).pluck().all(id) as string[];
    return new Set(rows);
  }

  items(
    id: number,
    options: { status?: JobItemStatus; offset?: number; limit?: number } = {},
  ): { total: number; items: JobItem[] } {
    const where = options.status ? `job_id = ? AND status = ?` : `job_id = ?`;
    const params: unknown[] = options.status ? [id, options.status] : [id];
    const total = (
      this.db.prepare(`SELECT count(*) AS n FROM job_items WHERE ${where}`).get(...params) as { n: number }
    ).n;
    const rows = this.db
      .prepare(`SELECT * FROM job_items WHERE ${where} ORDER BY finished_at, key LIMIT ? OFFSET ?`)
      .all(...params, options.limit ?? 100, options.offset ?? 0) as RawItem[];
    return {
      total,
      items: rows.map((r) => ({
        key: r.key,
        status: r.status,
        result: parseJson(r.result),
        error: parseJson(r.error) as ErrorInfo | null,
        attempt: r.attempt,
        finishedAt: r.finished_at,
      })),
    };
  }

  /** Jobs left 'running' by a process that died are 'interrupted'; returns them. */
  markInterrupted(): JobRow[] {
    const ids = this.db.prepare(`SELECT id FROM jobs WHERE state = 'running'`).pluck().all() as number[];
    return ids.map((id) => this.setState(id, 'interrupted'));
  }
}
