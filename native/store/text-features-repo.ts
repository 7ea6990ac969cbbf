/** Text features (float32 vectors) per (language model, text): the cache of native/text/feature-cache.ts. */
import type { Db } from './db.js';

export class TextFeaturesRepository {
  constructor(private readonly db: Db) {}

  /** The cached vectors of those texts that have one (texts without are absent from the map). */
  get(model: string, texts: readonly string[]): Map<string, Float32Array> {
    const out = new Map<string, Float32Array>();
    const stmt = this.db.prepare(`SELECT vector FROM text_features WHERE model = ? AND text = ?`);
    for (const text of new Set(texts)) {
      const row = stmt.get(model, text) as { vector: Buffer } | undefined;
      if (!row) continue;
      const b = row.vector;
      // a copy: the Buffer may not be 4-byte aligned
      out.set(text, new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)));
    }
    return out;
  }

  /** Stores vectors in one transaction (replacing any of the same model and text). */
  put(model: string, entries: Iterable<readonly [string, Float32Array]>): void {
    const stmt = this.db.prepare(
      `INSERT OR REPLACE INTO text_features (model, text, dim, vector, created_at) VALUES (?, ?, ?, ?, ?)`,
    );
    const at = new Date().toISOString();
    this.db.transaction(() => {
      for (const [text, v] of entries)
        stmt.run(model, text, v.length, Buffer.from(v.buffer, v.byteOffset, v.byteLength), at);
    })();
  }

  count(model: string): number {
    return (this.db.prepare(`SELECT COUNT(*) AS n FROM text_features WHERE model = ?`).get(model) as { n: number }).n;
  }

  /** Forgets a model's features (e.g. the model file changed). */
  deleteModel(model: string): number {
    return this.db.prepare(`DELETE FROM text_features WHERE model = ?`).run(model).changes;
  }
}
