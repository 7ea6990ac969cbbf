import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import type { CallResponse } from '../../../native/api/contract.js';
import { serializeError } from '../../../native/api/errors.js';
import { Engine } from '../../../native/engine/engine.js';
import { createEngineDispatcher } from '../../../native/engine/handlers.js';
import { fixturePath } from '../../helpers/fixtures.js';
import { tmpDir } from '../../helpers/tmp.js';

/** Writes garbage over the root page of `table` in a closed project database (as a failing disk or tool would). */
function damagePage(dbFile: string, table: string): void {
  const db = new Database(dbFile);
  // Pages still in the write-ahead log (a worker process that closed its connection last, or was stopped, leaves
  // one) would shadow the damaged page of the main file: fold them in first, so the garbage is what is read.
  db.pragma('wal_checkpoint(TRUNCATE)');
  const { rootpage } = db.prepare(`SELECT rootpage FROM sqlite_master WHERE name = ?`).get(table) as {
    rootpage: number;
  };
  const pageSize = db.pragma('page_size', { simple: true }) as number;
  db.close();
  const fd = fs.openSync(dbFile, 'r+');
  const garbage = Buffer.alloc(pageSize);
  for (let i = 0; i < pageSize; i++) garbage[i] = (i * 7919 + 13) & 0xff;
  fs.writeSync(fd, garbage, 0, pageSize, (rootpage - 1) * pageSize);
  fs.closeSync(fd);
}

function engineOver(home: string) {
  const engine = new Engine({ home, backupIntervalMs: 0, runner: { autoResume: false } });
  const d = createEngineDispatcher(engine);
  const call = async (command: string, args: unknown) => (await d.dispatch(command, args)) as CallResponse;
  return { engine, call };
}

// Issue 15 item 7: a damaged page is reported at open (or on the first read) with the user's options.
describe('a damaged project database', () => {
  const home = tmpDir();
  const work = tmpDir();

  /** A project with one ingested video, closed and opened again so that its automatic backup holds the media. */
  async function project(name: string): Promise<string> {
    const dir = path.join(work, name);
    const { engine, call } = engineOver(home);
    expect((await call('project.create', { path: dir })).ok).toBe(true);
    await call('library.add', {
      paths: [fixturePath('synthetic', 'tour.mp4')],
      sampling: { policy: 'fps', fps: 1 },
      frameSize: { mode: 'short-side', size: 32 },
    });
    await engine.requireProject().runner.idle();
    await engine.close();
    const again = engineOver(home);
    expect((await again.call('project.open', { path: dir })).ok).toBe(true);
    await again.engine.backupSettled();
    const check = await again.call('project.check', {});
    expect(check).toMatchObject({ ok: true, result: { ok: true, tables: [], backup: { bytes: expect.any(Number) } } });
    await again.engine.close();
    return dir;
  }

  it('is refused at open, naming the damaged table, and the automatic backup restores it', async () => {
    const dir = await project('frames');
    damagePage(path.join(dir, 'project.sqlite'), 'frames');
    const { engine, call } = engineOver(home);
    const refused = await call('project.open', { path: dir });
    expect(refused.ok).toBe(false);
    if (refused.ok) return;
    expect(refused.error.code).toBe('PROJECT_DAMAGED');
    expect(refused.error.message).toMatch(/is damaged \(in frames\)\. Flaneur did not change it/);
    expect(refused.error.message).toMatch(/restore the automatic backup of \d{4}-\d\d-\d\d \d\d:\d\d UTC/);
    // frames holds the catalog: it cannot be rebuilt without it, and that is not offered
    expect(refused.error.message).not.toMatch(/rebuild/);
    expect((await call('project.rebuild', { path: dir })).ok).toBe(false);
    expect(engine.project).toBeNull();

    const restored = await call('project.restoreBackup', { path: dir });
    expect(restored.ok).toBe(true);
    const list = (await call('library.list', {})) as CallResponse<{ items: { frameCount: number }[] }>;
    expect(list.ok && list.result.items[0]?.frameCount).toBeGreaterThan(0);
    expect((await call('project.check', {})) as CallResponse<{ ok: boolean }>).toMatchObject({ result: { ok: true } });
    // the damaged file is kept beside it, never deleted
    expect(fs.readdirSync(dir).some((f) => f.startsWith('project.sqlite.damaged-'))).toBe(true);
    await engine.close();
  }, 60_000);

  it('offers to rebuild without a damaged derived table (track_runs), keeping the media', async () => {
    const dir = await project('tracks');
    damagePage(path.join(dir, 'project.sqlite'), 'track_runs');
    const { engine, call } = engineOver(home);
    const refused = await call('project.open', { path: dir });
    expect(refused.ok).toBe(false);
    if (refused.ok) return;
    expect(refused.error.message).toMatch(/\(in track_runs\)/);
    expect(refused.error.message).toMatch(/rebuild the project without the damaged tables/);
    const rebuilt = await call('project.rebuild', { path: dir });
    expect(rebuilt.ok).toBe(true);
    const list = (await call('library.list', {})) as CallResponse<{ items: { frameCount: number }[] }>;
    expect(list.ok && list.result.items[0]?.frameCount).toBeGreaterThan(0);
    expect((await call('project.check', {})) as CallResponse<{ ok: boolean }>).toMatchObject({ result: { ok: true } });
    await engine.close();
  }, 60_000);

  it('a read that meets a damaged page answers PROJECT_DAMAGED with what to do, not INTERNAL', () => {
    const file = path.join(tmpDir(), 'x.sqlite');
    const db = new Database(file);
    db.exec('CREATE TABLE t (a BLOB)');
    const insert = db.prepare('INSERT INTO t VALUES (?)');
    for (let i = 0; i < 200; i++) insert.run(Buffer.alloc(1000, i));
    db.close();
    const pageSize = 4096;
    const fd = fs.openSync(file, 'r+');
    fs.writeSync(fd, Buffer.alloc(pageSize, 0xa5), 0, pageSize, 5 * pageSize);
    fs.closeSync(fd);
    const again = new Database(file);
    let thrown: unknown = null;
    try {
      again.prepare('SELECT sum(length(a)) FROM t').get();
    } catch (err) {
      thrown = err;
    }
    again.close();
    expect(thrown).not.toBeNull();
    const wire = serializeError(thrown);
    expect(wire.code).toBe('PROJECT_DAMAGED');
    expect(wire.message).toMatch(/Check database.*restore the automatic backup or rebuild/);
  });
});
