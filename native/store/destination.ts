/**
 * Where the app may write what the user asked for (a project folder, an export folder, an export file): checked
 * before anything is created. The nearest existing folder must be a real folder on a real file system and
 * writable; /proc, /sys and other kernel file systems are refused at once (Node 20's recursive mkdirSync spins
 * forever on /proc, blocking the engine and ignoring SIGTERM).
 */
import fs from 'node:fs';
import path from 'node:path';
import { diskFullError, FlaneurError, isDiskFull } from '../api/errors.js';

/** statfs magic numbers of Linux kernel file systems nothing may be written to. */
const PSEUDO_FS = new Map<number, string>([
  [0x9fa0, 'proc'],
  [0x62656572, 'sysfs'],
  [0x1cd1, 'devpts'],
  [0x27e0eb, 'cgroup'],
  [0x63677270, 'cgroup2'],
  [0x64626720, 'debugfs'],
  [0x74726163, 'tracefs'],
  [0x73636673, 'securityfs'],
  [0xcafe4a11, 'bpf'],
  [0x42494e4d, 'binfmt_misc'],
  [0x6165676c, 'pstore'],
  [0xde5e81e4, 'efivarfs'],
]);
const PSEUDO_PREFIXES = new Map([
  ['/proc', 'proc'],
  ['/sys', 'sysfs'],
]);

function refuse(message: string, field: string | undefined): FlaneurError {
  return new FlaneurError('PATH_REFUSED', message, field ? { field } : {});
}

/** The deepest part of `abs` that exists (itself when it exists), with what is there. */
function nearestExisting(abs: string): { at: string; stat: fs.Stats } | null {
  let at = abs;
  for (;;) {
    try {
      return { at, stat: fs.statSync(at) };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // ENOTDIR: a file stands where a folder is needed; report that file.
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw err;
    }
    const up = path.dirname(at);
    if (up === at) return null;
    at = up;
  }
}

function pseudoFileSystem(abs: string): string | null {
  if (process.platform === 'linux') {
    for (const [prefix, name] of PSEUDO_PREFIXES) if (abs === prefix || abs.startsWith(`${prefix}/`)) return name;
    try {
      const type = fs.statfsSync(abs).type;
      return PSEUDO_FS.get(type) ?? null;
    } catch {
      return null;
    }
  }
  return null;
}

/**
 * Checks that `dir` is, or can be created as, a writable folder; creates nothing. Returns the absolute path.
 * `target` is what the user asked for, named in the message (a file to be written in `dir`, or `dir` itself).
 */
export function checkFolderDestination(dir: string, field?: string, target = path.resolve(dir)): string {
  const abs = path.resolve(dir);
  let near: { at: string; stat: fs.Stats } | null;
  try {
    near = nearestExisting(abs);
  } catch (err) {
    throw refuse(`Cannot use ${abs}: ${(err as Error).message}`, field);
  }
  if (!near) throw refuse(`Cannot use ${abs}: none of its folders exists.`, field);
  let real = near.at;
  try {
    real = fs.realpathSync(near.at);
  } catch {
    // keep the path as given
  }
  const pseudo = pseudoFileSystem(real);
  if (pseudo) {
    throw refuse(
      `${abs} is on the system's ${pseudo} file system, where nothing can be saved. Choose a folder in your home or on a data disk.`,
      field,
    );
  }
  if (!near.stat.isDirectory()) {
    throw refuse(
      near.at === target
        ? `${target} is a file, not a folder. Choose a folder.`
        : `${near.at} is a file, so ${target} cannot be made inside it. Choose another place.`,
      field,
    );
  }
  try {
    fs.accessSync(near.at, fs.constants.W_OK);
  } catch {
    throw refuse(`${near.at} cannot be written to (permission denied). Choose a folder you can write to.`, field);
  }
  return abs;
}

/** `checkFolderDestination`, then creates the folder (and missing parents). */
export function prepareFolderDestination(dir: string, field?: string): string {
  const abs = checkFolderDestination(dir, field);
  try {
    fs.mkdirSync(abs, { recursive: true });
  } catch (err) {
    if (isDiskFull(err)) throw diskFullError(err);
    throw new FlaneurError('IO_ERROR', `Cannot create the folder ${abs}: ${(err as Error).message}`, {
      cause: err,
      ...(field ? { field } : {}),
    });
  }
  return abs;
}

/** Checks a file to write: not an existing folder, in a folder that is or can be made writable; creates nothing. */
export function checkFileDestination(file: string, field?: string): string {
  const abs = path.resolve(file);
  let st: fs.Stats | null = null;
  try {
    st = fs.statSync(abs);
  } catch {
    st = null;
  }
  if (st?.isDirectory())
    throw refuse(`${abs} is a folder. Give a file name inside it, such as ${path.join(abs, 'export.csv')}.`, field);
  if (st && !st.isFile()) throw refuse(`${abs} is not a regular file; choose another file name.`, field);
  checkFolderDestination(path.dirname(abs), field, abs);
  return abs;
}

/** Writes a whole file at a checked destination (parents created), through a temporary name. */
export function writeFileDestination(file: string, data: string | Uint8Array, field?: string): string {
  const abs = checkFileDestination(file, field);
  prepareFolderDestination(path.dirname(abs), field);
  const tmp = `${abs}.${process.pid}.tmp`;
  try {
    // A link planted at the temporary name is removed, never followed ('wx' creates a new file or fails).
    fs.rmSync(tmp, { force: true });
    fs.writeFileSync(tmp, data, { flag: 'wx' });
    fs.renameSync(tmp, abs);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    if (isDiskFull(err)) throw diskFullError(err);
    throw new FlaneurError('IO_ERROR', `Cannot write ${abs}: ${(err as Error).message}`, {
      cause: err,
      ...(field ? { field } : {}),
    });
  }
  return abs;
}
