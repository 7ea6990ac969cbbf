/**
 * A restricted reader of Python pickles, for PyTorch checkpoints. It understands the binary opcodes (protocols
 * 2-5) that a saved state dict uses and builds plain data: None, booleans, numbers, strings, bytes, lists, tuples,
 * dicts, and the few named objects a checkpoint needs (tensors and their storages, OrderedDict, argparse
 * Namespace). Every other global (os.system, builtins.eval, any class) is refused with its name when the pickle
 * names it: nothing is ever imported, called or executed; "calling" an allowed global only builds a record.
 * With `inertClasses` (a Lightning checkpoint's hyper-parameter objects: OmegaConf's DictConfig, dataclasses) an
 * unknown global may be named and instantiated (NEWOBJ) as an inert record that takes state (BUILD, SETITEMS,
 * APPENDS) and is never called: a REDUCE of it (os.system, eval, any class) is still refused.
 */
import { FlaneurError } from '../api/errors.js';
import type { SafeDType } from './safetensors.js';

/** The storage a tensor points into: resolved by the caller from the persistent id. */
export interface PickleStorage {
  kind: 'storage';
  /** Element type from the storage class (FloatStorage -> F32, HalfStorage -> F16, ...). */
  dtype: StorageDType;
  /** Key of the storage in the file (zip: data/<key>; legacy: the order of the key list). */
  key: string;
  /** Number of elements the checkpoint says the storage holds. */
  numel: number;
  /** Legacy views: (view key, element offset, view size) of a larger storage. */
  view: { offset: number; numel: number } | null;
}

export interface PickleTensor {
  kind: 'tensor';
  storage: PickleStorage;
  /** Offset into the storage, in elements. */
  offset: number;
  shape: number[];
  stride: number[];
}

export interface PickleObject {
  kind: 'object';
  /** The allowed class (argparse.Namespace), or an unknown one made inert (`inertClasses`). */
  global: string;
  state: PickleValue;
  /** An inert instance of an unknown class: never called, only read as data. */
  inert?: true;
  /** Items an inert dict subclass was given (SETITEMS). */
  items?: PickleDict;
  /** Items an inert list subclass was given (APPENDS). */
  list?: PickleValue[];
}

export type PickleValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | PickleValue[]
  | PickleTuple
  | PickleDict
  | PickleTensor
  | PickleStorage
  | PickleObject
  | PickleGlobal;

export interface PickleTuple {
  kind: 'tuple';
  items: PickleValue[];
}

export class PickleDict extends Map<PickleValue, PickleValue> {}

interface PickleGlobal {
  kind: 'global';
  name: string;
  /** An unknown global named under `inertClasses`: a placeholder that is never called. */
  inert?: true;
}

/** A storage's element type, named as in safetensors. */
export type StorageDType = SafeDType;

export const STORAGE_TYPES: Record<string, StorageDType> = {
  'torch.FloatStorage': 'F32',
  'torch.HalfStorage': 'F16',
  'torch.BFloat16Storage': 'BF16',
  'torch.DoubleStorage': 'F64',
  'torch.LongStorage': 'I64',
  'torch.IntStorage': 'I32',
  'torch.ShortStorage': 'I16',
  'torch.CharStorage': 'I8',
  'torch.ByteStorage': 'U8',
  'torch.BoolStorage': 'BOOL',
};

/** Globals the reader knows how to build as data; the value says what "calling" it makes. */
const ALLOWED_CALLS = new Set([
  'collections.OrderedDict',
  'torch._utils._rebuild_tensor',
  'torch._utils._rebuild_tensor_v2',
  'torch._utils._rebuild_parameter',
  'torch._utils._rebuild_parameter_with_state',
  'argparse.Namespace',
  'builtins.set',
  'builtins.frozenset',
  '__builtin__.set',
  'torch.Size',
  '_codecs.encode',
]);

export class PickleRefused extends FlaneurError {}

/**
 * Bounds on what one pickle may build. A saved ViT-g state dict with its optimizer state stays far below each; a
 * crafted pickle meets one of them long before it costs seconds or hundreds of MB. Every opcode is linear in its
 * own bytes or in the items it consumes, so the work of a pickle is linear in its length.
 */
export const PICKLE_LIMITS = {
  /** Values pushed in all (each opcode pushes at most one). */
  objects: 1 << 23,
  /** Items in one list, tuple, dict or set. */
  containerItems: 1 << 21,
  /** Memo entries (MEMOIZE / PUT). */
  memo: 1 << 19,
  /** Containers inside containers. */
  depth: 256,
  /** Bytes of one LONG1/LONG4 integer (a checkpoint's integers are a few bytes). */
  longBytes: 1024,
  /** Values on the stack at once. */
  stack: 1 << 21,
};

