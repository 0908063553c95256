/**
 * A restricted Python unpickler (protocols 0–5) and a protocol-2 pickler, enough for torch.save.
 *
 * Python values map to JS as: None → null, bool → boolean, int → number (bigint beyond 2^53),
 * float → number, str → string, bytes/bytearray → Uint8Array, list → array, tuple → frozen
 * array (see `isTuple`), dict → Map (keys may be non-strings), set/frozenset → Set.
 *
 * Nothing in a pickle is ever executed: globals are resolved only through the caller's
 * `findGlobal` whitelist, and REDUCE/NEWOBJ can only call the JS functions it returns.
 */

// ---------------------------------------------------------------- shared value helpers

export type Tuple = readonly unknown[];

const tuples = new WeakSet<object>();

/** A Python tuple: a frozen array, told apart from lists by `isTuple`. */
export function tuple(items: Iterable<unknown> = []): Tuple {
  const t = Object.freeze([...items]);
  tuples.add(t);
  return t;
}

export function isTuple(value: unknown): value is Tuple {
  return Array.isArray(value) && tuples.has(value);
}

function isList(value: unknown): value is unknown[] {
  return Array.isArray(value) && !tuples.has(value);
}

/** A reference to a module-level Python object, pickled as GLOBAL. */
export class PyGlobal {
  constructor(readonly module: string, readonly name: string) {}
}

/** An object rebuilt as `callable(*args)`, then filled with dict items and BUILD state if given. */
export class PyReduce {
  constructor(
    readonly callable: PyGlobal,
    readonly args: Tuple,
    readonly extra: { dictItems?: Map<unknown, unknown>; state?: unknown } = {},
  ) {}
}

/** What a whitelisted global may be called with (REDUCE, NEWOBJ, NEWOBJ_EX). */
export type PyCallable = (args: Tuple, kwargs?: Map<unknown, unknown>) => unknown;

// ---------------------------------------------------------------- opcodes

const OP = {
  MARK: 0x28, STOP: 0x2e, POP: 0x30, POP_MARK: 0x31, DUP: 0x32, FLOAT: 0x46, INT: 0x49,
  BININT: 0x4a, BININT1: 0x4b, LONG: 0x4c, BININT2: 0x4d, NONE: 0x4e, PERSID: 0x50,
  BINPERSID: 0x51, REDUCE: 0x52, STRING: 0x53, BINSTRING: 0x54, SHORT_BINSTRING: 0x55,
  UNICODE: 0x56, BINUNICODE: 0x58, APPEND: 0x61, BUILD: 0x62, GLOBAL: 0x63, DICT: 0x64,
  EMPTY_DICT: 0x7d, APPENDS: 0x65, GET: 0x67, BINGET: 0x68, INST: 0x69, LONG_BINGET: 0x6a,
  LIST: 0x6c, EMPTY_LIST: 0x5d, OBJ: 0x6f, PUT: 0x70, BINPUT: 0x71, LONG_BINPUT: 0x72,
  SETITEM: 0x73, TUPLE: 0x74, EMPTY_TUPLE: 0x29, SETITEMS: 0x75, BINFLOAT: 0x47,
  PROTO: 0x80, NEWOBJ: 0x81, EXT1: 0x82, EXT2: 0x83, EXT4: 0x84, TUPLE1: 0x85, TUPLE2: 0x86,
  TUPLE3: 0x87, NEWTRUE: 0x88, NEWFALSE: 0x89, LONG1: 0x8a, LONG4: 0x8b, BINBYTES: 0x42,
  SHORT_BINBYTES: 0x43, SHORT_BINUNICODE: 0x8c, BINUNICODE8: 0x8d, BINBYTES8: 0x8e,
  EMPTY_SET: 0x8f, ADDITEMS: 0x90, FROZENSET: 0x91, NEWOBJ_EX: 0x92, STACK_GLOBAL: 0x93,
  MEMOIZE: 0x94, FRAME: 0x95, BYTEARRAY8: 0x96, NEXT_BUFFER: 0x97, READONLY_BUFFER: 0x98,
} as const;

const OPCODE_NAMES = new Map<number, string>(Object.entries(OP).map(([name, code]) => [code, name]));

