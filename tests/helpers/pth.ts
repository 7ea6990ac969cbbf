/**
 * Builds PyTorch checkpoints byte by byte for tests of hostile input: pickle opcodes, a state-dict pickle of tensors
 * (torch._utils._rebuild_tensor_v2 over persistent storage ids, as torch.save writes it), and zip archives whose
 * entries may be deflated, declare another size, be sparse (a hole of any size on disk) or share bytes.
 */
import fs from 'node:fs';
import zlib from 'node:zlib';

/** Pickle opcodes by name (the binary protocol). */
export const OP = {
  PROTO: 0x80,
  STOP: 0x2e,
  MARK: 0x28,
  EMPTY_DICT: 0x7d,
  EMPTY_LIST: 0x5d,
  EMPTY_TUPLE: 0x29,
  TUPLE: 0x74,
  TUPLE1: 0x85,
  LIST: 0x6c,
  APPEND: 0x61,
  APPENDS: 0x65,
  SETITEM: 0x73,
  SETITEMS: 0x75,
  NONE: 0x4e,
  NEWFALSE: 0x89,
  BININT: 0x4a,
  LONG1: 0x8a,
  LONG4: 0x8b,
  BINUNICODE: 0x58,
  GLOBAL: 0x63,
  BINPERSID: 0x51,
  REDUCE: 0x52,
  MEMOIZE: 0x94,
  BINGET: 0x68,
  DUP: 0x32,
  POP: 0x30,
} as const;

/** Pickle bytes from parts: opcode numbers, byte arrays and strings (latin1). */
export function bytes(...parts: Array<number | Uint8Array | string>): Buffer {
  return Buffer.concat(
    parts.map((p) => (typeof p === 'number' ? Buffer.from([p]) : typeof p === 'string' ? Buffer.from(p, 'latin1') : p)),
  );
}

export function str(s: string): Buffer {
  const b = Buffer.from(s, 'utf8');
  const len = Buffer.alloc(4);
  len.writeUInt32LE(b.length);
  return bytes(OP.BINUNICODE, len, b);
}

export function int(n: number): Buffer {
  if (n >= -(2 ** 31) && n < 2 ** 31) {
    const b = Buffer.alloc(4);
    b.writeInt32LE(n);
    return bytes(OP.BININT, b);
  }
  const b = Buffer.alloc(8);
  b.writeBigInt64LE(BigInt(n));
  return bytes(OP.LONG1, 8, b);
}

function tuple(items: Buffer[]): Buffer {
  return bytes(OP.MARK, ...items, OP.TUPLE);
}

export interface PickledTensor {
  name: string;
  key: string;
  /** Elements the storage record claims. */
  numel: number;
  offset?: number;
  shape: number[];
  stride?: number[];
}

/** A pickle of {name: tensor} as torch.save writes a state dict (F32 storages). */
export function stateDictPickle(tensors: PickledTensor[]): Buffer {
  const parts: Buffer[] = [bytes(OP.PROTO, 2, OP.EMPTY_DICT)];
  for (const t of tensors) {
    const stride = t.stride ?? t.shape.map((_, i) => t.shape.slice(i + 1).reduce((a, d) => a * d, 1));
    const pid = tuple([
      str('storage'),
      bytes(OP.GLOBAL, 'torch\nFloatStorage\n'),
      str(t.key),
      str('cpu'),
      int(t.numel),
    ]);
    parts.push(
      str(t.name),
      bytes(OP.GLOBAL, 'torch._utils\n_rebuild_tensor_v2\n'),
      tuple([
        bytes(pid, OP.BINPERSID),
        int(t.offset ?? 0),
        tuple(t.shape.map(int)),
        tuple(stride.map(int)),
        bytes(OP.NEWFALSE),
        bytes(OP.NONE),
      ]),
      bytes(OP.REDUCE, OP.SETITEM),
    );
  }
  parts.push(bytes(OP.STOP));
  return Buffer.concat(parts);
}

export interface ZipEntrySpec {
  name: string;
  /** The entry's bytes, or a hole of this many zero bytes (sparse on disk: no space used). */
  data: Uint8Array | { hole: number };
  /** Deflate the data (the entry's method 8). */
  deflate?: boolean;
  /** Mark the entry deflated (method 8) but write `data` as it is (garbage or a ready-made deflate stream). */
  rawDeflated?: boolean;
  /** The size the directory declares (default: the real one). */
  declaredSize?: number;
  /** Point this entry's directory record at another entry's local header (overlapping entries). */
  sameBytesAs?: string;
}

/** Writes a zip archive (no zip64; entries below 4 GiB) to `file`, holes left sparse. */
export function writeZip(file: string, entries: ZipEntrySpec[]): string {
  const fd = fs.openSync(file, 'w');
  let pos = 0;
  const write = (b: Uint8Array) => {
    fs.writeSync(fd, b, 0, b.length, pos);
    pos += b.length;
  };
  const central: Buffer[] = [];
  const headerAt = new Map<string, number>();
  for (const e of entries) {
    const raw = e.data instanceof Uint8Array ? Buffer.from(e.data) : null;
    const body = raw && e.deflate ? zlib.deflateRawSync(raw) : raw;
    const method = e.deflate || e.rawDeflated ? 8 : 0;
    const size =
      raw && !e.rawDeflated ? raw.length : raw ? (e.declaredSize ?? raw.length) : (e.data as { hole: number }).hole;
    const stored = body ? body.length : size;
    const name = Buffer.from(e.name);
    const declared = e.declaredSize ?? size;
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(method, 8);
    local.writeUInt32LE(stored, 18);
    local.writeUInt32LE(declared, 22);
    local.writeUInt16LE(name.length, 26);
    const at = e.sameBytesAs !== undefined ? (headerAt.get(e.sameBytesAs) as number) : pos;
    if (e.sameBytesAs === undefined) {
      headerAt.set(e.name, pos);
      write(local);
      write(name);
      if (body) write(body);
      else pos += size;
    }
    const c = Buffer.alloc(46);
    c.writeUInt32LE(0x02014b50, 0);
    c.writeUInt16LE(20, 4);
    c.writeUInt16LE(20, 6);
    c.writeUInt16LE(method, 10);
    c.writeUInt32LE(stored, 20);
    c.writeUInt32LE(declared, 24);
    c.writeUInt16LE(name.length, 28);
    c.writeUInt32LE(at, 42);
    central.push(c, name);
  }
  const cd = Buffer.concat(central);
  const cdAt = pos;
  write(cd);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(cdAt, 16);
  write(end);
  fs.closeSync(fd);
  return file;
}

/** A zip checkpoint (archive/data.pkl + archive/data/<key>) from a pickle and storages. */
export function writePth(file: string, pickle: Uint8Array, storages: ZipEntrySpec[] = [], pklDeflate = false): string {
  return writeZip(file, [
    { name: 'archive/data.pkl', data: pickle, deflate: pklDeflate },
    ...storages.map((s) => ({ ...s, name: `archive/data/${s.name}` })),
  ]);
}