export interface UnpickleOptions {
  /** File name for messages. */
  source: string;
  /** Turns a persistent id (the tuple a torch pickle stores for a storage) into a storage. */
  persistentLoad: (pid: PickleValue) => PickleStorage;
  /**
   * Unknown globals become inert placeholders instead of refusing the file (a Lightning checkpoint's
   * hyper-parameter objects). They are never called: a REDUCE of one is refused as before.
   */
  inertClasses?: boolean;
}

/** Data constructors an inert-classes read may call: they build an empty container, whatever their arguments. */
const INERT_CONTAINERS = new Set(['collections.defaultdict']);

/**
 * Value constructors a Lightning checkpoint's callback and loop states use (a NumPy scalar or array, its dtype, a
 * path): under `inertClasses` "calling" one only records its arguments as an inert object, as NEWOBJ does.
 */
const INERT_RECORDS = new Set([
  'numpy.core.multiarray.scalar',
  'numpy._core.multiarray.scalar',
  'numpy.core.multiarray._reconstruct',
  'numpy._core.multiarray._reconstruct',
  'numpy.dtype',
  'pathlib.PosixPath',
  'pathlib.WindowsPath',
  'pathlib.Path',
]);

const MARK = Symbol('mark');
type StackItem = PickleValue | typeof MARK;

export function isTuple(v: PickleValue): v is PickleTuple {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && (v as PickleTuple).kind === 'tuple';
}

export function isTensor(v: PickleValue): v is PickleTensor {
  return typeof v === 'object' && v !== null && (v as PickleTensor).kind === 'tensor';
}

/** An inert instance of an unknown class (see `inertClasses`). */
export function isInertObject(v: PickleValue): v is PickleObject {
  return (
    typeof v === 'object' && v !== null && (v as PickleObject).kind === 'object' && (v as PickleObject).inert === true
  );
}

export function isStorage(v: PickleValue): v is PickleStorage {
  return typeof v === 'object' && v !== null && (v as PickleStorage).kind === 'storage';
}

function isGlobal(v: PickleValue): v is PickleGlobal {
  return typeof v === 'object' && v !== null && (v as PickleGlobal).kind === 'global';
}

const OPCODE_NAMES: Record<number, string> = {
  105: 'INST',
  111: 'OBJ',
  130: 'EXT1',
  131: 'EXT2',
  132: 'EXT4',
  73: 'INT',
  76: 'LONG',
  70: 'FLOAT',
  83: 'STRING',
  86: 'UNICODE',
  112: 'PUT',
  103: 'GET',
  80: 'PERSID',
  146: 'NEWOBJ_EX',
};

/**
 * Reads one pickle starting at `start`; returns its value and the offset just after its STOP opcode (legacy
 * checkpoints hold several pickles one after the other).
 */