const HIGHEST_PROTOCOL = 5;
const MAX_DECIMAL_DIGITS = 4300;

/** Python 3 unpicklers rename these Python 2 modules for protocols < 3 (fix_imports). */
const PY2_MODULES: Record<string, string> = { __builtin__: 'builtins', copy_reg: 'copyreg' };

const utf8 = new TextDecoder('utf-8', { fatal: true });
const utf8Encoder = new TextEncoder();

// ---------------------------------------------------------------- unpickler

export interface UnpickleOptions {
  /** file name (or similar) that every error message starts with */
  source: string;
  /** resolves a global; `undefined` refuses it. Functions it returns may be called by REDUCE/NEWOBJ. */
  findGlobal: (module: string, name: string) => unknown;
  /** resolves a persistent id (PERSID/BINPERSID); without it those opcodes are refused */
  persistentLoad?: (pid: unknown) => unknown;
  /** applies BUILD state to an object; without it BUILD is refused */
  build?: (target: unknown, state: unknown) => void;
  /**
   * Python 2 `str` (STRING, BINSTRING, SHORT_BINSTRING): 'text' decodes it as UTF-8 (the default),
   * 'bytes' gives a Uint8Array, as Python 3's `pickle.load(f, encoding='bytes')`
   */
  py2Strings?: 'text' | 'bytes';
}

/** Unpickles the single pickle at the start of `bytes`. */
export function unpickle(bytes: Uint8Array, options: UnpickleOptions): unknown {
  return unpickleAt(bytes, 0, options).value;
}

/** Unpickles the pickle starting at `offset`; `end` is the offset just past its STOP opcode. */
export function unpickleAt(bytes: Uint8Array, offset: number, options: UnpickleOptions): { value: unknown; end: number } {
  return new Unpickler(bytes, offset, options).run();
}

class Unpickler {
  private readonly view: DataView;
  private pos: number;
  /** offset of the opcode being executed, for error messages */
  private opStart = 0;
  private proto = 0;
  private stack: unknown[] = [];
  private readonly metastack: unknown[][] = [];
  private readonly memo = new Map<number, unknown>();

