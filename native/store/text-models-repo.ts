/**
 * The project's text models (migration 11): language models (registered where they are, by their feature-cache
 * key) and ShareLock heads (copied into models/text/, by SHA-256). What each is lives in its manifest (JSON).
 */
import type { Db } from './db.js';

export type TextModelKind = 'llm' | 'sharelock-head';

export interface TextModelRow {
  id: number;
  kind: TextModelKind;
  name: string;
  /** LLM: the feature-cache key (textModelKey); head: the file's SHA-256. */
  key: string;
  /** LLM: the absolute path of the user's file; head: a path relative to the project folder. */
  file: string;
  bytes: number;
  manifest: Record<string, unknown>;
  createdAt: string;
}

/** The row as SQLite returns it: the manifest as JSON text, the time in snake case. */
type Raw = Omit<TextModelRow, 'manifest' | 'createdAt'> & { manifest: string; created_at: string };

const toRow = ({ manifest, created_at, ...r }: Raw): TextModelRow => ({
  ...r,
  manifest: JSON.parse(manifest) as Record<string, unknown>,
  createdAt: created_at,
});

export class TextModelsRepository {
  constructor(private readonly db: Db) {}

  /** Registers a model; one of the same kind and key already there is returned instead (a repeated import). */
  insert(m: Omit<TextModelRow, 'id' | 'createdAt'>): { row: TextModelRow; existed: boolean } {
    const there = this.byKey(m.kind, m.key);
    if (there) return { row: there, existed: true };
    const info = this.db
      .prepare(
        `INSERT INTO text_models (kind, name, key, file, bytes, manifest, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(m.kind, m.name, m.key, m.file, m.bytes, JSON.stringify(m.manifest), new Date().toISOString());
    return { row: this.get(Number(info.lastInsertRowid)) as TextModelRow, existed: false };
  }

  get(id: number): TextModelRow | undefined {
    const r = this.db.prepare(`SELECT * FROM text_models WHERE id = ?`).get(id) as Raw | undefined;
    return r && toRow(r);
  }

  byKey(kind: TextModelKind, key: string): TextModelRow | undefined {
    const r = this.db.prepare(`SELECT * FROM text_models WHERE kind = ? AND key = ?`).get(kind, key) as Raw | undefined;
    return r && toRow(r);
  }

  list(kind?: TextModelKind): TextModelRow[] {
    const rows = kind
      ? (this.db.prepare(`SELECT * FROM text_models WHERE kind = ? ORDER BY id`).all(kind) as Raw[])
      : (this.db.prepare(`SELECT * FROM text_models ORDER BY id`).all() as Raw[]);
    return rows.map(toRow);
  }

  remove(id: number): void {
    this.db.prepare(`DELETE FROM text_models WHERE id = ?`).run(id);
  }
}
