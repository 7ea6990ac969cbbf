/** Tracks: a run per (media, model, parameters); per frame and object a box and the patch-grid mask. */
import type { Db } from './db.js';

export interface TrackBox {
  object: number;
  frameIdx: number;
  box: [number, number, number, number];
  area: number;
  mask: Uint8Array;
}

/** A track run's patch grid: rows and columns (runs from before aspect-preserving tracking are square). */
export interface TrackGrid {
  gridH: number;
  gridW: number;
}

function gridOf(r: Record<string, unknown>): TrackGrid {
  return { gridH: r.grid as number, gridW: (r.grid_w as number | null) ?? (r.grid as number) };
}

export class TracksRepository {
  constructor(private readonly db: Db) {}

  createRun(r: { mediaId: number; modelId: number; params: Record<string, unknown>; grid: TrackGrid }): number {
    const info = this.db
      .prepare(
        `INSERT INTO track_runs (media_id, model_id, params, grid, grid_w, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
      )
      .run(r.mediaId, r.modelId, JSON.stringify(r.params), r.grid.gridH, r.grid.gridW, new Date().toISOString());
    return Number(info.lastInsertRowid);
  }

  run(
    id: number,
  ): { id: number; mediaId: number; modelId: number; params: Record<string, unknown>; grid: TrackGrid } | undefined {
    const r = this.db.prepare(`SELECT * FROM track_runs WHERE id = ?`).get(id) as Record<string, unknown> | undefined;
    return (
      r && {
        id: r.id as number,
        mediaId: r.media_id as number,
        modelId: r.model_id as number,
        params: JSON.parse(r.params as string),
        grid: gridOf(r),
      }
    );
  }

  addFrame(runId: number, boxes: readonly TrackBox[]): void {
    const ins = this.db.prepare(
      `INSERT OR REPLACE INTO track_boxes (run_id, object, frame_idx, x, y, w, h, area, mask) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.db.transaction(() => {
      for (const b of boxes)
        ins.run(runId, b.object, b.frameIdx, b.box[0], b.box[1], b.box[2], b.box[3], b.area, Buffer.from(b.mask));
    })();
  }

  runsOf(
    mediaId: number,
  ): { id: number; modelId: number; params: Record<string, unknown>; grid: TrackGrid; createdAt: string }[] {
    const rows = this.db.prepare(`SELECT * FROM track_runs WHERE media_id = ? ORDER BY id`).all(mediaId) as Record<
      string,
      unknown
    >[];
    return rows.map((r) => ({
      id: r.id as number,
      modelId: r.model_id as number,
      params: JSON.parse(r.params as string),
      grid: gridOf(r),
      createdAt: r.created_at as string,
    }));
  }

  lastFrame(runId: number): number {
    return (
      (this.db
        .prepare(`SELECT coalesce(max(frame_idx), -1) FROM track_boxes WHERE run_id = ?`)
        .pluck()
        .get(runId) as number) ?? -1
    );
  }

  /** Every box of a run, or those of one frame. */
  boxes(runId: number, frameIdx?: number): TrackBox[] {
    const rows = (
      frameIdx === undefined
        ? this.db.prepare(`SELECT * FROM track_boxes WHERE run_id = ? ORDER BY frame_idx, object`).all(runId)
        : this.db
            .prepare(`SELECT * FROM track_boxes WHERE run_id = ? AND frame_idx = ? ORDER BY object`)
            .all(runId, frameIdx)
    ) as Record<string, unknown>[];
    return rows.map((r) => ({
      object: r.object as number,
      frameIdx: r.frame_idx as number,
      box: [r.x as number, r.y as number, r.w as number, r.h as number],
      area: r.area as number,
      mask: new Uint8Array(r.mask as Buffer),
    }));
  }
}
