/**
 * A small reader of zip archives held in memory: the central directory (with zip64 sizes and offsets), entries
 * stored (PyTorch's checkpoints) or deflated. Every offset is checked against the buffer, so a truncated archive
 * is an error that says so rather than a read past the end.
 */
import zlib from 'node:zlib';
import { FlaneurError } from '../api/errors.js';

export interface ZipEntry {
  name: string;
  method: number;
  compressedSize: number;
  size: number;
  localHeader: number;
}

export interface ZipArchive {
  entries: Map<string, ZipEntry>;
  /** The entry's bytes (a view for stored entries). */
  read(name: string): Uint8Array;
}

const EOCD = 0x06054b50;
const EOCD64 = 0x06064b50;
const EOCD64_LOCATOR = 0x07064b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;

export function isZip(buf: Uint8Array): boolean {
  return buf.length >= 4 && buf[0] === 0x50 && buf[1] === 0x4b && buf[2] === 0x03 && buf[3] === 0x04;
}

export function readZip(buf: Uint8Array, source: string): ZipArchive {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const truncated = (what: string): never => {
    throw new FlaneurError(
      'INVALID_MODEL',
      `${source} is truncated or damaged: ${what}. Download or copy the file again.`,
      { details: `zip archive of ${buf.length} bytes` },
    );
  };
  // The end-of-central-directory record is in the last 64 KiB + 22 bytes (after an optional comment).
  let eocd = -1;
  for (let i = buf.length - 22; i >= Math.max(0, buf.length - 22 - 0xffff); i--) {
    if (dv.getUint32(i, true) === EOCD) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) truncated('its zip directory (at the end of the file) is missing');
  let count = dv.getUint16(eocd + 10, true);
  let cdSize = dv.getUint32(eocd + 12, true);
  let cdOffset = dv.getUint32(eocd + 16, true);
  if (eocd >= 20 && dv.getUint32(eocd - 20, true) === EOCD64_LOCATOR) {
    const at = Number(dv.getBigUint64(eocd - 12, true));
    if (at + 56 > buf.length || dv.getUint32(at, true) !== EOCD64) truncated('its zip64 directory record is missing');
    count = Number(dv.getBigUint64(at + 32, true));
    cdSize = Number(dv.getBigUint64(at + 40, true));
    cdOffset = Number(dv.getBigUint64(at + 48, true));
  }
  if (cdOffset + cdSize > buf.length) truncated('its zip directory points past the end of the file');

  const entries = new Map<string, ZipEntry>();
  let p = cdOffset;
  for (let n = 0; n < count; n++) {
    if (p + 46 > buf.length || dv.getUint32(p, true) !== CENTRAL) truncated(`zip directory entry ${n} is unreadable`);
    const method = dv.getUint16(p + 10, true);
    let compressedSize = dv.getUint32(p + 20, true);
    let size = dv.getUint32(p + 24, true);
    const nameLen = dv.getUint16(p + 28, true);
    const extraLen = dv.getUint16(p + 30, true);
    const commentLen = dv.getUint16(p + 32, true);
    let localHeader = dv.getUint32(p + 42, true);
    const name = Buffer.from(buf.subarray(p + 46, p + 46 + nameLen)).toString('utf8');
    // zip64 extra field: the 64-bit values, in this order, for each 32-bit field that is 0xFFFFFFFF.
    let e = p + 46 + nameLen;
    const extraEnd = e + extraLen;
    while (e + 4 <= extraEnd) {
      const id = dv.getUint16(e, true);
      const len = dv.getUint16(e + 2, true);
      if (id === 0x0001) {
        let q = e + 4;
        const next = () => {
          const v = Number(dv.getBigUint64(q, true));
          q += 8;
          return v;
        };
        if (size === 0xffffffff) size = next();
        if (compressedSize === 0xffffffff) compressedSize = next();
        if (localHeader === 0xffffffff) localHeader = next();
      }
      e += 4 + len;
    }
    entries.set(name, { name, method, compressedSize, size, localHeader });
    p = extraEnd + commentLen;
  }

  return {
    entries,
    read(name) {
      const entry = entries.get(name);
      if (!entry) throw new FlaneurError('INVALID_MODEL', `${source} has no "${name}" in its archive.`);
      const h = entry.localHeader;
      if (h + 30 > buf.length || dv.getUint32(h, true) !== LOCAL) truncated(`entry "${name}" is unreadable`);
      const start = h + 30 + dv.getUint16(h + 26, true) + dv.getUint16(h + 28, true);
      const end = start + entry.compressedSize;
      if (end > buf.length) truncated(`entry "${name}" ends at byte ${end} of ${buf.length}`);
      const raw = buf.subarray(start, end);
      if (entry.method === 0) return raw;
      if (entry.method === 8) return new Uint8Array(zlib.inflateRawSync(raw));
      throw new FlaneurError(
        'INVALID_MODEL',
        `${source}: entry "${name}" uses zip compression method ${entry.method}; only stored and deflated entries are read.`,
      );
    },
  };
}
