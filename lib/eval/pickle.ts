// A minimal, safe reader for the Python pickles the CIFAR "python version" ships: protocol 2 dicts of
// byte strings, lists of ints and one uint8 numpy array, as written by Python 2's cPickle (STRING
// opcodes) or Python 3 (bytes via _codecs.encode, numpy via numpy._core). Nothing is ever executed:
// the only callables understood are the three constructors those files use; anything else is an error
// naming the file, the offset and what was expected.
import { DoveError } from '../base/errors';

export class PyTuple {
  constructor(readonly items: PyValue[]) {}
}

/** A dict; keys (str, bytes or int) are normalised to strings (bytes as latin-1). */
export class PyDict {
  readonly entries = new Map<string, PyValue>();
}

export class PyGlobal {
  constructor(
    readonly module: string,
    readonly name: string,
  ) {}
  get qualified(): string {
    return `${this.module}.${this.name}`;
  }
}

export class NdArray {
  shape: number[] = [];
  dtype = '';
  fortranOrder = false;
  data: Uint8Array = new Uint8Array(0);
  built = false;
}

export class NumpyDtype {
  constructor(readonly descr: string) {}
}

export type PyValue = null | boolean | number | bigint | string | Uint8Array | PyValue[] | PyTuple | PyDict | PyGlobal | NdArray | NumpyDtype;

const MARK = Symbol('mark');
type StackItem = PyValue | typeof MARK;

const RECONSTRUCT = new Set(['numpy.core.multiarray._reconstruct', 'numpy._core.multiarray._reconstruct']);

function fail(file: string, offset: number, message: string): never {
  throw new DoveError(`${file}: malformed pickle at byte ${offset}: ${message}`, 'INVALID_DATASET');
}

function describe(value: StackItem): string {
  if (value === MARK) return 'a MARK';
  if (value === null) return 'None';
  if (value instanceof Uint8Array) return `bytes(${value.length})`;
  if (Array.isArray(value)) return 'a list';
  if (value instanceof PyTuple) return 'a tuple';
  if (value instanceof PyDict) return 'a dict';
  if (value instanceof PyGlobal) return value.qualified;
  if (value instanceof NdArray) return 'a numpy array';
  if (value instanceof NumpyDtype) return 'a numpy dtype';
  return typeof value;
}

function keyOf(file: string, offset: number, key: StackItem): string {
  if (typeof key === 'string') return key;
  if (key instanceof Uint8Array) return Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('latin1');
  if (typeof key === 'number' || typeof key === 'bigint') return String(key);
  return fail(file, offset, `expected a str, bytes or int dict key but found ${describe(key)}`);
}

