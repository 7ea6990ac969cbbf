/**
 * Opening a file a user named, safely: only a regular file is read (a named pipe, a device such as /dev/zero, a
 * socket or a folder is refused before any read), it is opened non-blocking so a file swapped for a pipe between
 * the check and the open cannot hang the engine, and its size is checked against a cap before it is read whole.
 */
import fs from 'node:fs';
import { FlaneurError } from '../api/errors.js';

/** What a path is, in words, when it is not a regular file. */
export function fileKind(st: fs.Stats): string {
  return st.isFile()
    ? 'a regular file'
    : st.isDirectory()
      ? 'a folder'
      : st.isFIFO()
        ? 'a named pipe'
        : st.isCharacterDevice() || st.isBlockDevice()
          ? 'a device'
          : st.isSocket()
            ? 'a socket'
            : 'not a regular file';
}

/**
 * Opens `file` for reading if it is a regular file; `refuse(kind)` makes the error for anything else (kind:
 * "a named pipe", "a device", ...). A missing or unreadable file is IO_ERROR (NOT_FOUND when it does not exist).
 */
export function openRegularFile(file: string, refuse: (kind: string) => FlaneurError): { fd: number; size: number } {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
    throw new FlaneurError(missing ? 'NOT_FOUND' : 'IO_ERROR', `Cannot read ${file}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  if (!st.isFile()) throw refuse(fileKind(st));
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0));
  } catch (err) {
    throw new FlaneurError('IO_ERROR', `Cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
  const now = fs.fstatSync(fd);
  if (!now.isFile()) {
    fs.closeSync(fd);
    throw refuse(fileKind(now));
  }
  return { fd, size: now.size };
}

/** Reads `length` bytes at `position` (fewer only at the end of the file). */
export function readAt(fd: number, length: number, position: number): Buffer {
  const out = Buffer.allocUnsafe(length);
  let got = 0;
  while (got < length) {
    const n = fs.readSync(fd, out, got, length - got, position + got);
    if (n === 0) break;
    got += n;
  }
  return got === length ? out : out.subarray(0, got);
}

/**
 * A whole regular file of at most `maxBytes`: `refuse(why)` makes the error for anything else (why: "is a named
 * pipe", "is 3.2 GB, more than 16 MB"). Never reads more than `maxBytes` + 1 bytes, even if the file grows.
 */
export function readRegularFile(file: string, maxBytes: number, refuse: (why: string) => FlaneurError): Buffer {
  const { fd, size } = openRegularFile(file, (kind) => refuse(`is ${kind}, not a regular file`));
  try {
    if (size > maxBytes) throw refuse(`is ${formatBytes(size)}, more than the ${formatBytes(maxBytes)} allowed`);
    const buf = readAt(fd, maxBytes + 1, 0);
    if (buf.length > maxBytes) throw refuse(`grew past ${formatBytes(maxBytes)} while being read`);
    return buf;
  } finally {
    fs.closeSync(fd);
  }
}

export function formatBytes(n: number): string {
  const units = ['bytes', 'KB', 'MB', 'GB', 'TB'];
  let v = n;
  let u = 0;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return u === 0 ? `${n} bytes` : `${v.toFixed(v < 10 ? 1 : 0)} ${units[u]}`;
}