  constructor(private readonly bytes: Uint8Array, offset: number, private readonly options: UnpickleOptions) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.pos = offset;
  }

  run(): { value: unknown; end: number } {
    for (;;) {
      this.opStart = this.pos;
      if (this.pos >= this.bytes.length) this.fail(`truncated pickle (no STOP opcode before end of data at offset ${this.pos})`);
      const op = this.u8();
      if (op === OP.STOP) return { value: this.pop(), end: this.pos };
      this.execute(op);
    }
  }

  private fail(message: string): never {
    throw new Error(`${this.options.source}: ${message}`);
  }

  private execute(op: number): void {
    switch (op) {
      case OP.PROTO: return this.setProtocol(this.u8());
      case OP.FRAME: this.take(8); return; // all data is in memory; frames need no handling
      case OP.MARK: this.metastack.push(this.stack); this.stack = []; return;
      case OP.POP: if (this.stack.length > 0) this.stack.pop(); else this.popMark(); return;
      case OP.POP_MARK: this.popMark(); return;
      case OP.DUP: return this.push(this.top());

      case OP.NONE: return this.push(null);
      case OP.NEWTRUE: return this.push(true);
      case OP.NEWFALSE: return this.push(false);
      case OP.INT: return this.push(this.parseIntLine(this.line()));
      case OP.BININT: return this.push(this.view.getInt32(this.skip(4), true));
      case OP.BININT1: return this.push(this.u8());
      case OP.BININT2: return this.push(this.view.getUint16(this.skip(2), true));
      case OP.LONG: return this.push(this.parseIntLine(this.line().replace(/L$/, '')));
      case OP.LONG1: return this.push(decodeLong(this.take(this.u8())));
      case OP.LONG4: return this.push(decodeLong(this.take(this.i32Length())));
      case OP.FLOAT: return this.push(this.parseFloatLine(this.line()));
      case OP.BINFLOAT: return this.push(this.view.getFloat64(this.skip(8), false));

      case OP.STRING: return this.push(this.py2String(unescapePyString(this.line(), (m) => this.fail(m))));
      case OP.BINSTRING: return this.push(this.py2String(this.take(this.i32Length())));
      case OP.SHORT_BINSTRING: return this.push(this.py2String(this.take(this.u8())));
      case OP.UNICODE: return this.push(decodeRawUnicodeEscape(this.lineBytes()));
      case OP.BINUNICODE: return this.push(this.decodeUtf8(this.take(this.u32())));
      case OP.SHORT_BINUNICODE: return this.push(this.decodeUtf8(this.take(this.u8())));
      case OP.BINUNICODE8: return this.push(this.decodeUtf8(this.take(this.u64Length())));
      case OP.BINBYTES: return this.push(this.copy(this.u32()));
      case OP.SHORT_BINBYTES: return this.push(this.copy(this.u8()));
      case OP.BINBYTES8: case OP.BYTEARRAY8: return this.push(this.copy(this.u64Length()));

      case OP.EMPTY_TUPLE: return this.push(tuple());
      case OP.TUPLE: return this.push(tuple(this.popMark()));
      case OP.TUPLE1: return this.push(tuple(this.popN(1)));
      case OP.TUPLE2: return this.push(tuple(this.popN(2)));
      case OP.TUPLE3: return this.push(tuple(this.popN(3)));
      case OP.EMPTY_LIST: return this.push([]);
      case OP.LIST: return this.push(this.popMark());
      case OP.APPEND: return this.appendItems(this.popN(1));
      case OP.APPENDS: return this.appendItems(this.popMark());
      case OP.EMPTY_DICT: return this.push(new Map());
      case OP.DICT: return this.push(this.setItems(new Map(), this.popMark()));
      case OP.SETITEM: { const items = this.popN(2); this.setItems(this.top(), items); return; }
      case OP.SETITEMS: { const items = this.popMark(); this.setItems(this.top(), items); return; }
      case OP.EMPTY_SET: return this.push(new Set());
      case OP.ADDITEMS: { const items = this.popMark(); this.addItems(this.top(), items); return; }
      case OP.FROZENSET: return this.push(new Set(this.popMark()));

      case OP.GLOBAL: { const module = this.line(); return this.push(this.findGlobal(module, this.line())); }
      case OP.STACK_GLOBAL: { const [module, name] = this.popN(2); return this.push(this.findGlobal(module, name)); }
      case OP.REDUCE: { const [callable, args] = this.popN(2); return this.push(this.call(callable, args)); }
      case OP.NEWOBJ: { const [cls, args] = this.popN(2); return this.push(this.call(cls, args)); }
      case OP.NEWOBJ_EX: { const [cls, args, kwargs] = this.popN(3); return this.push(this.call(cls, args, kwargs)); }
      case OP.BUILD: return this.build(this.popN(1)[0]);
      case OP.PERSID: return this.push(this.persistentLoad(this.line()));
      case OP.BINPERSID: return this.push(this.persistentLoad(this.popN(1)[0]));

      case OP.PUT: return this.memoize(this.indexLine());
      case OP.BINPUT: return this.memoize(this.u8());
      case OP.LONG_BINPUT: return this.memoize(this.u32());
      case OP.MEMOIZE: return this.memoize(this.memo.size);
      case OP.GET: return this.push(this.recall(this.indexLine()));
      case OP.BINGET: return this.push(this.recall(this.u8()));
      case OP.LONG_BINGET: return this.push(this.recall(this.u32()));

      default: {
        const name = OPCODE_NAMES.get(op);
        const code = `0x${op.toString(16).padStart(2, '0')}`;
        this.fail(name
          ? `unsupported pickle opcode ${name} (${code}) at offset ${this.opStart}`
          : `unknown pickle opcode ${code} at offset ${this.opStart}`);
      }
    }
  }

  // --- raw reads

  /** advances past `n` bytes and returns where they started */
  private skip(n: number): number {
    if (n > this.bytes.length - this.pos) {
      this.fail(`truncated pickle (needed ${n} bytes at offset ${this.pos}, ${this.bytes.length - this.pos} left)`);
    }
    const at = this.pos;
    this.pos += n;
    return at;
  }

  private take(n: number): Uint8Array {
    const at = this.skip(n);
    return this.bytes.subarray(at, at + n);
  }

  /** a plain Uint8Array copy (Buffer.slice would share memory with the input) */
  private copy(n: number): Uint8Array {
    return new Uint8Array(this.take(n));
  }

  private u8(): number {
    return this.bytes[this.skip(1)]!;
  }

  private u32(): number {
    return this.view.getUint32(this.skip(4), true);
  }

  /** an 8-byte length, checked against what is left before it can become an unsafe number */
  private u64Length(): number {
    const n = this.view.getBigUint64(this.skip(8), true);
    const left = this.bytes.length - this.pos;
    if (n > BigInt(left)) this.fail(`truncated pickle (needed ${n} bytes at offset ${this.pos}, ${left} left)`);
    return Number(n);
  }

  /** a signed 4-byte length (BINSTRING, LONG4) */
  private i32Length(): number {
    const n = this.view.getInt32(this.skip(4), true);
    if (n < 0) this.fail(`negative length ${n} at offset ${this.opStart}`);
    return n;
  }

  private lineBytes(): Uint8Array {
    const end = this.bytes.indexOf(0x0a, this.pos);
    if (end < 0) this.fail(`truncated pickle (unterminated line at offset ${this.pos})`);
    const line = this.bytes.subarray(this.pos, end);
    this.pos = end + 1;
    return line;
  }

  private line(): string {
    return this.decodeUtf8(this.lineBytes());
  }

  private py2String(bytes: Uint8Array): string | Uint8Array {
    return this.options.py2Strings === 'bytes' ? new Uint8Array(bytes) : this.decodeUtf8(bytes);
  }

  private decodeUtf8(bytes: Uint8Array): string {
    try {
      return utf8.decode(bytes);
    } catch {
      this.fail(`invalid UTF-8 string at offset ${this.opStart}`);
    }
  }

  /** memo index of protocol-0 PUT/GET */
  private indexLine(): number {
    const text = this.line();
    if (!/^\d+$/.test(text)) this.fail(`bad memo index '${text.slice(0, 40)}' at offset ${this.opStart}`);
    return Number(text);
  }

  private parseIntLine(text: string): number | bigint | boolean {
    if (text === '01') return true; // protocol 0 spells booleans as INT 01/00
    if (text === '00') return false;
    if (!/^[-+]?\d+$/.test(text)) this.fail(`bad integer literal '${text.slice(0, 40)}' at offset ${this.opStart}`);
    // Python 3.11 caps decimal conversion the same way: it is quadratic in the number of digits
    if (text.length > MAX_DECIMAL_DIGITS) this.fail(`integer literal of ${text.length} digits at offset ${this.opStart} is too long`);
    return normalizeInt(BigInt(text));
  }

  private parseFloatLine(text: string): number {
    const special: Record<string, number> = { inf: Infinity, '-inf': -Infinity, nan: NaN };
    const value = special[text] ?? Number(text);
    if ((Number.isNaN(value) && text !== 'nan') || text.trim() === '') this.fail(`bad float literal '${text.slice(0, 40)}' at offset ${this.opStart}`);
    return value;
  }

  // --- stack and memo

  private push(value: unknown): void {
    this.stack.push(value);
  }

  private top(): unknown {
    if (this.stack.length === 0) this.fail(`stack underflow at offset ${this.opStart}`);
    return this.stack[this.stack.length - 1];
  }

  private pop(): unknown {
    if (this.stack.length === 0) this.fail(`stack underflow at offset ${this.opStart}`);
    return this.stack.pop();
  }

  private popN(n: number): unknown[] {
    if (this.stack.length < n) this.fail(`stack underflow at offset ${this.opStart}`);
    return this.stack.splice(this.stack.length - n, n);
  }

  /** the items pushed since the last MARK; the stack below the mark becomes current again */
  private popMark(): unknown[] {
    const previous = this.metastack.pop();
    if (previous === undefined) this.fail(`MARK missing for opcode at offset ${this.opStart}`);
    const items = this.stack;
    this.stack = previous;
    return items;
  }

  private memoize(index: number): void {
    this.memo.set(index, this.top());
  }

  private recall(index: number): unknown {
    if (!this.memo.has(index)) this.fail(`memo key ${index} is missing at offset ${this.opStart}`);
    return this.memo.get(index);
  }

  // --- containers

  private appendItems(items: unknown[]): void {
    const list = this.top();
    if (!isList(list)) this.fail(`APPEND to a ${describe(list)} at offset ${this.opStart}`);
    for (const item of items) list.push(item);
  }

  private setItems(dict: unknown, items: unknown[]): Map<unknown, unknown> {
    if (!(dict instanceof Map)) this.fail(`SETITEM on a ${describe(dict)} at offset ${this.opStart}`);
    if (items.length % 2 !== 0) this.fail(`odd number of dict items at offset ${this.opStart}`);
    for (let i = 0; i < items.length; i += 2) dict.set(items[i], items[i + 1]);
    return dict;
  }

  private addItems(set: unknown, items: unknown[]): void {
    if (!(set instanceof Set)) this.fail(`ADDITEMS on a ${describe(set)} at offset ${this.opStart}`);
    for (const item of items) set.add(item);
  }

  // --- objects: everything goes through the caller's hooks

  private setProtocol(proto: number): void {
    if (proto > HIGHEST_PROTOCOL) this.fail(`unsupported pickle protocol ${proto}`);
    this.proto = proto;
  }

  private findGlobal(module: unknown, name: unknown): unknown {
    if (typeof module !== 'string' || typeof name !== 'string') this.fail(`STACK_GLOBAL needs two strings at offset ${this.opStart}`);
    const resolvedModule = this.proto < 3 ? PY2_MODULES[module] ?? module : module;
    const value = this.options.findGlobal(resolvedModule, name);
    if (value === undefined) {
      this.fail(`refusing to load global '${resolvedModule}.${name}': only tensors and plain containers are allowed`);
    }
    return value;
  }

  private call(callable: unknown, args: unknown, kwargs?: unknown): unknown {
    if (typeof callable !== 'function') this.fail(`cannot call a ${describe(callable)} at offset ${this.opStart}`);
    if (!Array.isArray(args)) this.fail(`call arguments must be a tuple, got a ${describe(args)} at offset ${this.opStart}`);
    if (kwargs !== undefined && !(kwargs instanceof Map)) this.fail(`keyword arguments must be a dict at offset ${this.opStart}`);
    return (callable as PyCallable)(isTuple(args) ? args : tuple(args), kwargs);
  }

  private build(state: unknown): void {
    if (!this.options.build) this.fail(`refusing to set object state (BUILD) at offset ${this.opStart}`);
    this.options.build(this.top(), state);
  }

  private persistentLoad(pid: unknown): unknown {
    if (!this.options.persistentLoad) this.fail(`persistent id at offset ${this.opStart}, but no persistent_load was given`);
    return this.options.persistentLoad(pid);
  }
}