export function unpickle(
  buf: Uint8Array,
  start: number,
  options: UnpickleOptions,
): { value: PickleValue; end: number } {
  const { source } = options;
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const stack: StackItem[] = [];
  /** The memo by index (an array: MEMOIZE's indices are dense, and an array is far cheaper than a Map). */
  const memo: PickleValue[] = [];
  let memoCount = 0;
  /** Nesting depth of each container built (1 for a flat one); bounded by PICKLE_LIMITS.depth. */
  const depthOf = new WeakMap<object, number>();
  let pos = start;
  let pushed = 0;

  const fail = (what: string): never => {
    throw new FlaneurError('INVALID_MODEL', `${source}: not a readable PyTorch checkpoint (${what} at byte ${pos}).`);
  };
  const tooLarge = (what: string): never => {
    throw new PickleRefused(
      'INVALID_MODEL',
      `${source} was refused: its pickle ${what}, far more than a saved PyTorch state dict holds. Nothing in the file was run.`,
      { details: `at byte ${pos}` },
    );
  };
  const push = (v: StackItem) => {
    if (++pushed > PICKLE_LIMITS.objects) tooLarge(`builds more than ${PICKLE_LIMITS.objects} values`);
    if (stack.length >= PICKLE_LIMITS.stack) tooLarge(`keeps more than ${PICKLE_LIMITS.stack} values on its stack`);
    stack.push(v);
  };
  const depth = (v: PickleValue): number => (typeof v === 'object' && v !== null ? (depthOf.get(v as object) ?? 0) : 0);
  /** Records that `container` now holds `items`: its length and nesting depth stay within the bounds. */
  const holds = <T extends object>(container: T, items: readonly PickleValue[], length: number): T => {
    if (length > PICKLE_LIMITS.containerItems) {
      tooLarge(`has a container of more than ${PICKLE_LIMITS.containerItems} items`);
    }
    let d = depthOf.get(container) ?? 1;
    for (const it of items) d = Math.max(d, depth(it) + 1);
    if (d > PICKLE_LIMITS.depth) tooLarge(`nests containers more than ${PICKLE_LIMITS.depth} deep`);
    depthOf.set(container, d);
    return container;
  };
  const remember = (i: number, v: PickleValue) => {
    if (memo[i] === undefined) {
      if (memoCount >= PICKLE_LIMITS.memo) tooLarge(`stores more than ${PICKLE_LIMITS.memo} memo entries`);
      memoCount++;
    }
    memo[i] = v;
  };
  const need = (n: number) => {
    if (pos + n > buf.length) fail('the pickle ends early: the file is truncated');
  };
  const u8 = () => {
    need(1);
    return buf[pos++] as number;
  };
  const u16 = () => {
    need(2);
    const v = dv.getUint16(pos, true);
    pos += 2;
    return v;
  };
  const u32 = () => {
    need(4);
    const v = dv.getUint32(pos, true);
    pos += 4;
    return v;
  };
  const u64 = () => {
    need(8);
    const v = dv.getBigUint64(pos, true);
    pos += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail('a length too large');
    return Number(v);
  };
  const bytes = (n: number) => {
    need(n);
    const b = buf.subarray(pos, pos + n);
    pos += n;
    return b;
  };
  const utf8 = (n: number) => new TextDecoder('utf-8').decode(bytes(n));
  const latin1 = (n: number) => Buffer.from(bytes(n)).toString('latin1');
  const line = () => {
    const end = buf.indexOf(0x0a, pos);
    if (end < 0) fail('an unterminated line');
    const s = Buffer.from(buf.subarray(pos, end)).toString('latin1');
    pos = end + 1;
    return s;
  };
  const pop = (): PickleValue => {
    const v = stack.pop();
    if (v === undefined || v === MARK) return fail('an empty stack');
    return v as PickleValue;
  };
  const top = (): PickleValue => {
    const v = stack.at(-1);
    if (v === undefined || v === MARK) return fail('an empty stack');
    return v as PickleValue;
  };
  const popMark = (): PickleValue[] => {
    const i = stack.lastIndexOf(MARK);
    if (i < 0) fail('a missing MARK');
    const items = stack.splice(i + 1) as PickleValue[];
    stack.pop(); // the MARK
    return items;
  };
  const tuple = (items: PickleValue[]): PickleTuple => holds({ kind: 'tuple', items }, items, items.length);
  const list = (items: PickleValue[]): PickleValue[] => holds(items, items, items.length);
  /** A little-endian two's-complement integer, converted in one linear step (never a byte at a time). */
  const long = (n: number): number | bigint => {
    if (n > PICKLE_LIMITS.longBytes) tooLarge(`holds an integer of ${n} bytes`);
    const b = bytes(n);
    if (b.length === 0) return 0;
    const hex = Buffer.from(b).reverse().toString('hex');
    let v = BigInt(`0x${hex}`);
    if ((b[b.length - 1] as number) & 0x80) v -= 1n << BigInt(8 * b.length);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  };
  /** The list an APPEND goes to: the value itself, or an inert list subclass's items. */
  const listOf = (v: PickleValue): PickleValue => {
    if (!isInertObject(v)) return v;
    v.list ??= list([]);
    return v.list;
  };
  /** Appends without spreading (a spread of millions of items overflows the call stack). */
  const extend = (target: PickleValue[], items: readonly PickleValue[]) => {
    holds(target, items, target.length + items.length);
    for (const it of items) target.push(it);
  };
  const global = (module: string, name: string): PickleGlobal => {
    const full = `${module}.${name}`;
    if (ALLOWED_CALLS.has(full) || full in STORAGE_TYPES) return { kind: 'global', name: full };
    if (options.inertClasses) return { kind: 'global', name: full, inert: true };
    throw new PickleRefused(
      'INVALID_MODEL',
      `${source} was refused: its pickle names "${full}", which is not part of a PyTorch state dict (only tensors, storages, OrderedDict, dict, list, tuple, numbers and strings are read). Nothing in the file was run. If you trust the file, re-save just the model's state_dict, or convert it to .safetensors.`,
      { details: `global ${full} at byte ${pos}` },
    );
  };
  const setItems = (target: PickleValue, items: PickleValue[]) => {
    if (isInertObject(target)) target.items ??= holds(new PickleDict(), [], 0);
    const d = (isInertObject(target) ? target.items : target) as PickleDict;
    if (!(d instanceof PickleDict)) fail('SETITEMS on something that is not a dict');
    holds(d, items, d.size + items.length / 2);
    for (let i = 0; i + 1 < items.length; i += 2) d.set(items[i] as PickleValue, items[i + 1] as PickleValue);
  };
  const asInts = (v: PickleValue, what: string): number[] => {
    const items = isTuple(v) ? v.items : Array.isArray(v) ? v : null;
    if (!items?.every((x) => typeof x === 'number' && Number.isInteger(x) && x >= 0)) {
      return fail(`a tensor whose ${what} is not a tuple of sizes`);
    }
    return items as number[];
  };
  const call = (fn: PickleValue, args: PickleValue): PickleValue => {
    if (!isGlobal(fn)) return fail('a call of something that is not a known function');
    if (fn.inert) {
      if (INERT_CONTAINERS.has(fn.name)) return new PickleDict();
      if (INERT_RECORDS.has(fn.name)) return { kind: 'object', global: fn.name, state: args, inert: true };
      // Calling it is what unpickling an unknown global would do in Python: refused, whatever it is.
      throw new PickleRefused(
        'INVALID_MODEL',
        `${source} was refused: its pickle calls "${fn.name}", which is not part of a PyTorch checkpoint's data. Nothing in the file was run.`,
        { details: `REDUCE of ${fn.name} at byte ${pos}` },
      );
    }
    const a = isTuple(args) ? args.items : fail(`arguments of ${fn.name} that are not a tuple`);
    switch (fn.name) {
      case 'collections.OrderedDict':
        return new PickleDict();
      case 'torch._utils._rebuild_tensor':
      case 'torch._utils._rebuild_tensor_v2': {
        const [storage, offset, size, stride] = a;
        if (!isStorage(storage as PickleValue) || typeof offset !== 'number') {
          return fail('a tensor without a storage');
        }
        return {
          kind: 'tensor',
          storage: storage as PickleStorage,
          offset,
          shape: asInts(size as PickleValue, 'size'),
          stride: asInts(stride as PickleValue, 'stride'),
        };
      }
      case 'torch._utils._rebuild_parameter':
      case 'torch._utils._rebuild_parameter_with_state': {
        const data = a[0] as PickleValue;
        return isTensor(data) ? data : fail('a parameter without a tensor');
      }
      case 'builtins.set':
      case 'builtins.frozenset':
      case '__builtin__.set': {
        const items = a[0];
        return Array.isArray(items) ? items : list([]);
      }
      case 'torch.Size':
        return tuple(asInts(a[0] as PickleValue, 'size'));
      case '_codecs.encode': {
        const [text, encoding] = a;
        if (typeof text !== 'string' || encoding !== 'latin1') return fail('an encoded string other than latin1');
        return new Uint8Array(Buffer.from(text as string, 'latin1'));
      }
      default:
        // Storage classes and Namespace are only ever referenced or created empty, never called with arguments.
        return fail(`a call of ${fn.name}`);
    }
  };

  for (;;) {
    const op = u8();
    switch (op) {
      case 0x80: // PROTO
        u8();
        break;
      case 0x95: // FRAME
        u64();
        break;
      case 0x2e: // STOP
        return { value: pop(), end: pos };
      case 0x28: // MARK
        push(MARK);
        break;
      case 0x29: // EMPTY_TUPLE
        push(tuple([]));
        break;
      case 0x5d: // EMPTY_LIST
        push(list([]));
        break;
      case 0x7d: // EMPTY_DICT
        push(new PickleDict());
        break;
      case 0x8f: // EMPTY_SET
        push(list([]));
        break;
      case 0x74: // TUPLE
        push(tuple(popMark()));
        break;
      case 0x85: // TUPLE1
        push(tuple([pop()]));
        break;
      case 0x86: {
        // TUPLE2
        const b = pop();
        push(tuple([pop(), b]));
        break;
      }
      case 0x87: {
        // TUPLE3
        const c = pop();
        const b = pop();
        push(tuple([pop(), b, c]));
        break;
      }
      case 0x6c: // LIST
        push(list(popMark()));
        break;
      case 0x64: {
        // DICT
        const d = new PickleDict();
        setItems(d, popMark());
        push(d);
        break;
      }
      case 0x61: {
        // APPEND
        const v = pop();
        const target = listOf(top());
        if (!Array.isArray(target)) fail('APPEND to something that is not a list');
        extend(target as PickleValue[], [v]);
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark();
        const target = listOf(top());
        if (!Array.isArray(target)) fail('APPENDS to something that is not a list');
        extend(target as PickleValue[], items);
        break;
      }
      case 0x90: {
        // ADDITEMS
        const items = popMark();
        const set = top();
        if (!Array.isArray(set)) fail('ADDITEMS to something that is not a set');
        extend(set as PickleValue[], items);
        break;
      }
      case 0x91: // FROZENSET
        push(list(popMark()));
        break;
      case 0x73: {
        // SETITEM
        const v = pop();
        const k = pop();
        setItems(top(), [k, v]);
        break;
      }
      case 0x75: {
        // SETITEMS
        const items = popMark();
        setItems(top(), items);
        break;
      }
      case 0x4e: // NONE
        push(null);
        break;
      case 0x88: // NEWTRUE
        push(true);
        break;
      case 0x89: // NEWFALSE
        push(false);
        break;
      case 0x4a: // BININT
        need(4);
        push(dv.getInt32(pos, true));
        pos += 4;
        break;
      case 0x4b: // BININT1
        push(u8());
        break;
      case 0x4d: // BININT2
        push(u16());
        break;
      case 0x8a: // LONG1
        push(long(u8()));
        break;
      case 0x8b: // LONG4
        push(long(u32()));
        break;
      case 0x47: // BINFLOAT
        need(8);
        push(dv.getFloat64(pos, false));
        pos += 8;
        break;
      case 0x58: // BINUNICODE
        push(utf8(u32()));
        break;
      case 0x8c: // SHORT_BINUNICODE
        push(utf8(u8()));
        break;
      case 0x8d: // BINUNICODE8
        push(utf8(u64()));
        break;
      case 0x54: // BINSTRING (Python 2 str)
        push(latin1(u32()));
        break;
      case 0x55: // SHORT_BINSTRING
        push(latin1(u8()));
        break;
      case 0x42: // BINBYTES
        push(new Uint8Array(bytes(u32())));
        break;
      case 0x43: // SHORT_BINBYTES
        push(new Uint8Array(bytes(u8())));
        break;
      case 0x8e: // BINBYTES8
      case 0x96: // BYTEARRAY8
        push(new Uint8Array(bytes(u64())));
        break;
      case 0x71: // BINPUT
        remember(u8(), top());
        break;
      case 0x72: // LONG_BINPUT
        remember(u32(), top());
        break;
      case 0x94: // MEMOIZE
        remember(memoCount, top());
        break;
      case 0x68: // BINGET
      case 0x6a: {
        // LONG_BINGET
        const i = op === 0x68 ? u8() : u32();
        const v = memo[i];
        if (v === undefined) fail(`a reference to memo ${i} that was never stored`);
        push(v as PickleValue);
        break;
      }
      case 0x63: {
        // GLOBAL
        const module = line();
        push(global(module, line()));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') fail('STACK_GLOBAL without names');
        push(global(module as string, name as string));
        break;
      }
      case 0x52: {
        // REDUCE
        const args = pop();
        push(call(pop(), args));
        break;
      }
      case 0x81: {
        // NEWOBJ
        const args = pop();
        const cls = pop();
        if (isGlobal(cls) && cls.name === 'argparse.Namespace') {
          push({ kind: 'object', global: cls.name, state: null });
        } else if (isGlobal(cls) && cls.inert) {
          // An instance of an unknown class, made without running anything: a record of its state to come.
          push({ kind: 'object', global: cls.name, state: null, inert: true });
        } else if (isGlobal(cls) && cls.name === 'collections.OrderedDict') {
          push(new PickleDict());
        } else {
          push(call(cls, args));
        }
        break;
      }
      case 0x62: {
        // BUILD: only data records take state (Namespace); an OrderedDict's state (state_dict _metadata) is dropped.
        const state = pop();
        const obj = top();
        if (typeof obj === 'object' && obj !== null && (obj as PickleObject).kind === 'object') {
          (obj as PickleObject).state = state;
        } else if (!(obj instanceof PickleDict) && !isTensor(obj)) {
          fail('BUILD on an object that takes no state');
        }
        break;
      }
      case 0x51: // BINPERSID
        push(options.persistentLoad(pop()));
        break;
      case 0x30: // POP
        if (stack.at(-1) === MARK) stack.pop();
        else pop();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        push(top());
        break;
      default: {
        pos--;
        const name = OPCODE_NAMES[op] ?? `0x${op.toString(16).padStart(2, '0')}`;
        throw new PickleRefused(
          'INVALID_MODEL',
          `${source} was refused: its pickle uses the opcode ${name}, which a saved PyTorch state dict does not need. Nothing in the file was run.`,
          { details: `opcode ${name} at byte ${pos}` },
        );
      }
    }
  }
}
