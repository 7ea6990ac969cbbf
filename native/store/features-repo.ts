/**
 * Feature runs (model + input size + preprocessing = provenance) and per-frame features: CLS as f32, patch tokens
 * as f16 (half the bytes; cosine similarities move by less than 1e-3). Memory banks: labelled patch vectors.
 */
import type { Db } from './db.js';

export interface FeatureRunRow {
  id: number;
  modelId: number;
  modelSha256: string;
  inputSize: number;
  grid: number;
  dim: number;
  preprocessing: Record<string, unknown>;
  codeVersion: string;
  createdAt: string;
}

export interface BankRow {
  id: number;
  name: string;
  runId: number;
  classes: string[];
  settings: Record<string, unknown>;
  patches: number;
  createdAt: string;
}

const toBlob = (a: Float32Array | Uint16Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

export function f32(blob: Buffer): Float32Array {
  const out = new Float32Array(blob.length / 4);
  new Uint8Array(out.buffer).set(blob);
  return out;
}

export function u16(blob: Buffer): Uint16Array {
  const out = new Uint16Array(blob.length / 2);
  new Uint8Array(out.buffer).set(blob);
  return out;
}

export class FeaturesRepository {
  constructor(private readonly db: Db) {}

  /** The run for this provenance, created if new. */
  ensureRun(r: Omit<FeatureRunRow, 'id' | 'createdAt'>): FeatureRunRow {
    const pre = JSON.stringify(r.preprocessing);
    this.db
      .prepare(
        `INSERT OR IGNORE INTO feature_runs (model_id, model_sha256, input_size, grid, dim, preprocessing, code_version, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(r.modelId, r.modelSha256, r.inputSize, r.grid, r.dim, pre, r.codeVersion, new Date().toISOString());
    const id = this.db
      .prepare(`SELECT id FROM feature_runs WHERE model_sha256 = ? AND input_size = ? AND preprocessing = ?`)
      .pluck()
      .get(r.modelSha256, r.inputSize, pre) as number;
    return this.run(id) as FeatureRunRow;
  }

  run(id: number): FeatureRunRow | undefined {
    const r = this.db.prepare(`SELECT * FROM feature_runs WHERE id = ?`).get(id) as Record<string, unknown> | undefined;
    if (!r) return undefined;
    return {
      id: r.id as number,
      modelId: r.model_id as number,
      modelSha256: r.model_sha256 as string,
      inputSize: r.input_size as number,
      grid: r.grid as number,
      dim: r.dim as number,
      preprocessing: JSON.parse(r.preprocessing as string) as Record<string, unknown>,
      codeVersion: r.code_version as string,
      createdAt: r.created_at as string,
    };
  }

  runs(): FeatureRunRow[] {
    return (this.db.prepare(`SELECT id FROM feature_runs ORDER BY id`).pluck().all() as number[]).map(
      (id) => this.run(id) as FeatureRunRow,
    );
  }

  /** Frames of a media item already extracted in a run. */
  doneFrames(runId: number, mediaId: number): Set<number> {
    return new Set(
      this.db
        .prepare(`SELECT frame_idx FROM feature_cls WHERE run_id = ? AND media_id = ?`)
        .pluck()
        .all(runId, mediaId) as number[],
    );
  }

  putMany(
    runId: number,
    rows: readonly { mediaId: number; frameIdx: number; cls: Float32Array; patches: Uint16Array }[],
  ): void {
    // Every frame has its row in both tables, written together.
    const ins = this.db.prepare(
      `INSERT OR REPLACE INTO features (run_id, media_id, frame_idx, patches) VALUES (?, ?, ?, ?)`,
    );
    const insCls = this.db.prepare(
      `INSERT OR REPLACE INTO feature_cls (run_id, media_id, frame_idx, cls) VALUES (?, ?, ?, ?)`,
    );
    this.db.transaction(() => {
      for (const r of rows) {
        ins.run(runId, r.mediaId, r.frameIdx, toBlob(r.patches));
        insCls.run(runId, r.mediaId, r.frameIdx, toBlob(r.cls));
      }
    })();
  }

  get(runId: number, mediaId: number, frameIdx: number): { cls: Float32Array; patches: Uint16Array } | undefined {
    const r = this.db
      .prepare(
        `SELECT c.cls, f.patches FROM features f
           JOIN feature_cls c USING (run_id, media_id, frame_idx)
          WHERE f.run_id = ? AND f.media_id = ? AND f.frame_idx = ?`,
      )
      .get(runId, mediaId, frameIdx) as { cls: Buffer; patches: Buffer } | undefined;
    return r && { cls: f32(r.cls), patches: u16(r.patches) };
  }

  /** Every CLS vector of a run, in (media, frame) order. */
  allCls(runId: number): { mediaId: number; frameIdx: number; cls: Float32Array }[] {
    const rows = this.db
      .prepare(`SELECT media_id, frame_idx, cls FROM feature_cls WHERE run_id = ? ORDER BY media_id, frame_idx`)
      .all(runId) as {
      media_id: number;
      frame_idx: number;
      cls: Buffer;
    }[];
    return rows.map((r) => ({ mediaId: r.media_id, frameIdx: r.frame_idx, cls: f32(r.cls) }));
  }

  /**
   * The size in bytes of each frame's patch tokens (in key order; frames of an aspect-preserving run differ by
   * media) and then each (stride-th) frame's patch tokens, read from one snapshot (a features job may be writing
   * meanwhile), so the sizes match what is visited.
   */
  visitPatches(
    runId: number,
    begin: (frameBytes: number[]) => number,
    each: (row: { mediaId: number; frameIdx: number; patches: Uint16Array }) => void,
  ): void {
    this.db.transaction(() => {
      const sizes = this.db
        .prepare(`SELECT length(patches) FROM features WHERE run_id = ? ORDER BY media_id, frame_idx`)
        .pluck()
        .all(runId) as number[];
      // `begin` answers with the stride: every stride-th frame (in key order) is visited.
      const stride = Math.max(1, begin(sizes));
      let i = 0;
      for (const r of this.iteratePatches(runId)) if (i++ % stride === 0) each(r);
    })();
  }

  /** Patch tokens of every frame of a run, streamed (they can be large). */
  *iteratePatches(runId: number): Generator<{ mediaId: number; frameIdx: number; patches: Uint16Array }> {
    const it = this.db
      .prepare(`SELECT media_id, frame_idx, patches FROM features WHERE run_id = ? ORDER BY media_id, frame_idx`)
      .iterate(runId) as IterableIterator<{
      media_id: number;
      frame_idx: number;
      patches: Buffer;
    }>;
    for (const r of it) yield { mediaId: r.media_id, frameIdx: r.frame_idx, patches: u16(r.patches) };
  }

  // Key-only questions go to the narrow feature_cls (same keys as features, see putMany).
  count(runId: number): number {
    return this.db.prepare(`SELECT count(*) FROM feature_cls WHERE run_id = ?`).pluck().get(runId) as number;
  }

  /** Which frames a run holds, as one string (count and a checksum of the keys): changes when frames come or go. */
  keysVersion(runId: number): string {
    const r = this.db
      .prepare(`SELECT count(*) AS n, total(media_id * 1000003 + frame_idx) AS s FROM feature_cls WHERE run_id = ?`)
      .get(runId) as { n: number; s: number };
    return `${r.n}:${r.s}`;
  }

  /** How many items a bank's examples came from are no longer in the library (bank items outlive their media). */
  bankMissingMedia(bankId: number): number {
    return this.db
      .prepare(
        `SELECT count(DISTINCT media_id) FROM bank_items WHERE bank_id = ? AND media_id NOT IN (SELECT id FROM media)`,
      )
      .pluck()
      .get(bankId) as number;
  }

  createBank(b: { name: string; runId: number; classes: string[]; settings: Record<string, unknown> }): BankRow {
    const info = this.db
      .prepare(`INSERT INTO banks (name, run_id, classes, settings, created_at) VALUES (?, ?, ?, ?, ?)`)
      .run(b.name, b.runId, JSON.stringify(b.classes), JSON.stringify(b.settings), new Date().toISOString());
    return this.bank(Number(info.lastInsertRowid)) as BankRow;
  }

  addBankItem(
    bankId: number,
    item: { mediaId: number; frameIdx: number; vectors: Uint16Array; labels: Float32Array; n: number },
  ): void {
    this.db.transaction(() => {
      const previous =
        (this.db
          .prepare(`SELECT n FROM bank_items WHERE bank_id = ? AND media_id = ? AND frame_idx = ?`)
          .pluck()
          .get(bankId, item.mediaId, item.frameIdx) as number | undefined) ?? 0;
      this.db
        .prepare(
          `INSERT OR REPLACE INTO bank_items (bank_id, media_id, frame_idx, n, vectors, labels) VALUES (?, ?, ?, ?, ?, ?)`,
        )
        .run(bankId, item.mediaId, item.frameIdx, item.n, toBlob(item.vectors), toBlob(item.labels));
      // Kept up to date incrementally: a full recount per item would make building a large bank quadratic.
      this.db.prepare(`UPDATE banks SET patches = patches - ? + ? WHERE id = ?`).run(previous, item.n, bankId);
    })();
  }

  setBankClasses(id: number, classes: string[]): void {
    this.db.prepare(`UPDATE banks SET classes = ? WHERE id = ?`).run(JSON.stringify(classes), id);
  }

  bank(id: number): BankRow | undefined {
    const r = this.db.prepare(`SELECT * FROM banks WHERE id = ?`).get(id) as Record<string, unknown> | undefined;
    if (!r) return undefined;
    return {
      id: r.id as number,
      name: r.name as string,
      runId: r.run_id as number,
      classes: JSON.parse(r.classes as string) as string[],
      settings: JSON.parse(r.settings as string) as Record<string, unknown>,
      patches: r.patches as number,
      createdAt: r.created_at as string,
    };
  }

  banks(): BankRow[] {
    return (this.db.prepare(`SELECT id FROM banks ORDER BY id`).pluck().all() as number[]).map(
      (id) => this.bank(id) as BankRow,
    );
  }

  bankItems(
    bankId: number,
  ): { mediaId: number; frameIdx: number; n: number; vectors: Uint16Array; labels: Float32Array }[] {
    const rows = this.db
      .prepare(
        `SELECT media_id, frame_idx, n, vectors, labels FROM bank_items WHERE bank_id = ? ORDER BY media_id, frame_idx`,
      )
      .all(bankId) as {
      media_id: number;
      frame_idx: number;
      n: number;
      vectors: Buffer;
      labels: Buffer;
    }[];
    return rows.map((r) => ({
      mediaId: r.media_id,
      frameIdx: r.frame_idx,
      n: r.n,
      vectors: u16(r.vectors),
      labels: f32(r.labels),
    }));
  }
}