/** Python int from little-endian two's complement bytes (LONG1/LONG4). */
function decodeLong(bytes: Uint8Array): number | bigint {
  if (bytes.length === 0) return 0;
  // via one hex string: linear, where shifting a bigint per byte would be quadratic on hostile input
  let hex = '';
  for (let i = bytes.length - 1; i >= 0; i--) hex += bytes[i]!.toString(16).padStart(2, '0');
  let value = BigInt(`0x${hex}`);
  if (bytes[bytes.length - 1]! & 0x80) value -= 1n << BigInt(8 * bytes.length);
  return normalizeInt(value);
}

/** ints that fit a double exactly become numbers */
function normalizeInt(value: bigint): number | bigint {
  return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
}

const SIMPLE_ESCAPES: Record<string, number> = {
  '\\': 0x5c, "'": 0x27, '"': 0x22, n: 0x0a, r: 0x0d, t: 0x09, a: 0x07, b: 0x08, f: 0x0c, v: 0x0b,
};

/** Bytes of a protocol-0 STRING argument: a Python repr in quotes (codecs.escape_decode). */
function unescapePyString(text: string, fail: (message: string) => never): Uint8Array {
  const quote = text[0];
  if (text.length < 2 || (quote !== "'" && quote !== '"') || text[text.length - 1] !== quote) {
    fail('STRING argument is not a quoted string');
  }
  const body = text.slice(1, -1);
  const out: number[] = [];
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if (c !== '\\') {
      out.push(...utf8Encoder.encode(c));
      continue;
    }
    const e = body[++i] ?? '';
    if (e in SIMPLE_ESCAPES) out.push(SIMPLE_ESCAPES[e]!);
    else if (e === '\n') continue;
    else if (e === 'x' && /^[0-9a-fA-F]{2}$/.test(body.slice(i + 1, i + 3))) {
      out.push(parseInt(body.slice(i + 1, i + 3), 16));
      i += 2;
    } else if (/[0-7]/.test(e)) {
      const digits = /^[0-7]{1,3}/.exec(body.slice(i))![0];
      out.push(parseInt(digits, 8) & 0xff);
      i += digits.length - 1;
    } else out.push(0x5c, ...utf8Encoder.encode(e)); // unknown escapes stay as written
  }
  return Uint8Array.from(out);
}

