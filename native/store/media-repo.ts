/**
 * The media catalog: one row per image or video (path, size, content hash, probe, sampling, status and the reason
 * when it failed) and one row per sampled frame (index, source timestamp). Frame pixels live in cache files.
 */
import type { ErrorInfo } from '../api/contract.js';
import { sourceFrameSize } from '../api/frames.js';
import type { Db } from './db.js';

export type MediaStatus = 'pending' | 'ingesting' | 'done' | 'failed';
export type MediaKind = 'image' | 'video' | 'unknown';

export interface MediaRow {
  id: number;
  kind: MediaKind;
  path: string;
  bytes: number;
  mtimeMs: number;
  contentHash: string | null;
  status: MediaStatus;
  problem: ErrorInfo | null;
  probe: Record<string, unknown> | null;
  sampling: Record<string, unknown> | null;
  frameWidth: number | null;
  frameHeight: number | null;
  frameCount: number;
  addedAt: string;
  updatedAt: string;
}

interface Raw {
  id: number;
  kind: MediaKind;
  path: string;
  bytes: number;
  mtime_ms: number;
  content_hash: string | null;
  status: MediaStatus;
  problem: string | null;
  probe: string | null;
  sampling: string | null;
  frame_width: number | null;
  frame_height: number | null;
  frame_count: number;
  added_at: string;
  updated_at: string;
}

const j = <T>(s: string | null): T | null => (s === null ? null : (JSON.parse(s) as T));

function toRow(r: Raw): MediaRow {
  return {
    id: r.id,
    kind: r.kind,
    path: r.path,
    bytes: r.bytes,
    mtimeMs: r.mtime_ms,
    contentHash: r.content_hash,
    status: r.status,
    problem: j<ErrorInfo>(r.problem),
    probe: j(r.probe),
    sampling: j(r.sampling),
    frameWidth: r.frame_width,
    frameHeight: r.frame_height,
    frameCount: r.frame_count,
    addedAt: r.added_at,
    updatedAt: r.updated_at,
  };
}

const now = () => new Date().toISOString();

export class MediaRepository {
  constructor(private readonly db: Db) {}

  get(id: number): MediaRow | undefined {
    const r = this.db.prepare(`SELECT * FROM media WHERE id = ?`).get(id) as Raw | undefined;
    return r && toRow(r);
  }

  byPath(path: string): MediaRow | undefined {
    const r = this.db.prepare(`SELECT * FROM media WHERE path = ?`).get(path) as Raw | undefined;
    return r && toRow(r);
  }

  /** Items whose file is called `name` (the last part of the path, / or \\ separated), by id. */
  byFileName(name: string): MediaRow[] {
    const esc = name.replace(/[\\%_]/g, (c) => `\\${c}`);
    // LIKE narrows (case-insensitively); the exact comparison is done here.
    return (this.db.prepare(`SELECT * FROM media WHERE path LIKE ? ESCAPE '\\' ORDER BY id`).all(`%${esc}`) as Raw[])
      .map(toRow)
      .filter((r) => r.path.split(/[\\/]/).pop() === name);
  }

  /** Another catalogued file with the same content, if any. */
  duplicateOf(hash: string, path: string): MediaRow | undefined {
    const r = this.db
      .prepare(`SELECT * FROM media WHERE content_hash = ? AND path <> ? AND status <> 'failed' ORDER BY id LIMIT 1`)
      .get(hash, path) as Raw | undefined;
    return r && toRow(r);
  }

  /** Inserts or refreshes the row of a file (a changed file starts over). */
  upsert(m: { path: string; bytes: number; mtimeMs: number; contentHash: string | null }): MediaRow {
    const existing = this.byPath(m.path);
    const t = now();
    if (existing) {
      if (existing.bytes !== m.bytes || existing.mtimeMs !== m.mtimeMs) {
        this.db.transaction(() => {
          this.db.prepare(`DELETE FROM frames WHERE media_id = ?`).run(existing.id);
          this.db
            .prepare(
              `UPDATE media SET bytes = ?, mtime_ms = ?, content_hash = ?, status = 'pending', problem = NULL, probe = NULL,
               frame_count = 0, updated_at = ? WHERE id = ?`,
            )
            .run(m.bytes, m.mtimeMs, m.contentHash, t, existing.id);
        })();
      }
      return this.get(existing.id) as MediaRow;
    }
    const info = this.db
      .prepare(
        `INSERT INTO media (kind, path, bytes, mtime_ms, content_hash, status, added_at, updated_at) VALUES ('unknown', ?, ?, ?, ?, 'pending', ?, ?)`,
      )
      .run(m.path, m.bytes, m.mtimeMs, m.contentHash, t, t);
    return this.get(Number(info.lastInsertRowid)) as MediaRow;
  }

  /** Forgets the frames of an item (it will be sampled again). */
  resetFrames(id: number): void {
    this.db.transaction(() => {
      this.db.prepare(`DELETE FROM frames WHERE media_id = ?`).run(id);
      this.db
        .prepare(`UPDATE media SET frame_count = 0, status = 'pending', updated_at = ? WHERE id = ?`)
        .run(now(), id);
    })();
  }

  setContentHash(id: number, hash: string): void {
    this.db.prepare(`UPDATE media SET content_hash = ?, updated_at = ? WHERE id = ?`).run(hash, now(), id);
  }

