import fs from 'node:fs';

/** A process's peak resident memory in bytes (Linux VmHWM; this process unless `pid`), or null where there is none. */
export function peakRss(pid: number | 'self' = 'self'): number | null {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}