/** Protocol-0 UNICODE argument: latin-1 text with \uXXXX and \UXXXXXXXX escapes. */
function decodeRawUnicodeEscape(bytes: Uint8Array): string {
  return latin1(bytes).replace(/\\u([0-9a-fA-F]{4})|\\U([0-9a-fA-F]{8})/g, (_, u4: string | undefined, u8: string | undefined) =>
    String.fromCodePoint(parseInt(u4 ?? u8!, 16)));
}

function describe(value: unknown): string {
  if (value === null) return 'None';
  if (isTuple(value)) return 'tuple';
  if (Array.isArray(value)) return 'list';
  if (value instanceof Map) return 'dict';
  if (value instanceof Set) return 'set';
  if (value instanceof Uint8Array) return 'bytes';
  if (typeof value === 'object') return value.constructor?.name ?? 'object';
  return typeof value;
}

// ---------------------------------------------------------------- pickler

export interface PickleOptions {
  /** like Python's Pickler.persistent_id: a result other than undefined is pickled instead, as BINPERSID */
  persistentId?: (value: unknown) => unknown;
  /** like Python's reducer_override: how to rebuild an object; undefined → the default handling */
  reduce?: (value: object) => PyReduce | PyGlobal | undefined;
}

/**
 * Pickles `value` with protocol 2, as Python's pickle would: dicts (Map or plain object) and
 * lists in insertion order, tuples, str, int (number/bigint), float, bool, None (null),
 * bytes (Uint8Array, via _codecs.encode like Python 3 does for protocol 2), Set (builtins.set),
 * PyGlobal and PyReduce.
 * Integral numbers are written as ints, other numbers as floats.
 */
