/**
 * PyTorch checkpoints (.pth / .pt / .bin) read without Python: the zip format (`<name>/data.pkl` and one
 * `<name>/data/<key>` entry per storage) and the legacy format (a magic number, protocol and system-info pickles,
 * the object pickle, the list of storage keys, then each storage as an int64 element count and its bytes). The
 * pickle is read by the restricted unpickler (pickle.ts): nothing is executed. The backbone's state dict is picked
 * from a training checkpoint (`teacher` before `student`, then `model`, `state_dict`, ...), `module.` /
 * `backbone.` / `encoder.` prefixes are removed and heads dropped; the result reads like a .safetensors file.
 */
import { FlaneurError } from '../api/errors.js';
import {
  isTensor,
  isTuple,
  PickleDict,
  type PickleStorage,
  type PickleTensor,
  type PickleValue,
  STORAGE_TYPES,
  unpickle,
} from './pickle.js';
import { DTYPE_BYTES, f16ToF32, type WeightFile, type WeightTensor } from './safetensors.js';
import { type ByteSource, bufferSource, isZip, readZip } from './zip.js';

const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;

/** Which part of the checkpoint became the model's weights, for the import's report. */
export interface CheckpointSelection {
  /** Path of keys to the state dict inside the checkpoint ('' when the file is the state dict itself). */
  path: string;
  /** Other candidate state dicts that were not taken (e.g. 'student' when 'teacher' was). */
  skipped: string[];
  /** Prefix removed from every name (e.g. 'module.backbone.'). */
  strippedPrefix: string;
  /** Number of tensors dropped as not part of the backbone (projection heads). */
  droppedHeads: number;
  format: 'zip' | 'legacy';
}

export interface PytorchCheckpoint extends WeightFile {
  selection: CheckpointSelection;
}

function invalid(message: string, details?: string): FlaneurError {
  return new FlaneurError('INVALID_MODEL', message, details ? { details } : {});
}

/** A short description of a pickled value for a message (never recursive: a value may nest deeply). */
function describe(v: PickleValue): string {
  if (typeof v === 'string') return JSON.stringify(v.slice(0, 60));
  if (v === null || typeof v !== 'object') return String(v);
  if (Array.isArray(v)) return 'a list';
  if (v instanceof PickleDict) return 'a dict';
  if (v instanceof Uint8Array) return 'bytes';
  return 'name' in v ? String(v.name) : `a ${v.kind}`;
}

function storageFromPid(pid: PickleValue, source: string): PickleStorage {
  if (!isTuple(pid) || pid.items[0] !== 'storage') {
    throw invalid(`${source}: a persistent id that is not a tensor storage; not a PyTorch checkpoint.`);
  }
  const [, type, key, , numel, view] = pid.items;
  const typeName = typeof type === 'object' && type !== null && 'name' in type ? String(type.name) : '';
  const dtype = STORAGE_TYPES[typeName];
  if (!dtype) throw invalid(`${source}: a storage of unknown type ${typeName || describe(type as PickleValue)}.`);
  if (typeof key !== 'string' || typeof numel !== 'number' || !Number.isSafeInteger(numel) || numel < 0) {
    throw invalid(`${source}: a malformed storage record.`);
  }
  let v: PickleStorage['view'] = null;
  if (view !== undefined && view !== null && isTuple(view)) {
    const [, offset, size] = view.items;
    if (typeof offset === 'number' && typeof size === 'number') v = { offset, numel: size };
  }
  return { kind: 'storage', dtype, key, numel, view: v };
}

/** A storage's bytes, read only where a tensor asks. */
interface StorageBytes {
  /** Bytes the file holds for the storage. */
  length: number;
  read(start: number, length: number): Uint8Array;
}

interface RawCheckpoint {
  root: PickleValue;
  storage: (key: string) => StorageBytes;
  format: 'zip' | 'legacy';
}

/** The most a checkpoint's pickle may take (a ViT-g training checkpoint's is a few MB). */
export const MAX_PICKLE_BYTES = 64 << 20;

function readZipCheckpoint(src: ByteSource, source: string, inertClasses = false): RawCheckpoint {
  const zip = readZip(src, source);
  const pkl = [...zip.entries.keys()].find((n) => n === 'data.pkl' || n.endsWith('/data.pkl'));
  if (!pkl) {
    throw invalid(`${source} is a zip archive without data.pkl: not a PyTorch checkpoint.`);
  }
  const pklSize = zip.entries.get(pkl)?.size ?? 0;
  if (pklSize > MAX_PICKLE_BYTES) {
    throw invalid(`${source} was refused: its data.pkl is ${pklSize} bytes, far more than a state dict's pickle.`);
  }
  const prefix = pkl.slice(0, -'data.pkl'.length);
  const { value } = unpickle(zip.read(pkl), 0, {
    source,
    persistentLoad: (pid) => storageFromPid(pid, source),
    inertClasses,
  });
  return {
    root: value,
    format: 'zip',
    storage: (key) => {
      const name = `${prefix}data/${key}`;
      const entry = zip.entries.get(name);
      if (!entry) throw invalid(`${source}: storage "${key}" is missing from the archive.`);
      return { length: entry.size, read: (start, length) => zip.readRange(name, start, length) };
    },
  };
}

