/**
 * Walks a folder for files in a stable order. Symbolic links are followed only while they stay inside the root and
 * do not lead back to a folder already visited; everything refused is reported with its reason, never dropped.
 */
import fs from 'node:fs';
import path from 'node:path';

export type WalkEntry =
  | { kind: 'file'; abs: string; rel: string; size: number; mtimeMs: number }
  | { kind: 'refused'; abs: string; rel: string; code: string; reason: string };

export interface WalkOptions {
  recursive?: boolean;
  /** Lower-case extensions without the dot; all files when absent. */
  extensions?: readonly string[];
  signal?: AbortSignal;
}

export function errnoReason(err: unknown): { code: string; reason: string } {
  const e = err as NodeJS.ErrnoException;
  switch (e.code) {
    case 'EACCES':
    case 'EPERM':
      return { code: 'PERMISSION', reason: 'permission denied' };
    case 'ENOENT':
      return { code: 'NOT_FOUND', reason: 'no longer exists' };
    case 'ELOOP':
      return { code: 'SYMLINK_LOOP', reason: 'symbolic link loop' };
    case 'EISDIR':
      return { code: 'IO_ERROR', reason: 'is a folder' };
    default:
      return { code: 'IO_ERROR', reason: e.message ?? String(err) };
  }
}

/**
 * Why an entry could not be read, naming the real cause when its name is not valid UTF-8: such a name reaches
 * JavaScript with U+FFFD in place of the bad bytes, so opening it by that name fails as if it did not exist.
 */
function entryReason(name: string, err: unknown): { code: string; reason: string } {
  if ((err as NodeJS.ErrnoException).code === 'ENOENT' && name.includes('\uFFFD')) {
    return {
      code: 'BAD_NAME',
      reason: 'its name is not valid UTF-8 text, so it cannot be opened by name; rename it, then add it again',
    };
  }
  return errnoReason(err);
}

function notAFile(d: fs.Dirent): string {
  if (d.isFIFO()) return 'is a named pipe (FIFO), not a file';
  if (d.isSocket()) return 'is a socket, not a file';
  if (d.isCharacterDevice() || d.isBlockDevice()) return 'is a device, not a file';
  return 'is not a regular file';
}

function isInside(root: string, p: string): boolean {
  const rel = path.relative(root, p);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

export async function* walkFiles(root: string, options: WalkOptions = {}): AsyncGenerator<WalkEntry> {
  const recursive = options.recursive ?? true;
  const exts = options.extensions ? new Set(options.extensions.map((e) => e.toLowerCase())) : null;
  const realRoot = await fs.promises.realpath(root);
  const visited = new Set<string>([realRoot]);
  const stack: string[] = [root];

  while (stack.length > 0) {
    options.signal?.throwIfAborted();
    const dir = stack.pop() as string;
    let names: fs.Dirent[];
    try {
      names = await fs.promises.readdir(dir, { withFileTypes: true });
    } catch (err) {
      yield { kind: 'refused', abs: dir, rel: path.relative(root, dir) || '.', ...entryReason(dir, err) };
      continue;
    }
    names.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const subdirs: string[] = [];
    for (const d of names) {
      const abs = path.join(dir, d.name);
      const rel = path.relative(root, abs);
      let isDir = d.isDirectory();
      let isFile = d.isFile();
      if (d.isSymbolicLink()) {
        let real: string;
        let st: fs.Stats;
        try {
          real = await fs.promises.realpath(abs);
          st = await fs.promises.stat(real);
        } catch (err) {
          yield { kind: 'refused', abs, rel, ...entryReason(d.name, err) };
          continue;
        }
        if (!isInside(realRoot, real)) {
          yield { kind: 'refused', abs, rel, code: 'OUTSIDE_ROOT', reason: `link leads outside the folder (${real})` };
          continue;
        }
        isDir = st.isDirectory();
        isFile = st.isFile();
        if (isDir && visited.has(real)) {
          yield { kind: 'refused', abs, rel, code: 'SYMLINK_LOOP', reason: `link loops back to ${real}` };
          continue;
        }
        if (isDir) visited.add(real);
      } else if (isDir) {
        try {
          visited.add(await fs.promises.realpath(abs));
        } catch {
          // realpath of a plain folder only fails if it vanished; readdir reports that below.
        }
      }
      if (isDir) {
        if (recursive) subdirs.push(abs);
        continue;
      }
      if (exts && !exts.has(path.extname(d.name).slice(1).toLowerCase())) continue;
      if (!isFile) {
        // A named pipe or device with a media name: reported, never opened (reading a FIFO would block).
        yield { kind: 'refused', abs, rel, code: 'NOT_A_FILE', reason: notAFile(d) };
        continue;
      }
      try {
        const st = await fs.promises.stat(abs);
        yield { kind: 'file', abs, rel, size: st.size, mtimeMs: st.mtimeMs };
      } catch (err) {
        yield { kind: 'refused', abs, rel, ...entryReason(d.name, err) };
      }
    }
    // Depth-first in name order: push in reverse so the first name is walked first.
    for (let i = subdirs.length - 1; i >= 0; i--) stack.push(subdirs[i] as string);
  }
}