export function pickle(value: unknown, options: PickleOptions = {}): Uint8Array {
  const pickler = new Pickler(options);
  pickler.out.byte(OP.PROTO).byte(2);
  pickler.save(value);
  pickler.out.byte(OP.STOP);
  return pickler.out.result();
}

/** Python 3 picklers write these Python 3 module names in their Python 2 spelling (fix_imports). */
const PY3_MODULES: Record<string, string> = { builtins: '__builtin__', copyreg: 'copy_reg' };

const BATCH_SIZE = 1000;

class Pickler {
  readonly out = new ByteSink();
  /** memo indices by object identity, by string value, and by global name */
  private readonly objectMemo = new Map<object, number>();
  private readonly stringMemo = new Map<string, number>();
  private readonly globalMemo = new Map<string, number>();
  private memoSize = 0;

  constructor(private readonly options: PickleOptions) {}

  save(value: unknown, checkPersistent = true): void {
    if (checkPersistent && this.options.persistentId) {
      const pid = this.options.persistentId(value);
      if (pid !== undefined) {
        this.save(pid, false);
        this.out.byte(OP.BINPERSID);
        return;
      }
    }
    switch (typeof value) {
      case 'boolean': this.out.byte(value ? OP.NEWTRUE : OP.NEWFALSE); return;
      case 'number': return this.saveNumber(value);
      case 'bigint': return this.saveInt(value);
      case 'string': return this.saveString(value);
      case 'object': return value === null ? void this.out.byte(OP.NONE) : this.saveObject(value);
      default: throw new Error(`cannot pickle a value of type ${typeof value}`);
    }
  }

