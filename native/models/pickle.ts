/**
 * A restricted reader of Python pickles, for PyTorch checkpoints. It understands the binary opcodes (protocols
 * 2-5) that a saved state dict uses and builds plain data: None, booleans, numbers, strings, bytes, lists, tuples,
 * dicts, and the few named objects a checkpoint needs (tensors and their storages, OrderedDict, argparse
 * Namespace). Every other global (os.system, builtins.eval, any class) is refused with its name when the pickle
 * names it: nothing is ever imported, called or executed; "calling" an allowed global only builds a record.
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
  /** The allowed class (argparse.Namespace). */
  global: string;
  state: PickleValue;
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

export interface UnpickleOptions {
  /** File name for messages. */
  source: string;
  /** Turns a persistent id (the tuple a torch pickle stores for a storage) into a storage. */
  persistentLoad: (pid: PickleValue) => PickleStorage;
}

const MARK = Symbol('mark');
type StackItem = PickleValue | typeof MARK;

export function isTuple(v: PickleValue): v is PickleTuple {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && (v as PickleTuple).kind === 'tuple';
}

export function isTensor(v: PickleValue): v is PickleTensor {
  return typeof v === 'object' && v !== null && (v as PickleTensor).kind === 'tensor';
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
  const memo = new Map<number, PickleValue>();
  let pos = start;

  const fail = (what: string): never => {
    throw new FlaneurError('INVALID_MODEL', `${source}: not a readable PyTorch checkpoint (${what} at byte ${pos}).`);
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
    const items = stack.splice(i) as StackItem[];
    return items.slice(1) as PickleValue[];
  };
  const tuple = (items: PickleValue[]): PickleTuple => ({ kind: 'tuple', items });
  const long = (b: Uint8Array): number | bigint => {
    if (b.length === 0) return 0;
    let v = 0n;
    for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i] as number);
    if ((b[b.length - 1] as number) & 0x80) v -= 1n << BigInt(8 * b.length);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  };
  const global = (module: string, name: string): PickleGlobal => {
    const full = `${module}.${name}`;
    if (ALLOWED_CALLS.has(full) || full in STORAGE_TYPES) return { kind: 'global', name: full };
    throw new PickleRefused(
      'INVALID_MODEL',
      `${source} was refused: its pickle names "${full}", which is not part of a PyTorch state dict (only tensors, storages, OrderedDict, dict, list, tuple, numbers and strings are read). Nothing in the file was run. If you trust the file, re-save just the model's state_dict, or convert it to .safetensors.`,
      { details: `global ${full} at byte ${pos}` },
    );
  };
  const setItems = (target: PickleValue, items: PickleValue[]) => {
    if (!(target instanceof PickleDict)) fail('SETITEMS on something that is not a dict');
    const d = target as PickleDict;
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
        return Array.isArray(items) ? items : [];
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
        stack.push(MARK);
        break;
      case 0x29: // EMPTY_TUPLE
        stack.push(tuple([]));
        break;
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x7d: // EMPTY_DICT
        stack.push(new PickleDict());
        break;
      case 0x8f: // EMPTY_SET
        stack.push([]);
        break;
      case 0x74: // TUPLE
        stack.push(tuple(popMark()));
        break;
      case 0x85: // TUPLE1
        stack.push(tuple([pop()]));
        break;
      case 0x86: {
        // TUPLE2
        const b = pop();
        stack.push(tuple([pop(), b]));
        break;
      }
      case 0x87: {
        // TUPLE3
        const c = pop();
        const b = pop();
        stack.push(tuple([pop(), b, c]));
        break;
      }
      case 0x6c: // LIST
        stack.push(popMark());
        break;
      case 0x64: {
        // DICT
        const d = new PickleDict();
        setItems(d, popMark());
        stack.push(d);
        break;
      }
      case 0x61: {
        // APPEND
        const v = pop();
        const list = top();
        if (!Array.isArray(list)) fail('APPEND to something that is not a list');
        (list as PickleValue[]).push(v);
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark();
        const list = top();
        if (!Array.isArray(list)) fail('APPENDS to something that is not a list');
        (list as PickleValue[]).push(...items);
        break;
      }
      case 0x90: {
        // ADDITEMS
        const items = popMark();
        const set = top();
        if (!Array.isArray(set)) fail('ADDITEMS to something that is not a set');
        (set as PickleValue[]).push(...items);
        break;
      }
      case 0x91: // FROZENSET
        stack.push(popMark());
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
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x4a: // BININT
        need(4);
        stack.push(dv.getInt32(pos, true));
        pos += 4;
        break;
      case 0x4b: // BININT1
        stack.push(u8());
        break;
      case 0x4d: // BININT2
        stack.push(u16());
        break;
      case 0x8a: // LONG1
        stack.push(long(bytes(u8())));
        break;
      case 0x8b: // LONG4
        stack.push(long(bytes(u32())));
        break;
      case 0x47: // BINFLOAT
        need(8);
        stack.push(dv.getFloat64(pos, false));
        pos += 8;
        break;
      case 0x58: // BINUNICODE
        stack.push(utf8(u32()));
        break;
      case 0x8c: // SHORT_BINUNICODE
        stack.push(utf8(u8()));
        break;
      case 0x8d: // BINUNICODE8
        stack.push(utf8(u64()));
        break;
      case 0x54: // BINSTRING (Python 2 str)
        stack.push(latin1(u32()));
        break;
      case 0x55: // SHORT_BINSTRING
        stack.push(latin1(u8()));
        break;
      case 0x42: // BINBYTES
        stack.push(new Uint8Array(bytes(u32())));
        break;
      case 0x43: // SHORT_BINBYTES
        stack.push(new Uint8Array(bytes(u8())));
        break;
      case 0x8e: // BINBYTES8
      case 0x96: // BYTEARRAY8
        stack.push(new Uint8Array(bytes(u64())));
        break;
      case 0x71: // BINPUT
        memo.set(u8(), top());
        break;
      case 0x72: // LONG_BINPUT
        memo.set(u32(), top());
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x68: // BINGET
      case 0x6a: {
        // LONG_BINGET
        const i = op === 0x68 ? u8() : u32();
        if (!memo.has(i)) fail(`a reference to memo ${i} that was never stored`);
        stack.push(memo.get(i) as PickleValue);
        break;
      }
      case 0x63: {
        // GLOBAL
        const module = line();
        stack.push(global(module, line()));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') fail('STACK_GLOBAL without names');
        stack.push(global(module as string, name as string));
        break;
      }
      case 0x52: {
        // REDUCE
        const args = pop();
        stack.push(call(pop(), args));
        break;
      }
      case 0x81: {
        // NEWOBJ
        const args = pop();
        const cls = pop();
        if (isGlobal(cls) && cls.name === 'argparse.Namespace') {
          stack.push({ kind: 'object', global: cls.name, state: null });
        } else if (isGlobal(cls) && cls.name === 'collections.OrderedDict') {
          stack.push(new PickleDict());
        } else {
          stack.push(call(cls, args));
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
        stack.push(options.persistentLoad(pop()));
        break;
      case 0x30: // POP
        if (stack.at(-1) === MARK) stack.pop();
        else pop();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        stack.push(top());
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
