/** The project's model registry: one row per imported weights file (content-addressed by SHA-256). */
import type { Db } from './db.js';

export interface ModelRow {
  id: number;
  name: string;
  sha256: string;
  /** Path relative to the project folder. */
  file: string;
  bytes: number;
  manifest: Record<string, unknown>;
  createdAt: string;
}

interface Raw {
  id: number;
  name: string;
  sha256: string;
  file: string;
  bytes: number;
  manifest: string;
  created_at: string;
}

const toRow = (r: Raw): ModelRow => ({
  id: r.id,
  name: r.name,
  sha256: r.sha256,
  file: r.file,
  bytes: r.bytes,
  manifest: JSON.parse(r.manifest) as Record<string, unknown>,
  createdAt: r.created_at,
});

export class ModelRepository {
  constructor(private readonly db: Db) {}

  insert(m: Omit<ModelRow, 'id' | 'createdAt'>): ModelRow {
    const info = this.db
      .prepare(`INSERT INTO models (name, sha256, file, bytes, manifest, created_at) VALUES (?, ?, ?, ?, ?, ?)`)
      .run(m.name, m.sha256, m.file, m.bytes, JSON.stringify(m.manifest), new Date().toISOString());
    return this.get(Number(info.lastInsertRowid)) as ModelRow;
  }

  get(id: number): ModelRow | undefined {
    const r = this.db.prepare(`SELECT * FROM models WHERE id = ?`).get(id) as Raw | undefined;
    return r && toRow(r);
  }

  bySha(sha256: string): ModelRow | undefined {
    const r = this.db.prepare(`SELECT * FROM models WHERE sha256 = ?`).get(sha256) as Raw | undefined;
    return r && toRow(r);
  }

  list(): ModelRow[] {
    return (this.db.prepare(`SELECT * FROM models ORDER BY id`).all() as Raw[]).map(toRow);
  }

  remove(id: number): void {
    this.db.prepare(`DELETE FROM models WHERE id = ?`).run(id);
  }
}
