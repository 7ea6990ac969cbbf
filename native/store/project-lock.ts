/**
 * One engine owns a project's jobs at a time. The owner keeps project.lock (pid, host); a lock whose process is gone
 * is stale and taken over, which is what lets a crashed engine's successor resume its jobs.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const LOCK_FILE = 'project.lock';

interface LockInfo {
  pid: number;
  host: string;
  since: string;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function read(file: string): LockInfo | null {
  try {
    const v = JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<LockInfo>;
    if (typeof v.pid === 'number' && typeof v.host === 'string')
      return { pid: v.pid, host: v.host, since: v.since ?? '' };
  } catch {
    // unreadable or half-written: treated as no lock
  }
  return null;
}

/** Who else holds the lock, if a live process on this host does. */
export function lockHolder(dir: string): LockInfo | null {
  const info = read(path.join(dir, LOCK_FILE));
  if (!info || info.pid === process.pid) return null;
  if (info.host === os.hostname() && !alive(info.pid)) return null;
  return info;
}

export class ProjectLock {
  private constructor(private readonly file: string) {}

  /** Takes the lock, or returns the live holder. */
  static acquire(dir: string): ProjectLock | LockInfo {
    const holder = lockHolder(dir);
    if (holder) return holder;
    const file = path.join(dir, LOCK_FILE);
    const tmp = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify({ pid: process.pid, host: os.hostname(), since: new Date().toISOString() }));
    fs.renameSync(tmp, file);
    return new ProjectLock(file);
  }

  release(): void {
    const info = read(this.file);
    if (info?.pid === process.pid) fs.rmSync(this.file, { force: true });
  }
}