function readLegacyCheckpoint(src: ByteSource, source: string, inertClasses = false): RawCheckpoint {
  // The pickles come first: they are read from a bounded window; the storages after them are read where needed.
  const buf = src.read(0, Math.min(src.size, MAX_PICKLE_BYTES));
  const noPid = () => {
    throw invalid(`${source}: unexpected storage reference in the checkpoint header.`);
  };
  const magic = unpickle(buf, 0, { source, persistentLoad: noPid });
  if (magic.value !== LEGACY_MAGIC && BigInt(typeof magic.value === 'number' ? magic.value : -1) !== LEGACY_MAGIC) {
    throw invalid(`${source} is neither a zip nor a legacy PyTorch checkpoint (wrong magic number).`);
  }
  const protocol = unpickle(buf, magic.end, { source, persistentLoad: noPid });
  if (protocol.value !== 1001) {
    throw invalid(`${source}: legacy checkpoint protocol ${describe(protocol.value)}; only 1001 is known.`);
  }
  const sysInfo = unpickle(buf, protocol.end, { source, persistentLoad: noPid });
  if (sysInfo.value instanceof PickleDict && sysInfo.value.get('little_endian') === false) {
    throw new FlaneurError('UNSUPPORTED_MODEL', `${source} was saved on a big-endian machine; re-save it on x86/ARM.`);
  }
  const storages = new Map<string, PickleStorage>();
  const main = unpickle(buf, sysInfo.end, {
    source,
    inertClasses,
    persistentLoad: (pid) => {
      const s = storageFromPid(pid, source);
      const known = storages.get(s.key);
      if (!known) storages.set(s.key, { ...s, view: null });
      return s;
    },
  });
  const keys = unpickle(buf, main.end, { source, persistentLoad: noPid });
  if (!Array.isArray(keys.value) || !keys.value.every((k) => typeof k === 'string')) {
    throw invalid(`${source}: the list of storages after the pickle is unreadable.`);
  }
  const data = new Map<string, { at: number; length: number }>();
  let pos = keys.end;
  for (const key of keys.value as string[]) {
    const s = storages.get(key);
    if (!s) throw invalid(`${source}: storage "${key}" is listed but no tensor uses it.`);
    if (data.has(key)) throw invalid(`${source}: storage "${key}" is listed twice.`);
    const head = pos + 8 <= src.size ? src.read(pos, 8) : new Uint8Array(0);
    if (head.length < 8) {
      throw invalid(`${source} is truncated: storage "${key}" starts past the end of the file. Copy it again.`);
    }
    const numel = new DataView(head.buffer, head.byteOffset, 8).getBigInt64(0, true);
    const bytes = Number(numel) * DTYPE_BYTES[s.dtype];
    if (numel < 0n || !Number.isSafeInteger(bytes) || pos + 8 + bytes > src.size) {
      throw invalid(
        `${source} is truncated: storage "${key}" needs ${numel * BigInt(DTYPE_BYTES[s.dtype])} bytes from byte ${pos + 8}; the file has ${src.size}. Copy it again.`,
      );
    }
    data.set(key, { at: pos + 8, length: bytes });
    pos += 8 + bytes;
  }
  return {
    root: main.value,
    format: 'legacy',
    storage: (key) => {
      const d = data.get(key);
      if (!d) throw invalid(`${source}: storage "${key}" has no data in the file.`);
      return {
        length: d.length,
        read: (start, length) => {
          const b = src.read(d.at + start, length);
          if (b.length < length) throw invalid(`${source} changed while being read; import it again.`);
          return b;
        },
      };
    },
  };
}

/** Keys under which training scripts keep the weights, in the order they are preferred. */
const STATE_KEYS = ['teacher', 'student', 'model_ema', 'model', 'state_dict', 'model_state_dict', 'module', 'network'];
/** Prefixes wrapping a backbone: DataParallel, the DINO MultiCropWrapper, encoder wrappers. */
const WRAPPERS = ['module.', 'backbone.', 'encoder.', '_orig_mod.'];

function tensorEntries(d: PickleDict): Array<[string, PickleTensor]> {
  const out: Array<[string, PickleTensor]> = [];
  for (const [k, v] of d) if (typeof k === 'string' && isTensor(v)) out.push([k, v]);
  return out;
}