  private saveObject(value: object): void {
    const memoized = this.objectMemo.get(value);
    if (memoized !== undefined) return this.get(memoized);
    const target = this.options.reduce?.(value) ?? value;
    if (target instanceof PyGlobal) return this.saveGlobal(target);
    if (target instanceof PyReduce) return this.saveReduce(target, value);
    if (value instanceof Uint8Array) return this.saveBytes(value);
    if (isTuple(value)) return this.saveTuple(value);
    if (Array.isArray(value)) return this.saveList(value);
    if (value instanceof Map) return this.saveDict(value, value);
    if (value instanceof Set) return this.saveReduce(new PyReduce(new PyGlobal('builtins', 'set'), tuple([[...value]])), value);
    if (isPlainObject(value)) return this.saveDict(value, Object.entries(value));
    throw new Error(`cannot pickle ${describe(value)}`);
  }

  private saveNumber(value: number): void {
    if (Number.isSafeInteger(value) && !Object.is(value, -0)) return this.saveInt(value);
    this.out.byte(OP.BINFLOAT).f64be(value);
  }

  private saveInt(value: number | bigint): void {
    const n = Number(value);
    if (n >= 0 && n <= 0xff) this.out.byte(OP.BININT1).byte(n);
    else if (n >= 0 && n <= 0xffff) this.out.byte(OP.BININT2).u16(n);
    else if (n >= -0x80000000 && n <= 0x7fffffff) this.out.byte(OP.BININT).i32(n);
    else {
      const bytes = encodeLong(BigInt(value));
      if (bytes.length < 256) this.out.byte(OP.LONG1).byte(bytes.length);
      else this.out.byte(OP.LONG4).i32(bytes.length);
      this.out.bytes(bytes);
    }
  }

  private saveString(value: string): void {
    const memoized = this.stringMemo.get(value);
    if (memoized !== undefined) return this.get(memoized);
    const encoded = utf8Encoder.encode(value);
    this.out.byte(OP.BINUNICODE).u32(encoded.length).bytes(encoded);
    this.stringMemo.set(value, this.put());
  }

  /** protocol 2 has no bytes opcodes: Python 3 writes `_codecs.encode(latin1_text, 'latin1')` */
  private saveBytes(value: Uint8Array): void {
    const reduce = value.length === 0
      ? new PyReduce(new PyGlobal('builtins', 'bytes'), tuple())
      : new PyReduce(new PyGlobal('_codecs', 'encode'), tuple([latin1(value), 'latin1']));
    this.saveReduce(reduce, value);
  }

  private saveTuple(value: Tuple): void {
    if (value.length === 0) {
      this.out.byte(OP.EMPTY_TUPLE);
      return;
    }
    const short = value.length <= 3;
    if (!short) this.out.byte(OP.MARK);
    for (const item of value) this.save(item);
    const recursive = this.objectMemo.get(value);
    if (recursive !== undefined) {
      // the tuple was reached through its own items: drop them and refer to the memo instead
      if (short) for (let i = 0; i < value.length; i++) this.out.byte(OP.POP);
      else this.out.byte(OP.POP_MARK);
      return this.get(recursive);
    }
    this.out.byte(short ? [OP.TUPLE1, OP.TUPLE2, OP.TUPLE3][value.length - 1]! : OP.TUPLE);
    this.objectMemo.set(value, this.put());
  }

  private saveList(value: unknown[]): void {
    this.out.byte(OP.EMPTY_LIST);
    this.objectMemo.set(value, this.put());
    for (let i = 0; i < value.length; i += BATCH_SIZE) {
      const batch = value.slice(i, i + BATCH_SIZE);
      if (batch.length > 1) this.out.byte(OP.MARK);
      for (const item of batch) this.save(item);
      this.out.byte(batch.length > 1 ? OP.APPENDS : OP.APPEND);
    }
  }

  private saveDict(value: object, entries: Iterable<[unknown, unknown]>): void {
    this.out.byte(OP.EMPTY_DICT);
    this.objectMemo.set(value, this.put());
    this.saveItems(entries);
  }

