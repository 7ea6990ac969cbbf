import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { FlaneurError } from '../../../native/api/errors.js';
import { configure } from '../../../native/store/db.js';
import { MIGRATIONS, SCHEMA_VERSION } from '../../../native/store/migrations.js';
import { Project } from '../../../native/store/project.js';
import { tmpDir } from '../../helpers/tmp.js';

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return err instanceof FlaneurError ? err.code : `untyped: ${(err as Error).message}`;
  }
  return 'no error';
}

describe('projects', () => {
  const root = tmpDir();

  it('creates a project folder with its database in WAL mode, cache/ and checkpoints/', () => {
    const dir = path.join(root, 'new-project');
    const p = Project.create(dir, { name: 'Street', appVersion: 'test' });
    expect(p.meta.name).toBe('Street');
    expect(p.schemaVersion).toBe(SCHEMA_VERSION);
    expect(p.db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(fs.existsSync(path.join(dir, 'cache'))).toBe(true);
    expect(fs.existsSync(path.join(dir, 'checkpoints'))).toBe(true);
    p.close();
    const again = Project.open(dir);
    expect(again.meta.id).toBe(p.meta.id);
    again.close();
  });

  it('lists jobs newest first, filtered by state and by kind together', () => {
    const p = Project.create(path.join(root, 'job-list'), { appVersion: 'test' });
    const progress = { phase: 'x', done: 0, total: null, unit: 'items', rate: null, etaS: null };
    const add = (kind: string, state: 'done' | 'failed') => {
      const job = p.jobs.insert({ kind, title: kind, args: {}, progress });
      p.jobs.setState(job.id, state);
      return job.id;
    };
    const a = add('train.unco', 'done');
    add('train.dino', 'done');
    add('train.unco', 'failed');
    const d = add('train.uncoImport', 'done');
    const ids = (o: Parameters<typeof p.jobs.list>[0]) => p.jobs.list(o).map((j) => j.id);
    expect(ids({ states: ['done'], kinds: ['train.unco', 'train.uncoImport'] })).toEqual([d, a]);
    expect(ids({ kinds: ['train.unco'] })).toHaveLength(2);
    expect(ids({ states: ['done'] })).toHaveLength(3);
    expect(ids({ kinds: [], states: [] })).toHaveLength(4);
    expect(ids({ kinds: ['train.unco', 'train.uncoImport'], limit: 1 })).toEqual([d]);
    p.close();
  });

  it('opens a project given its project.sqlite file', () => {
    const dir = path.join(root, 'by-file');
    Project.create(dir, { appVersion: 'test' }).close();
    const p = Project.open(path.join(dir, 'project.sqlite'));
    expect(p.dir).toBe(dir);
    p.close();
  });

  it('refuses to create a project where one exists', () => {
    const dir = path.join(root, 'twice');
    Project.create(dir, { appVersion: 'test' }).close();
    expect(codeOf(() => Project.create(dir, { appVersion: 'test' }))).toBe('PROJECT_EXISTS');
  });

  it('says a folder without project.sqlite is not a project', () => {
    const dir = path.join(root, 'photos');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'a.jpg'), 'x');
    expect(codeOf(() => Project.open(dir))).toBe('NOT_A_PROJECT');
  });

  it('says a missing folder is not found', () => {
    expect(codeOf(() => Project.open(path.join(root, 'nope')))).toBe('NOT_FOUND');
  });

  it('says a text file named project.sqlite is not a project', () => {
    const dir = path.join(root, 'fake');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'project.sqlite'), 'hello, this is not a database at all'.repeat(100));
    expect(codeOf(() => Project.open(dir))).toBe('NOT_A_PROJECT');
  });

  it("says another application's SQLite database is not a project", () => {
    const dir = path.join(root, 'other-db');
    fs.mkdirSync(dir);
    const db = new Database(path.join(dir, 'project.sqlite'));
    db.exec('CREATE TABLE t (x)');
    db.close();
    expect(codeOf(() => Project.open(dir))).toBe('NOT_A_PROJECT');
  });

  it('refuses a project written by a newer app, without touching it', () => {
    const dir = path.join(root, 'future');
    Project.create(dir, { appVersion: 'test' }).close();
    const file = path.join(dir, 'project.sqlite');
    const db = new Database(file);
    db.pragma(`user_version = ${SCHEMA_VERSION + 5}`);
    db.close();
    const before = fs.readFileSync(file);
    let message = '';
    try {
      Project.open(dir);
    } catch (err) {
      expect((err as FlaneurError).code).toBe('PROJECT_TOO_NEW');
      message = (err as Error).message;
    }
    expect(message).toMatch(/newer Flaneur/);
    expect(fs.readFileSync(file).equals(before)).toBe(true);
  });

  it('migrates a schema-7 project: CLS vectors move to their own table, patches stay, nothing is lost', () => {
    // A project as the app of schema 7 wrote it: migrations 1-7 only, one feature row with CLS in `features`.
    const dir = path.join(root, 'schema7');
    fs.mkdirSync(dir);
    const db = new Database(path.join(dir, 'project.sqlite'));
    configure(db);
    for (const m of MIGRATIONS.filter((x) => x.version <= 7)) db.exec(m.sql);
    db.pragma('user_version = 7');
    db.pragma('application_id = 0x464c4e52');
    db.prepare(
      `INSERT INTO project (singleton, id, name, created_at, created_by) VALUES (1, 'p7', 'old', 'then', 'test')`,
    ).run();
    db.prepare(
      `INSERT INTO models (id, name, sha256, file, bytes, manifest, created_at) VALUES (1, 'm', ?, 'f', 1, '{}', 't')`,
    ).run('a'.repeat(64));
    db.prepare(
      `INSERT INTO media (id, path, kind, bytes, mtime_ms, status, added_at, updated_at) VALUES (1, '/v.mp4', 'video', 1, 0, 'done', 't', 't')`,
    ).run();
    db.prepare(
      `INSERT INTO feature_runs (id, model_id, model_sha256, input_size, grid, dim, preprocessing, code_version, created_at)
       VALUES (1, 1, ?, 224, 1, 2, '{}', 'old', 't')`,
    ).run('a'.repeat(64));
    const blob = (a: Float32Array | Uint16Array) => Buffer.from(a.buffer);
    db.prepare(`INSERT INTO features (run_id, media_id, frame_idx, cls, patches) VALUES (1, 1, 4, ?, ?)`).run(
      blob(Float32Array.of(0.25, -2)),
      blob(Uint16Array.of(7, 9)),
    );
    db.close();

    const p = Project.open(dir);
    expect(p.schemaVersion).toBe(SCHEMA_VERSION);
    const f = p.features.get(1, 1, 4);
    expect(Array.from(f?.cls ?? [])).toEqual([0.25, -2]);
    expect(Array.from(f?.patches ?? [])).toEqual([7, 9]);
    expect(p.features.count(1)).toBe(1);
    expect(p.features.allCls(1).map((r) => r.frameIdx)).toEqual([4]);
    const columns = (p.db.prepare(`PRAGMA table_info(features)`).all() as { name: string }[]).map((c) => c.name);
    expect(columns).not.toContain('cls');
    p.close();
  });
});