/** Finds the state dict: the dict itself when most of its values are tensors, else the preferred key's value. */
function selectStateDict(root: PickleValue, source: string): { dict: PickleDict; path: string; skipped: string[] } {
  let d = root;
  const path: string[] = [];
  let skipped: string[] = [];
  for (let depth = 0; depth < 4; depth++) {
    if (!(d instanceof PickleDict)) break;
    const tensors = tensorEntries(d).length;
    if (tensors > 0 && tensors >= d.size / 2) return { dict: d, path: path.join('.'), skipped };
    const candidates = STATE_KEYS.filter((k) => d instanceof PickleDict && d.get(k) instanceof PickleDict);
    const chosen = candidates[0];
    if (!chosen) break;
    skipped = candidates.slice(1).map((k) => [...path, k].join('.'));
    path.push(chosen);
    d = d.get(chosen) as PickleValue;
  }
  const keys =
    root instanceof PickleDict
      ? [...root.keys()]
          .slice(0, 8)
          .map((k) => describe(k))
          .join(', ')
      : describe(root);
  throw new FlaneurError(
    'UNSUPPORTED_MODEL',
    `${source} holds no state dict of tensors that Flaneur can find (looked for the file itself and the keys ${STATE_KEYS.join(', ')}; found ${keys}).`,
  );
}

function stripWrappers(names: string[]): { prefix: string; keep: (n: string) => string | null; dropped: number } {
  let prefix = '';
  let current = names;
  for (;;) {
    const p = WRAPPERS.find((w) => {
      const inside = current.filter((n) => n.startsWith(w)).length;
      // A wrapper when every name has it, or (a backbone beside heads) when most do.
      return inside === current.length || (w !== 'module.' && inside > 0 && inside >= current.length / 2);
    });
    if (!p) break;
    prefix += p;
    current = current.filter((n) => n.startsWith(p)).map((n) => n.slice(p.length));
  }
  const kept = names.filter((n) => n.startsWith(prefix)).length;
  return {
    prefix,
    keep: (n) => (n.startsWith(prefix) ? n.slice(prefix.length) : null),
    dropped: names.length - kept,
  };
}

/** The most elements one tensor may have when its strides repeat storage elements (a broadcast view). */
const MAX_REPEATED_ELEMENTS = 1 << 24;

/**
 * The tensor's elements in row-major order, following its storage offset and strides. Shape, strides and offset are
 * checked against the bytes the file holds for the storage before anything is allocated or read, and only the
 * span the tensor covers is read.
 */
function materialize(t: PickleTensor, storage: StorageBytes, name: string, source: string): Float32Array {
  const s = t.storage;
  const base = s.view ? s.view.offset : 0;
  const eb = DTYPE_BYTES[s.dtype];
  const available = Math.floor(storage.length / eb);
  const declared = s.view ? s.view.offset + s.view.numel : s.numel;
  const limit = Math.min(available, declared);
  const damaged = (what: string) =>
    invalid(`${source}: tensor "${name}" ${what}; the file is damaged or crafted. Download it again.`);
  if (t.stride.length !== t.shape.length) throw damaged(`has ${t.shape.length} sizes but ${t.stride.length} strides`);
  let n = 1;
  for (const d of t.shape) n *= d;
  if (!Number.isSafeInteger(n) || n > 2 ** 31) throw damaged(`claims ${n} elements`);
  if (n === 0) return new Float32Array(0);
  let last = t.offset;
  for (let i = 0; i < t.shape.length; i++) last += ((t.shape[i] as number) - 1) * (t.stride[i] ?? 0);
  if (
    !Number.isSafeInteger(base) ||
    base < 0 ||
    t.offset < 0 ||
    t.stride.some((x) => x < 0) ||
    !Number.isSafeInteger(last) ||
    base + last >= limit
  ) {
    throw invalid(
      `${source}: tensor "${name}" points past the end of its storage "${s.key}" (element ${base + last} of ${limit}); the file is damaged or truncated.`,
    );
  }
  const first = base + t.offset;
  const span = base + last - first + 1;
  if (n > span && n > MAX_REPEATED_ELEMENTS) {
    throw damaged(`repeats ${span} stored elements as ${n} (a stride of 0 with a huge shape)`);
  }
  const bytes = storage.read(first * eb, span * eb);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const read: (i: number) => number =
    s.dtype === 'F32'
      ? (i) => dv.getFloat32(i * 4, true)
      : s.dtype === 'F16'
        ? (i) => f16ToF32(dv.getUint16(i * 2, true))
        : s.dtype === 'BF16'
          ? (i) => {
              scratchU32[0] = dv.getUint16(i * 2, true) << 16;
              return scratchF32[0] as number;
            }
          : s.dtype === 'F64'
            ? (i) => dv.getFloat64(i * 8, true)
            : () => {
                throw invalid(`${source}: tensor "${name}" is ${s.dtype}, not floating point.`);
              };
  const out = new Float32Array(n);
  const rank = t.shape.length;
  const idx = new Array<number>(rank).fill(0);
  let at = 0;
  for (let k = 0; k < n; k++) {
    out[k] = read(at);
    for (let d = rank - 1; d >= 0; d--) {
      idx[d] = (idx[d] as number) + 1;
      at += t.stride[d] as number;
      if ((idx[d] as number) < (t.shape[d] as number)) break;
      at -= (t.stride[d] as number) * (t.shape[d] as number);
      idx[d] = 0;
    }
  }
  return out;
}

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

