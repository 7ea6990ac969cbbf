/** Embedding maps: 2-D coordinates (and a cluster id) per frame of a feature source, with how they were made. */
import type { Db } from './db.js';
import { f32 } from './features-repo.js';

export interface MapRow {
  id: number;
  runId: number;
  features: 'embedding' | 'fungi';
  sourceRun: number;
  method: string;
  params: Record<string, unknown>;
  points: number;
  createdAt: string;
}

export interface MapData {
  /** mediaId, frameIdx pairs. */
  keys: Int32Array;
  /** x, y pairs. */
  coords: Float32Array;
  clusters: Int32Array;
}

const i32 = (b: Buffer) => {
  const out = new Int32Array(b.length / 4);
  new Uint8Array(out.buffer).set(b);
  return out;
};
const blob = (a: Int32Array | Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

export class MapsRepository {
  constructor(private readonly db: Db) {}

  create(m: Omit<MapRow, 'id' | 'createdAt' | 'points'>, data: MapData): MapRow {
    const info = this.db
      .prepare(
        `INSERT INTO maps (run_id, features, source_run, method, params, points, keys, coords, clusters, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        m.runId,
        m.features,
        m.sourceRun,
        m.method,
        JSON.stringify(m.params),
        data.coords.length / 2,
        blob(data.keys),
        blob(data.coords),
        blob(data.clusters),
        new Date().toISOString(),
      );
    return this.get(Number(info.lastInsertRowid)) as MapRow;
  }

  get(id: number): MapRow | undefined {
    const r = this.db
      .prepare(`SELECT id, run_id, features, source_run, method, params, points, created_at FROM maps WHERE id = ?`)
      .get(id) as Record<string, unknown> | undefined;
    if (!r) return undefined;
    return {
      id: r.id as number,
      runId: r.run_id as number,
      features: r.features as MapRow['features'],
      sourceRun: r.source_run as number,
      method: r.method as string,
      params: JSON.parse(r.params as string) as Record<string, unknown>,
      points: r.points as number,
      createdAt: r.created_at as string,
    };
  }

  list(): MapRow[] {
    return (this.db.prepare(`SELECT id FROM maps ORDER BY id`).pluck().all() as number[]).map(
      (id) => this.get(id) as MapRow,
    );
  }

  data(id: number): MapData | undefined {
    const r = this.db.prepare(`SELECT keys, coords, clusters FROM maps WHERE id = ?`).get(id) as
      | { keys: Buffer; coords: Buffer; clusters: Buffer }
      | undefined;
    return r && { keys: i32(r.keys), coords: f32(r.coords), clusters: i32(r.clusters) };
  }
}