  startIngest(
    id: number,
    m: { kind: MediaKind; probe: unknown; sampling: unknown; frameWidth: number; frameHeight: number },
  ): void {
    this.db
      .prepare(
        `UPDATE media SET kind = ?, probe = ?, sampling = ?, frame_width = ?, frame_height = ?, status = 'ingesting',
         problem = NULL, updated_at = ? WHERE id = ?`,
      )
      .run(m.kind, JSON.stringify(m.probe), JSON.stringify(m.sampling), m.frameWidth, m.frameHeight, now(), id);
  }

  fail(id: number, problem: ErrorInfo, kind?: MediaKind): void {
    this.db
      .prepare(`UPDATE media SET status = 'failed', problem = ?, kind = coalesce(?, kind), updated_at = ? WHERE id = ?`)
      .run(JSON.stringify(problem), kind ?? null, now(), id);
  }

  /** Stopped part-way (cancelled, engine stopping, disk full): waiting for its job to resume, with the reason. */
  pause(id: number, reason: ErrorInfo): void {
    this.db
      .prepare(`UPDATE media SET status = 'pending', problem = ?, updated_at = ? WHERE id = ?`)
      .run(JSON.stringify(reason), now(), id);
  }

  finish(id: number, warning: ErrorInfo | null): void {
    this.db
      .prepare(`UPDATE media SET status = 'done', problem = ?, updated_at = ? WHERE id = ?`)
      .run(warning ? JSON.stringify(warning) : null, now(), id);
  }

  /** Appends frames (index, pts) and the new count, in one transaction. */
  addFrames(id: number, frames: readonly { idx: number; pts: number }[]): void {
    const ins = this.db.prepare(`INSERT INTO frames (media_id, idx, pts) VALUES (?, ?, ?)`);
    this.db.transaction(() => {
      for (const f of frames) ins.run(id, f.idx, f.pts);
      this.db
        .prepare(
          `UPDATE media SET frame_count = (SELECT count(*) FROM frames WHERE media_id = ?), updated_at = ? WHERE id = ?`,
        )
        .run(id, now(), id);
    })();
  }

  lastFrame(id: number): { idx: number; pts: number } | undefined {
    return this.db.prepare(`SELECT idx, pts FROM frames WHERE media_id = ? ORDER BY idx DESC LIMIT 1`).get(id) as
      | { idx: number; pts: number }
      | undefined;
  }

  frames(id: number, offset = 0, limit = 1000): { idx: number; pts: number }[] {
    return this.db
      .prepare(`SELECT idx, pts FROM frames WHERE media_id = ? ORDER BY idx LIMIT ? OFFSET ?`)
      .all(id, limit, offset) as { idx: number; pts: number }[];
  }

  list(
    o: {
      kind?: MediaKind;
      status?: MediaStatus;
      withProblem?: boolean;
      ids?: readonly number[];
      offset?: number;
      limit?: number;
    } = {},
  ): {
    total: number;
    items: MediaRow[];
  } {
    const where: string[] = [];
    const params: unknown[] = [];
    if (o.kind) {
      where.push('kind = ?');
      params.push(o.kind);
    }
    if (o.status) {
      where.push('status = ?');
      params.push(o.status);
    }
    if (o.withProblem) where.push('problem IS NOT NULL');
    if (o.ids) {
      // One JSON parameter, however many ids.
      where.push('id IN (SELECT value FROM json_each(?))');
      params.push(JSON.stringify(o.ids));
    }
    const w = where.length ? `WHERE ${where.join(' AND ')}` : '';
    const total = (this.db.prepare(`SELECT count(*) AS n FROM media ${w}`).get(...params) as { n: number }).n;
    const rows = this.db
      .prepare(`SELECT * FROM media ${w} ORDER BY id LIMIT ? OFFSET ?`)
      .all(...params, o.limit ?? 200, o.offset ?? 0) as Raw[];
    return { total, items: rows.map(toRow) };
  }

  counts(): { images: number; videos: number; frames: number; failed: number } {
    return this.db
      .prepare(
        `SELECT coalesce(sum(kind = 'image' AND status = 'done'), 0) AS images, coalesce(sum(kind = 'video' AND status = 'done'), 0) AS videos,
         coalesce(sum(frame_count), 0) AS frames, coalesce(sum(status = 'failed'), 0) AS failed FROM media`,
      )
      .get() as { images: number; videos: number; frames: number; failed: number };
  }

  /** Sampled frames of the readable (done) items: what feature extraction and FUNGI cover. */
  doneFrames(): number {
    return this.db
      .prepare(`SELECT coalesce(sum(frame_count), 0) FROM media WHERE status = 'done'`)
      .pluck()
      .get() as number;
  }

  remove(id: number): void {
    this.db.prepare(`DELETE FROM media WHERE id = ?`).run(id);
  }
}

/** The source file's displayed size (rotation applied), for masks written at the source resolution. */
export function sourceSize(m: MediaRow): { width: number; height: number } {
  const p = (m.probe ?? {}) as { width?: number; height?: number; rotation?: number };
  return sourceFrameSize({ ...p, frameWidth: m.frameWidth as number, frameHeight: m.frameHeight as number });
}
