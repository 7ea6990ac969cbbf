/**
 * A small reader of zip archives: the central directory (with zip64 sizes and offsets), entries stored (PyTorch's
 * checkpoints) or deflated. The archive is a `ByteSource` (a file read at offsets, or bytes in memory), read lazily:
 * the directory when opened, an entry (or part of a stored one) when asked. Every offset and size is checked
 * against the source before anything is read; entries that overlap each other or the directory are refused;
 * inflation is bounded by the entry's declared size and by a cap for the whole archive.
 */
import zlib from 'node:zlib';
import { FlaneurError } from '../api/errors.js';

/** Bytes read at offsets: the whole archive need never be in memory. */
export interface ByteSource {
  readonly size: number;
  /** `length` bytes from `offset` (fewer only if the source changed underneath). */
  read(offset: number, length: number): Uint8Array;
}

export function bufferSource(buf: Uint8Array): ByteSource {
  return {
    size: buf.length,
    read: (offset, length) => buf.subarray(offset, Math.min(buf.length, offset + length)),
  };
}

export interface ZipEntry {
  name: string;
  method: number;
  compressedSize: number;
  size: number;
  localHeader: number;
  /** Where the entry's (compressed) bytes start. */
  dataStart: number;
}

export interface ZipArchive {
  entries: Map<string, ZipEntry>;
  /** The entry's bytes. */
  read(name: string): Uint8Array;
  /** Bytes [start, start + length) of an entry; a stored entry is read only there. */
  readRange(name: string, start: number, length: number): Uint8Array;
}

/** Bounds on what an archive may make the reader do. */
export const ZIP_LIMITS = {
  /** Entries in the directory (a ViT-g checkpoint has a few hundred). */
  entries: 1 << 17,
  /** Bytes of the central directory. */
  directoryBytes: 64 << 20,
  /** Bytes one deflated entry may inflate to (its declared size, never more). */
  inflatedEntry: 1 << 30,
  /** Bytes all inflations of one archive may produce together. */
  inflatedTotal: 2 * 2 ** 30,
};

const EOCD = 0x06054b50;
const EOCD64 = 0x06064b50;
const EOCD64_LOCATOR = 0x07064b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;

export function isZip(buf: Uint8Array): boolean {
  return buf.length >= 4 && buf[0] === 0x50 && buf[1] === 0x4b && buf[2] === 0x03 && buf[3] === 0x04;
}

function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

