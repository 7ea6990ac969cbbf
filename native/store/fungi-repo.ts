/**
 * FUNGI feature runs (model + settings + code version = provenance, the SimCLR negative batch and the PCA fitted
 * on the run) and per-frame vectors: the concatenation [embedding, KL, DINO, SimCLR], each part L2-normalised, f16.
 */
import type { Db } from './db.js';
import { f32, u16 } from './features-repo.js';

export interface FungiRunRow {
  id: number;
  modelId: number;
  modelSha256: string;
  settings: Record<string, unknown>;
  /** Length of a stored vector. */
  dim: number;
  codeVersion: string;
  negativeFrames: { mediaId: number; frameIdx: number }[] | null;
  pcaDim: number | null;
  pcaItems: number | null;
  createdAt: string;
}

const toBlob = (a: Float32Array | Uint16Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

export class FungiRepository {
  constructor(private readonly db: Db) {}

  ensureRun(r: {
    modelId: number;
    modelSha256: string;
    settings: Record<string, unknown>;
    dim: number;
    codeVersion: string;
  }): FungiRunRow {
    const settings = JSON.stringify(r.settings);
    this.db
      .prepare(
        `INSERT OR IGNORE INTO fungi_runs (model_id, model_sha256, settings, dim, code_version, created_at)
         VALUES (?, ?, ?, ?, ?, ?)`,
      )
      .run(r.modelId, r.modelSha256, settings, r.dim, r.codeVersion, new Date().toISOString());
    const id = this.db
      .prepare(`SELECT id FROM fungi_runs WHERE model_sha256 = ? AND settings = ? AND code_version = ?`)
      .pluck()
      .get(r.modelSha256, settings, r.codeVersion) as number;
    return this.run(id) as FungiRunRow;
  }

  run(id: number): FungiRunRow | undefined {
    const r = this.db.prepare(`SELECT * FROM fungi_runs WHERE id = ?`).get(id) as Record<string, unknown> | undefined;
    if (!r) return undefined;
    return {
      id: r.id as number,
      modelId: r.model_id as number,
      modelSha256: r.model_sha256 as string,
      settings: JSON.parse(r.settings as string) as Record<string, unknown>,
      dim: r.dim as number,
      codeVersion: r.code_version as string,
      negativeFrames: r.negative_frames
        ? (JSON.parse(r.negative_frames as string) as FungiRunRow['negativeFrames'])
        : null,
      pcaDim: (r.pca_dim as number | null) ?? null,
      pcaItems: (r.pca_items as number | null) ?? null,
      createdAt: r.created_at as string,
    };
  }

  runs(): FungiRunRow[] {
    return (this.db.prepare(`SELECT id FROM fungi_runs ORDER BY id`).pluck().all() as number[]).map(
      (id) => this.run(id) as FungiRunRow,
    );
  }

  /** The run of a model with the most frames (the latest among equals): what retrieval and maps use. */
  bestRunOf(modelId: number): FungiRunRow | undefined {
    const id = this.db
      .prepare(
        `SELECT r.id FROM fungi_runs r WHERE r.model_id = ?
         ORDER BY (SELECT count(*) FROM fungi_features f WHERE f.run_id = r.id) DESC, r.id DESC LIMIT 1`,
      )
      .pluck()
      .get(modelId) as number | undefined;
    return id === undefined ? undefined : this.run(id);
  }

  setNegatives(runId: number, frames: { mediaId: number; frameIdx: number }[], latents: Float32Array): void {
    this.db
      .prepare(`UPDATE fungi_runs SET negatives = ?, negative_frames = ? WHERE id = ?`)
      .run(toBlob(latents), JSON.stringify(frames), runId);
  }

  negatives(runId: number): Float32Array | null {
    const b = this.db.prepare(`SELECT negatives FROM fungi_runs WHERE id = ?`).pluck().get(runId) as Buffer | null;
    return b ? f32(b) : null;
  }

  /** PCA as [mean (C), components (k × C)] f32. */
  setPca(runId: number, pca: Float32Array, dim: number, items: number): void {
    this.db
      .prepare(`UPDATE fungi_runs SET pca = ?, pca_dim = ?, pca_items = ? WHERE id = ?`)
      .run(toBlob(pca), dim, items, runId);
  }

  pca(runId: number): Float32Array | null {
    const b = this.db.prepare(`SELECT pca FROM fungi_runs WHERE id = ?`).pluck().get(runId) as Buffer | null;
    return b ? f32(b) : null;
  }

  doneFrames(runId: number, mediaId: number): Set<number> {
    return new Set(
      this.db
        .prepare(`SELECT frame_idx FROM fungi_features WHERE run_id = ? AND media_id = ?`)
        .pluck()
        .all(runId, mediaId) as number[],
    );
  }

  putMany(runId: number, rows: readonly { mediaId: number; frameIdx: number; vec: Uint16Array }[]): void {
    const ins = this.db.prepare(
      `INSERT OR REPLACE INTO fungi_features (run_id, media_id, frame_idx, vec) VALUES (?, ?, ?, ?)`,
    );
    this.db.transaction(() => {
      for (const r of rows) ins.run(runId, r.mediaId, r.frameIdx, toBlob(r.vec));
    })();
  }

  count(runId: number): number {
    return this.db.prepare(`SELECT count(*) FROM fungi_features WHERE run_id = ?`).pluck().get(runId) as number;
  }

  /**
   * Which frames a run holds and which PCA projects them, as one string (count and a checksum of the keys, the PCA's
   * size and item count): changes when frames come or go or the PCA is refitted on other items.
   */
  keysVersion(runId: number): string {
    const r = this.db
      .prepare(
        `SELECT count(*) AS n, total(f.media_id * 1000003 + f.frame_idx) AS s,
                (SELECT coalesce(pca_dim, 0) || '/' || coalesce(pca_items, 0) FROM fungi_runs WHERE id = ?) AS p
           FROM fungi_features f WHERE f.run_id = ?`,
      )
      .get(runId, runId) as { n: number; s: number; p: string | null };
    return `${r.n}:${r.s}:${r.p ?? ''}`;
  }

  /** Every vector of a run (f16), in (media, frame) order. */
  all(runId: number): { mediaId: number; frameIdx: number; vec: Uint16Array }[] {
    const rows = this.db
      .prepare(`SELECT media_id, frame_idx, vec FROM fungi_features WHERE run_id = ? ORDER BY media_id, frame_idx`)
      .all(runId) as { media_id: number; frame_idx: number; vec: Buffer }[];
    return rows.map((r) => ({ mediaId: r.media_id, frameIdx: r.frame_idx, vec: u16(r.vec) }));
  }
}
