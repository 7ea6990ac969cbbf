import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Engine } from '../../../native/engine/engine.js';
import { Project } from '../../../native/store/project.js';
import { bootId, LOCK_FILE, lockHolder, ProjectLock, processStart } from '../../../native/store/project-lock.js';
import { type EngineProcess, ROOT, startEngineProcess, waitFor } from '../../helpers/engine-process.js';
import { tmpDir, writeFiles } from '../../helpers/tmp.js';

function makeProject(dir: string): void {
  Project.create(dir, { appVersion: 'test' }).close();
}

function writeLock(dir: string, lock: Record<string, unknown>): void {
  fs.writeFileSync(path.join(dir, LOCK_FILE), JSON.stringify({ host: os.hostname(), since: '', ...lock }));
}

// Issue 15 item 6: a stale lock whose pid now belongs to another live process is taken over.
describe('project lock', () => {
  const sleeper = spawn('sleep', ['60'], { stdio: 'ignore' });
  afterAll(() => {
    sleeper.kill('SIGKILL');
  });
  const otherPid = sleeper.pid as number;
  const linux = process.platform === 'linux';

  it('records the boot id and the start time of the owning process', () => {
    const dir = tmpDir();
    const lock = ProjectLock.acquire(dir);
    expect(lock).toBeInstanceOf(ProjectLock);
    const written = JSON.parse(fs.readFileSync(path.join(dir, LOCK_FILE), 'utf8'));
    expect(written.pid).toBe(process.pid);
    if (linux) {
      expect(written.bootId).toBe(fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim());
      expect(written.started).toMatch(/^\d+$/);
    }
    (lock as ProjectLock).release();
    expect(fs.existsSync(path.join(dir, LOCK_FILE))).toBe(false);
  });

  it.runIf(linux)('takes over a lock whose pid was reused by another live process (other start time)', () => {
    const dir = tmpDir();
    writeLock(dir, { pid: otherPid, bootId: bootId(), started: '1' });
    expect(lockHolder(dir)).toBeNull();
    expect(ProjectLock.acquire(dir)).toBeInstanceOf(ProjectLock);
    expect(JSON.parse(fs.readFileSync(path.join(dir, LOCK_FILE), 'utf8')).pid).toBe(process.pid);
  });

  it.runIf(linux)('takes over a lock written before the machine last booted, whatever its pid is now', () => {
    const dir = tmpDir();
    writeLock(dir, { pid: otherPid, bootId: '00000000-dead-beef-0000-000000000000', started: processStart(otherPid) });
    expect(lockHolder(dir)).toBeNull();
  });

  it.runIf(linux)('refuses a lock whose process is the one that wrote it', () => {
    const dir = tmpDir();
    writeLock(dir, { pid: otherPid, bootId: bootId(), started: processStart(otherPid) });
    expect(lockHolder(dir)?.pid).toBe(otherPid);
    expect(ProjectLock.acquire(dir)).not.toBeInstanceOf(ProjectLock);
  });

  it('treats an old lock (pid and host only) of a live process as held, and of a dead one as stale', () => {
    const dir = tmpDir();
    writeLock(dir, { pid: otherPid });
    expect(lockHolder(dir)?.pid).toBe(otherPid);
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    writeLock(dir, { pid: Number(dead.stdout) });
    expect(lockHolder(dir)).toBeNull();
  });

  it.runIf(linux)('an engine opens a project whose lock names a reused pid', async () => {
    const dir = path.join(tmpDir(), 'p');
    makeProject(dir);
    writeLock(dir, { pid: otherPid, bootId: bootId(), started: '12345' });
    const engine = new Engine({ home: tmpDir(), runner: { autoResume: false } });
    try {
      const info = await engine.openProject(dir);
      expect(info.path).toBe(dir);
    } finally {
      await engine.close();
    }
  });
});

// Issue 15 items 4 and 9: a refused open leaves the current project and its job running; a second `serve` says why.
describe('opening a project another process owns', () => {
  const work = tmpDir();
  const engines: EngineProcess[] = [];
  afterAll(async () => {
    for (const e of engines) await e.stop('SIGKILL');
  });

  it('is refused without closing the current project or interrupting its running job', async () => {
    const mine = path.join(work, 'mine');
    const theirs = path.join(work, 'theirs');
    makeProject(theirs);
    const owner = await startEngineProcess({ home: tmpDir(), project: theirs });
    engines.push(owner);

    const data = path.join(work, 'data');
    writeFiles(data, 1200, 128 * 1024);
    const me = await startEngineProcess({ home: tmpDir() });
    engines.push(me);
    await me.call('project.create', { path: mine });
    const job = await me.call('ingest.hashFolder', { root: data });
    await waitFor(async () => {
      const j = await me.call('jobs.get', { id: job.id });
      return j.state === 'running' && j.items.ok >= 20;
    });

    const refused = await me.raw('project.open', { path: theirs });
    expect(refused.ok).toBe(false);
    if (!refused.ok) {
      expect(refused.error.code).toBe('PROJECT_LOCKED');
      expect(refused.error.message).toMatch(/is open in another Flaneur process \(pid \d+/);
    }
    // Still the same project, and the job goes on to the end in its first attempt (never interrupted).
    expect((await me.call('project.current', {}))?.path).toBe(mine);
    const done = await waitFor(async () => {
      const j = await me.call('jobs.get', { id: job.id });
      return j.state !== 'running' && j.state !== 'queued' ? j : null;
    }, 60_000);
    expect(done.state).toBe('done');
    expect(done.attempt).toBe(1);
    expect(done.items.ok).toBe(1200);
  }, 120_000);

  it('a second `serve` on a locked project prints the message and exits 1, without a stack trace', async () => {
    const dir = path.join(work, 'served');
    makeProject(dir);
    const owner = await startEngineProcess({ home: tmpDir(), project: dir });
    engines.push(owner);
    const second = spawnSync(
      process.execPath,
      ['--import', 'tsx', path.join(ROOT, 'native', 'cli-main.ts'), 'serve', '--project', dir],
      { cwd: ROOT, encoding: 'utf8', env: { ...process.env, FLANEUR_HOME: tmpDir() }, timeout: 60_000 },
    );
    expect(second.status).toBe(1);
    expect(second.stderr).toMatch(
      /^flaneur: .* is open in another Flaneur process \(pid \d+ on .*\)\. Close it there first\./m,
    );
    expect(second.stderr).not.toMatch(/^\s+at /m);
  }, 90_000);
});