export function readZip(input: Uint8Array | ByteSource, source: string): ZipArchive {
  const src = input instanceof Uint8Array ? bufferSource(input) : input;
  const size = src.size;
  const damaged = (what: string): never => {
    throw new FlaneurError(
      'INVALID_MODEL',
      `${source} is truncated or damaged: ${what}. Download or copy the file again.`,
      { details: `zip archive of ${size} bytes` },
    );
  };
  const at = (offset: number, length: number, what: string): Uint8Array => {
    if (!Number.isSafeInteger(offset) || offset < 0 || offset + length > size) damaged(what);
    const b = src.read(offset, length);
    if (b.length < length) damaged(`${what} (the file changed while being read)`);
    return b;
  };
  const u64 = (dv: DataView, o: number): number => {
    const v = dv.getBigUint64(o, true);
    return v > BigInt(Number.MAX_SAFE_INTEGER) ? damaged('a zip64 size or offset is impossibly large') : Number(v);
  };

  // The end-of-central-directory record is in the last 64 KiB + 22 bytes (after an optional comment).
  const tailStart = Math.max(0, size - 22 - 0xffff);
  const tail = size >= 22 ? at(tailStart, size - tailStart, 'its end is unreadable') : damaged('it is too short');
  const tv = view(tail);
  let eocd = -1;
  for (let i = tail.length - 22; i >= 0; i--) {
    if (tv.getUint32(i, true) === EOCD) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) damaged('its zip directory (at the end of the file) is missing');
  let count = tv.getUint16(eocd + 10, true);
  let cdSize = tv.getUint32(eocd + 12, true);
  let cdOffset = tv.getUint32(eocd + 16, true);
  if (eocd >= 20 && tv.getUint32(eocd - 20, true) === EOCD64_LOCATOR) {
    const where = u64(tv, eocd - 12);
    const rec = view(at(where, 56, 'its zip64 directory record is missing'));
    if (rec.getUint32(0, true) !== EOCD64) damaged('its zip64 directory record is missing');
    count = u64(rec, 32);
    cdSize = u64(rec, 40);
    cdOffset = u64(rec, 48);
  }
  if (cdOffset + cdSize > size) damaged('its zip directory points past the end of the file');
  if (count > ZIP_LIMITS.entries || cdSize > ZIP_LIMITS.directoryBytes) {
    throw new FlaneurError(
      'INVALID_MODEL',
      `${source} was refused: its zip directory lists ${count} entries in ${cdSize} bytes, far more than a model checkpoint has.`,
    );
  }
  const cd = at(cdOffset, cdSize, 'its zip directory is unreadable');
  const dv = view(cd);

  const entries = new Map<string, ZipEntry>();
  let p = 0;
  for (let n = 0; n < count; n++) {
    if (p + 46 > cd.length || dv.getUint32(p, true) !== CENTRAL) damaged(`zip directory entry ${n} is unreadable`);
    const method = dv.getUint16(p + 10, true);
    let compressedSize = dv.getUint32(p + 20, true);
    let entrySize = dv.getUint32(p + 24, true);
    const nameLen = dv.getUint16(p + 28, true);
    const extraLen = dv.getUint16(p + 30, true);
    const commentLen = dv.getUint16(p + 32, true);
    let localHeader = dv.getUint32(p + 42, true);
    if (p + 46 + nameLen + extraLen + commentLen > cd.length) damaged(`zip directory entry ${n} is cut short`);
    const name = Buffer.from(cd.subarray(p + 46, p + 46 + nameLen)).toString('utf8');
    // zip64 extra field: the 64-bit values, in this order, for each 32-bit field that is 0xFFFFFFFF.
    let e = p + 46 + nameLen;
    const extraEnd = e + extraLen;
    while (e + 4 <= extraEnd) {
      const id = dv.getUint16(e, true);
      const len = dv.getUint16(e + 2, true);
      if (e + 4 + len > extraEnd) damaged(`zip directory entry ${n} has a cut extra field`);
      if (id === 0x0001) {
        let q = e + 4;
        const next = () => {
          if (q + 8 > e + 4 + len) damaged(`zip directory entry ${n} has a short zip64 field`);
          const v = u64(dv, q);
          q += 8;
          return v;
        };
        if (entrySize === 0xffffffff) entrySize = next();
        if (compressedSize === 0xffffffff) compressedSize = next();
        if (localHeader === 0xffffffff) localHeader = next();
      }
      e += 4 + len;
    }
    if (entries.has(name)) damaged(`the archive names "${name}" twice`);
    const local = view(at(localHeader, 30, `entry "${name}" is unreadable`));
    if (local.getUint32(0, true) !== LOCAL) damaged(`entry "${name}" is unreadable`);
    const dataStart = localHeader + 30 + local.getUint16(26, true) + local.getUint16(28, true);
    if (dataStart + compressedSize > size) {
      damaged(`entry "${name}" ends at byte ${dataStart + compressedSize} of ${size}`);
    }
    if (method === 0 && entrySize !== compressedSize) damaged(`stored entry "${name}" has two different sizes`);
    entries.set(name, { name, method, compressedSize, size: entrySize, localHeader, dataStart });
    p = extraEnd + commentLen;
  }

  // No two entries (header and data) share bytes, and none overlaps the directory: overlapping entries would let
  // one storage's bytes be read as another's.
  const spans = [...entries.values()]
    .map((x) => ({ name: x.name, start: x.localHeader, end: x.dataStart + x.compressedSize }))
    .concat([{ name: '(the zip directory)', start: cdOffset, end: cdOffset + cdSize }])
    .sort((a, b) => a.start - b.start);
  for (let i = 1; i < spans.length; i++) {
    const a = spans[i - 1] as (typeof spans)[number];
    const b = spans[i] as (typeof spans)[number];
    if (b.start < a.end) {
      throw new FlaneurError(
        'INVALID_MODEL',
        `${source} was refused: its zip entries "${a.name}" and "${b.name}" overlap (the same bytes would be read as both). The file is damaged or crafted; download it again.`,
      );
    }
  }

  let inflated = 0;
  const entry = (name: string): ZipEntry => {
    const x = entries.get(name);
    if (!x) throw new FlaneurError('INVALID_MODEL', `${source} has no "${name}" in its archive.`);
    if (x.method !== 0 && x.method !== 8) {
      throw new FlaneurError(
        'INVALID_MODEL',
        `${source}: entry "${name}" uses zip compression method ${x.method}; only stored and deflated entries are read.`,
      );
    }
    return x;
  };
  const inflate = (x: ZipEntry): Uint8Array => {
    if (x.size > ZIP_LIMITS.inflatedEntry || inflated + x.size > ZIP_LIMITS.inflatedTotal) {
      throw new FlaneurError(
        'INVALID_MODEL',
        `${source} was refused: its compressed entry "${x.name}" declares ${x.size} bytes, more than a checkpoint may inflate to.`,
      );
    }
    const raw = at(x.dataStart, x.compressedSize, `entry "${x.name}" is unreadable`);
    let out: Buffer;
    try {
      // Never more than the declared size: a deflate bomb stops there.
      out = zlib.inflateRawSync(raw, { maxOutputLength: Math.max(1, x.size) });
    } catch (err) {
      const code = (err as { code?: string }).code;
      return damaged(
        code === 'ERR_BUFFER_TOO_LARGE'
          ? `entry "${x.name}" inflates to more than its declared ${x.size} bytes`
          : `entry "${x.name}" is not valid deflate data`,
      );
    }
    if (out.length !== x.size) damaged(`entry "${x.name}" inflates to ${out.length} bytes, not its declared ${x.size}`);
    inflated += out.length;
    return new Uint8Array(out.buffer, out.byteOffset, out.length);
  };
  return {
    entries,
    read(name) {
      const x = entry(name);
      return x.method === 0 ? at(x.dataStart, x.size, `entry "${name}" is unreadable`) : inflate(x);
    },
    readRange(name, start, length) {
      const x = entry(name);
      if (start < 0 || start + length > x.size) {
        damaged(`bytes ${start}-${start + length} asked of entry "${name}", which has ${x.size}`);
      }
      if (x.method === 0) return at(x.dataStart + start, length, `entry "${name}" is unreadable`);
      return inflate(x).subarray(start, start + length);
    },
  };
}