  private saveItems(entries: Iterable<[unknown, unknown]>): void {
    const all = Array.from(entries);
    for (let i = 0; i < all.length; i += BATCH_SIZE) {
      const batch = all.slice(i, i + BATCH_SIZE);
      if (batch.length > 1) this.out.byte(OP.MARK);
      for (const [k, v] of batch) {
        this.save(k);
        this.save(v);
      }
      this.out.byte(batch.length > 1 ? OP.SETITEMS : OP.SETITEM);
    }
  }

  private saveGlobal(value: PyGlobal): void {
    const module = PY3_MODULES[value.module] ?? value.module;
    const key = `${module}\n${value.name}`;
    const memoized = this.globalMemo.get(key);
    if (memoized !== undefined) return this.get(memoized);
    this.out.byte(OP.GLOBAL).bytes(utf8Encoder.encode(`${key}\n`));
    this.globalMemo.set(key, this.put());
  }

  /** `obj` is what the result stands for, memoized so that later references become GETs */
  private saveReduce(reduce: PyReduce, obj: object): void {
    this.saveGlobal(reduce.callable);
    this.save(reduce.args);
    this.out.byte(OP.REDUCE);
    const recursive = this.objectMemo.get(obj);
    if (recursive !== undefined) {
      this.out.byte(OP.POP);
      return this.get(recursive);
    }
    this.objectMemo.set(obj, this.put());
    if (reduce.extra.dictItems) this.saveItems(reduce.extra.dictItems);
    if (reduce.extra.state !== undefined) {
      this.save(reduce.extra.state);
      this.out.byte(OP.BUILD);
    }
  }

  /** writes a PUT for the object just pickled and returns its memo index */
  private put(): number {
    const index = this.memoSize++;
    if (index < 256) this.out.byte(OP.BINPUT).byte(index);
    else this.out.byte(OP.LONG_BINPUT).u32(index);
    return index;
  }

  private get(index: number): void {
    if (index < 256) this.out.byte(OP.BINGET).byte(index);
    else this.out.byte(OP.LONG_BINGET).u32(index);
  }
}

function isPlainObject(value: object): value is Record<string, unknown> {
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** minimal little-endian two's complement, as Python's pickle.encode_long */
function encodeLong(value: bigint): Uint8Array {
  let n = 1;
  while (value < -(1n << BigInt(8 * n - 1)) || value >= 1n << BigInt(8 * n - 1)) n++;
  let v = BigInt.asUintN(8 * n, value);
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++, v >>= 8n) out[i] = Number(v & 0xffn);
  return out;
}

function latin1(bytes: Uint8Array): string {
  let text = '';
  for (let i = 0; i < bytes.length; i += 8192) text += String.fromCharCode(...bytes.subarray(i, i + 8192));
  return text;
}

/** Growable output buffer. */
class ByteSink {
  private buffer = new Uint8Array(256);
  private view = new DataView(this.buffer.buffer);
  private length = 0;

  private reserve(n: number): number {
    if (this.length + n > this.buffer.length) {
      const bigger = new Uint8Array(Math.max(this.buffer.length * 2, this.length + n));
      bigger.set(this.buffer.subarray(0, this.length));
      this.buffer = bigger;
      this.view = new DataView(bigger.buffer);
    }
    const at = this.length;
    this.length += n;
    return at;
  }

  byte(b: number): this {
    const at = this.reserve(1); // may replace this.buffer
    this.buffer[at] = b;
    return this;
  }

  u16(v: number): this {
    const at = this.reserve(2); // may replace this.view
    this.view.setUint16(at, v, true);
    return this;
  }

  u32(v: number): this {
    const at = this.reserve(4); // may replace this.view
    this.view.setUint32(at, v, true);
    return this;
  }

  i32(v: number): this {
    const at = this.reserve(4); // may replace this.view
    this.view.setInt32(at, v, true);
    return this;
  }

  f64be(v: number): this {
    const at = this.reserve(8); // may replace this.view
    this.view.setFloat64(at, v, false);
    return this;
  }

  bytes(data: Uint8Array): this {
    const at = this.reserve(data.length); // may replace this.buffer
    this.buffer.set(data, at);
    return this;
  }

  result(): Uint8Array {
    return this.buffer.slice(0, this.length);
  }
}
