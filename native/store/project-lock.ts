/**
 * One engine owns a project's jobs at a time. The owner keeps project.lock: its pid, host, the machine's boot id and
 * the process's start time. A lock whose process is gone is stale and taken over, which is what lets a crashed
 * engine's successor resume its jobs. A pid alone is not enough: after a reboot (or a long uptime) the recorded pid
 * may belong to an unrelated live process, so a lock is also stale when the machine has booted since it was written
 * or when the process now holding that pid started at another time.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const LOCK_FILE = 'project.lock';

export interface LockInfo {
  pid: number;
  host: string;
  since: string;
  /** Linux: /proc/sys/kernel/random/boot_id; macOS: kern.boottime; absent where neither can be read. */
  bootId?: string;
  /** When the owning process started, in a form only compared for equality (see processStart). */
  started?: string;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readText(file: string): string | null {
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch {
    return null;
  }
}

let cachedBootId: string | null | undefined;

/** An identifier of this boot of the machine, or null where none can be read (Windows). */
export function bootId(): string | null {
  if (cachedBootId !== undefined) return cachedBootId;
  let id: string | null = null;
  if (process.platform === 'linux') id = readText('/proc/sys/kernel/random/boot_id');
  else if (process.platform === 'darwin') {
    const r = spawnSync('sysctl', ['-n', 'kern.boottime'], { encoding: 'utf8', timeout: 2000 });
    id = r.status === 0 ? (/sec = (\d+)/.exec(r.stdout)?.[1] ?? null) : null;
  }
  cachedBootId = id;
  return id;
}

/**
 * When a process started, as a string compared only for equality, or null where it cannot be told (the process is
 * gone, or the platform has no cheap way: Windows). Linux: field 22 of /proc/PID/stat (clock ticks since boot);
 * macOS: `ps -o lstart=`.
 */
export function processStart(pid: number): string | null {
  if (process.platform === 'linux') {
    const stat = readText(`/proc/${pid}/stat`);
    if (!stat) return null;
    // The command name (field 2) may hold spaces and parentheses: fields after it start past the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19] ?? null; // field 22 overall = index 19 after pid, comm
  }
  if (process.platform === 'darwin') {
    const r = spawnSync('ps', ['-o', 'lstart=', '-p', String(pid)], { encoding: 'utf8', timeout: 2000 });
    const s = r.status === 0 ? r.stdout.trim() : '';
    return s || null;
  }
  return null;
}

function read(file: string): LockInfo | null {
  try {
    const v = JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<LockInfo>;
    if (typeof v.pid === 'number' && typeof v.host === 'string') {
      const info: LockInfo = { pid: v.pid, host: v.host, since: v.since ?? '' };
      if (typeof v.bootId === 'string') info.bootId = v.bootId;
      if (typeof v.started === 'string') info.started = v.started;
      return info;
    }
  } catch {
    // unreadable or half-written: treated as no lock
  }
  return null;
}

/** Whether the process that wrote a lock on this host is still running. */
function ownerAlive(info: LockInfo): boolean {
  const boot = bootId();
  if (info.bootId && boot && info.bootId !== boot) return false; // written before the last reboot
  if (!alive(info.pid)) return false;
  if (info.started) {
    const now = processStart(info.pid);
    if (now !== null && now !== info.started) return false; // the pid now belongs to another process
  }
  return true;
}

/** Who else holds the lock, if a live process on this host (or any process on another host) does. */
export function lockHolder(dir: string): LockInfo | null {
  const info = read(path.join(dir, LOCK_FILE));
  if (!info) return null;
  if (info.host === os.hostname() && info.pid === process.pid) {
    // Our pid: ours, unless it was written by an earlier process that had the same pid before a reboot.
    return null;
  }
  if (info.host === os.hostname() && !ownerAlive(info)) return null;
  return info;
}

/** The message every refusal of a locked project gives. */
export function lockedMessage(dir: string, holder: LockInfo): string {
  return `${dir} is open in another Flaneur process (pid ${holder.pid} on ${holder.host}). Close it there first.`;
}

export class ProjectLock {
  private constructor(private readonly file: string) {}

  /** Takes the lock, or returns the live holder. */
  static acquire(dir: string): ProjectLock | LockInfo {
    const holder = lockHolder(dir);
    if (holder) return holder;
    const file = path.join(dir, LOCK_FILE);
    const tmp = `${file}.${process.pid}.tmp`;
    const info: LockInfo = { pid: process.pid, host: os.hostname(), since: new Date().toISOString() };
    const boot = bootId();
    if (boot) info.bootId = boot;
    const started = processStart(process.pid);
    if (started) info.started = started;
    fs.writeFileSync(tmp, JSON.stringify(info));
    fs.renameSync(tmp, file);
    return new ProjectLock(file);
  }

  release(): void {
    const info = read(this.file);
    if (info?.pid === process.pid) fs.rmSync(this.file, { force: true });
  }
}
