import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll } from 'vitest';

/** A fresh temporary folder, removed after the test file finishes. */
export function tmpDir(prefix = 'flaneur-test-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Writes `count` files of `size` bytes (distinct contents) under `dir`, in `perFolder`-sized sub-folders. */
export function writeFiles(dir: string, count: number, size: number, perFolder = 500): string[] {
  const base = Buffer.alloc(size, 7);
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const sub = path.join(dir, `part-${String(Math.floor(i / perFolder)).padStart(3, '0')}`);
    if (i % perFolder === 0) fs.mkdirSync(sub, { recursive: true });
    base.writeUInt32LE(i, 0);
    const file = path.join(sub, `file-${String(i).padStart(5, '0')}.bin`);
    fs.writeFileSync(file, base);
    out.push(file);
  }
  return out;
}