/** Parses one pickle from `buf` (`file` names it in errors). Large byte strings are views into `buf`. */
export function readPickle(buf: Uint8Array, file: string): PyValue {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const stack: StackItem[] = [];
  const memo = new Map<number, PyValue>();
  let pos = 0;

  const need = (n: number, at: number): void => {
    if (pos + n > buf.length) fail(file, at, `file ends early (needed ${n} more bytes, ${buf.length - pos} left): truncated download?`);
  };
  /** The next `n` bytes, read by `get` at their offset. */
  const take = <T>(n: number, at: number, get: (offset: number) => T): T => {
    need(n, at);
    pos += n;
    return get(pos - n);
  };
  const u8 = (at: number): number => take(1, at, (o) => buf[o]!);
  const u16 = (at: number): number => take(2, at, (o) => view.getUint16(o, true));
  const u32 = (at: number): number => take(4, at, (o) => view.getUint32(o, true));
  const i32 = (at: number): number => take(4, at, (o) => view.getInt32(o, true));
  const bytes = (n: number, at: number): Uint8Array => take(n, at, (o) => buf.subarray(o, o + n));
  const line = (at: number): string => {
    const end = buf.indexOf(0x0a, pos);
    if (end < 0) fail(file, at, 'expected a newline-terminated name');
    const text = Buffer.from(buf.buffer, buf.byteOffset + pos, end - pos).toString('latin1');
    pos = end + 1;
    return text;
  };
  const pop = (at: number): PyValue => {
    const v = stack.pop();
    if (v === undefined) fail(file, at, 'stack underflow');
    if (v === MARK) fail(file, at, 'unexpected MARK');
    return v;
  };
  /** The top `n` values, in stack order. */
  const popItems = (n: number, at: number): PyValue[] => Array.from({ length: n }, () => pop(at)).reverse();
  const top = (at: number): PyValue => {
    const v = stack[stack.length - 1];
    if (v === undefined || v === MARK) fail(file, at, 'stack underflow');
    return v;
  };
  const popMark = (at: number): PyValue[] => {
    const idx = stack.lastIndexOf(MARK);
    if (idx < 0) fail(file, at, 'missing MARK');
    const items = stack.splice(idx) as PyValue[];
    items.shift();
    return items;
  };
  const utf8 = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('utf8');

  const reduce = (at: number, callable: PyValue, args: PyValue): PyValue => {
    if (!(callable instanceof PyGlobal)) fail(file, at, `REDUCE on ${describe(callable)}`);
    const argv = args instanceof PyTuple ? args.items : fail(file, at, `REDUCE arguments are ${describe(args)}, expected a tuple`);
    const name = callable.qualified;
    if (name === '_codecs.encode') {
      // Python 3 writes bytes in protocol 2 as _codecs.encode(latin-1 text, 'latin1').
      const [text, encoding] = argv;
      if (typeof text !== 'string' || (encoding !== 'latin1' && encoding !== 'latin-1')) fail(file, at, '_codecs.encode with unexpected arguments');
      return new Uint8Array(Buffer.from(text, 'latin1'));
    }
    if (RECONSTRUCT.has(name)) return new NdArray();
    if (name === 'numpy.dtype') {
      const [descr] = argv;
      if (typeof descr !== 'string' && !(descr instanceof Uint8Array)) fail(file, at, 'numpy.dtype without a type string');
      return new NumpyDtype(typeof descr === 'string' ? descr : Buffer.from(descr).toString('latin1'));
    }
    return fail(file, at, `refusing to call ${name}: only the CIFAR python format (dicts, lists, bytes, a uint8 numpy array) is supported`);
  };

  const build = (at: number, target: PyValue, state: PyValue): void => {
    if (target instanceof NumpyDtype) return; // byte order / flags: irrelevant for u1
    if (!(target instanceof NdArray)) fail(file, at, `BUILD on ${describe(target)}`);
    const items = state instanceof PyTuple ? state.items : [];
    if (items.length !== 5) fail(file, at, 'numpy array state is not (version, shape, dtype, fortran, data)');
    const [, shape, dtype, fortran, data] = items;
    if (!(shape instanceof PyTuple) || !shape.items.every((d) => typeof d === 'number')) fail(file, at, 'numpy array shape is not a tuple of ints');
    if (!(dtype instanceof NumpyDtype)) fail(file, at, 'numpy array without a dtype');
    if (!(data instanceof Uint8Array)) fail(file, at, `numpy array data is ${describe(data)}, expected raw bytes`);
    target.shape = shape.items as number[];
    target.dtype = dtype.descr;
    target.fortranOrder = fortran === true;
    target.data = data;
    target.built = true;
  };

  if (buf.length < 2 || buf[0] !== 0x80) {
    fail(file, 0, `expected a binary pickle (first byte 0x80, protocol 2+) but found ${buf.length === 0 ? 'an empty file' : `0x${(buf[0] ?? 0).toString(16).padStart(2, '0')}`}`);
  }
  for (;;) {
    const at = pos;
    if (pos >= buf.length) fail(file, at, 'file ends before the STOP opcode: truncated download?');
    const op = buf[pos++]!;
    switch (op) {
      case 0x80: // PROTO
        if (u8(at) > 5) fail(file, at, 'pickle protocol newer than 5');
        break;
      case 0x95: // FRAME (protocol 4): a length prefix we can ignore
        bytes(8, at);
        break;
      case 0x2e: // STOP
        if (stack.length !== 1) fail(file, at, `STOP with ${stack.length} values on the stack`);
        return pop(at);
      case 0x7d: // EMPTY_DICT
        stack.push(new PyDict());
        break;
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x29: // EMPTY_TUPLE
        stack.push(new PyTuple([]));
        break;
      case 0x28: // MARK
        stack.push(MARK);
        break;
      case 0x75: {
        // SETITEMS
        const items = popMark(at);
        const dict = top(at);
        if (!(dict instanceof PyDict) || items.length % 2 !== 0) fail(file, at, 'SETITEMS without a dict or with an odd item count');
        for (let i = 0; i < items.length; i += 2) dict.entries.set(keyOf(file, at, items[i]!), items[i + 1]!);
        break;
      }
      case 0x73: {
        // SETITEM
        const value = pop(at);
        const key = pop(at);
        const dict = top(at);
        if (!(dict instanceof PyDict)) fail(file, at, 'SETITEM without a dict');
        dict.entries.set(keyOf(file, at, key), value);
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark(at);
        const list = top(at);
        if (!Array.isArray(list)) fail(file, at, 'APPENDS without a list');
        for (const item of items) list.push(item);
        break;
      }
      case 0x61: {
        // APPEND
        const value = pop(at);
        const list = top(at);
        if (!Array.isArray(list)) fail(file, at, 'APPEND without a list');
        list.push(value);
        break;
      }
      case 0x71: // BINPUT
      case 0x72: // LONG_BINPUT
        memo.set(op === 0x71 ? u8(at) : u32(at), top(at));
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top(at));
        break;
      case 0x68: // BINGET
      case 0x6a: {
        // LONG_BINGET
        const idx = op === 0x68 ? u8(at) : u32(at);
        if (!memo.has(idx)) fail(file, at, `memo entry ${idx} used before it was stored`);
        stack.push(memo.get(idx)!);
        break;
      }
      case 0x4a: // BININT (signed 32-bit)
        stack.push(i32(at));
        break;
      case 0x4b: // BININT1
      case 0x4d: // BININT2
        stack.push(op === 0x4b ? u8(at) : u16(at));
        break;
      case 0x8a: {
        // LONG1: little-endian two's complement
        const n = u8(at);
        const b = bytes(n, at);
        let v = 0n;
        for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
        if (n > 0 && (b[n - 1]! & 0x80) !== 0) v -= 1n << BigInt(8 * n);
        stack.push(v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v);
        break;
      }
      case 0x47: // BINFLOAT (big-endian double)
        stack.push(take(8, at, (o) => view.getFloat64(o, false)));
        break;
      case 0x55: // SHORT_BINSTRING (Python 2 str): bytes
      case 0x43: // SHORT_BINBYTES
      case 0x42: // BINBYTES
        stack.push(bytes(op === 0x42 ? u32(at) : u8(at), at));
        break;
      case 0x54: {
        // BINSTRING
        const n = i32(at);
        if (n < 0) fail(file, at, 'negative string length');
        stack.push(bytes(n, at));
        break;
      }
      case 0x58: // BINUNICODE
      case 0x8c: // SHORT_BINUNICODE
        stack.push(utf8(bytes(op === 0x58 ? u32(at) : u8(at), at)));
        break;
      case 0x74: // TUPLE
        stack.push(new PyTuple(popMark(at)));
        break;
      case 0x85: // TUPLE1
      case 0x86: // TUPLE2
      case 0x87: // TUPLE3
        stack.push(new PyTuple(popItems(op - 0x84, at)));
        break;
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
      case 0x89: // NEWFALSE
        stack.push(op === 0x88);
        break;
      case 0x63: {
        // GLOBAL "module\nname\n"
        const module = line(at);
        stack.push(new PyGlobal(module, line(at)));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop(at);
        const module = pop(at);
        if (typeof module !== 'string' || typeof name !== 'string') fail(file, at, 'STACK_GLOBAL without module and name strings');
        stack.push(new PyGlobal(module, name));
        break;
      }
      case 0x52: {
        // REDUCE
        const args = pop(at);
        const callable = pop(at);
        stack.push(reduce(at, callable, args));
        break;
      }
      case 0x62: {
        // BUILD
        const state = pop(at);
        build(at, top(at), state);
        break;
      }
      default:
        fail(file, at, `unsupported opcode 0x${op.toString(16).padStart(2, '0')} (expected the CIFAR python format: pickle protocol 2 of dicts, lists, bytes and a numpy array)`);
    }
  }
}