export function isLegacyTar(buf: Uint8Array): boolean {
  return buf.length > 262 && Buffer.from(buf.subarray(257, 262)).toString('latin1') === 'ustar';
}

/**
 * Parses a PyTorch checkpoint (bytes in memory, or a file read at offsets) and picks its backbone state dict. Only
 * the pickle is read whole; each tensor's bytes are read when asked for.
 */
export function parsePytorchCheckpoint(input: Uint8Array | ByteSource, source: string): PytorchCheckpoint {
  const src = input instanceof Uint8Array ? bufferSource(input) : input;
  const raw = readRaw(src, source, false);
  const { dict, path, skipped } = selectStateDict(raw.root, source);
  const entries = tensorEntries(dict);
  const { prefix, keep, dropped } = stripWrappers(entries.map(([n]) => n));
  const tensors = new Map<string, WeightTensor>();
  const byName = new Map<string, PickleTensor>();
  for (const [name, t] of entries) {
    const k = keep(name);
    if (k === null) continue;
    tensors.set(k, { name: k, dtype: t.storage.dtype, shape: t.shape });
    byName.set(k, t);
  }
  return {
    tensors,
    metadata: {},
    selection: { path, skipped, strippedPrefix: prefix, droppedHeads: dropped, format: raw.format },
    float32(name) {
      const t = byName.get(name);
      if (!t) throw invalid(`Tensor "${name}" is not in ${source}.`);
      return tensorData(raw, t, name, prefix + name, source);
    },
  };
}

/** A tensor's elements after its storage's size is checked (`name` for the storage message, `full` for the rest). */
function tensorData(raw: RawCheckpoint, t: PickleTensor, name: string, full: string, source: string): Float32Array {
  const bytes = raw.storage(t.storage.key);
  const need = t.storage.numel * DTYPE_BYTES[t.storage.dtype];
  if (bytes.length < need && !t.storage.view) {
    throw invalid(
      `${source}: storage "${t.storage.key}" (used by "${name}") should hold ${need} bytes but has ${bytes.length}; the file is damaged or truncated.`,
    );
  }
  return materialize(t, bytes, full, source);
}

function readRaw(src: ByteSource, source: string, inertClasses: boolean): RawCheckpoint {
  const buf = src.read(0, Math.min(src.size, 512));
  if (isLegacyTar(buf)) {
    throw new FlaneurError(
      'UNSUPPORTED_MODEL',
      `${source} is a tar checkpoint from PyTorch before 0.4 (2018); load it once in PyTorch and save it again.`,
    );
  }
  if (isZip(buf)) return readZipCheckpoint(src, source, inertClasses);
  if (buf[0] === 0x80) return readLegacyCheckpoint(src, source, inertClasses);
  throw invalid(`${source} is not a PyTorch checkpoint (neither a zip archive nor a pickle).`);
}

/** A whole checkpoint's pickle as data, and any of its tensors read on demand (as float32). */
export interface PytorchPickle {
  root: PickleValue;
  format: 'zip' | 'legacy';
  /** The elements of a tensor found in `root` (`name` for messages), checked against the bytes the file holds. */
  float32(t: PickleTensor, name: string): Float32Array;
}

/**
 * Reads a checkpoint's pickle without picking a state dict (a Lightning .ckpt: state_dict, hyper_parameters,
 * optimizer states). `inertClasses`: unknown classes become inert records (pickle.ts), never called.
 */
export function readPytorchPickle(
  input: Uint8Array | ByteSource,
  source: string,
  o: { inertClasses?: boolean } = {},
): PytorchPickle {
  const src = input instanceof Uint8Array ? bufferSource(input) : input;
  const raw = readRaw(src, source, o.inertClasses ?? false);
  return {
    root: raw.root,
    format: raw.format,
    float32: (t, name) => tensorData(raw, t, name, name, source),
  };
}

/** Whether a file name looks like a PyTorch checkpoint. */
export function isPytorchFileName(file: string): boolean {
  return /\.(pth|pt|bin|ckpt)$/i.test(file);
}
