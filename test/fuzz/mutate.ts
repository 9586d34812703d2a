// Input generators for the fuzz targets (fast-check arbitraries that produce bytes). Three kinds,
// mixed by every target: raw random bytes; a checked-in seed mutated the way byte fuzzers mutate
// (bit flips, interesting bytes, insertions, deletions, duplications, splices, truncation); and, for
// JSON and CSV seeds, token-level edits: a number replaced by an edge case (-0, 1.5, 1e400, 2^53+1,
// "64", NaN, ...), a value replaced by null, a list, an object or a deeply nested array (up to 100000 levels). Every
// mutation is a list of small operations, so fast-check shrinks a failure to the few that matter.
import fc from 'fast-check';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export const bytesOf = (text: string): Uint8Array => encoder.encode(text);
export const textOf = (bytes: Uint8Array): string => decoder.decode(bytes);

/** Numbers and values that break naive validation. */
export const INTERESTING_TOKENS = [
  '0', '-0', '1', '-1', '2', '0.5', '1.5', '-1.5', '1e400', '-1e400', '1e-400', '2e308', '1e21', '1e300',
  '9007199254740991', '9007199254740993', '18446744073709551616', '4294967296', '4294967295', '2147483648',
  '65536', '65537', '8193', '8192', '64', '63', '100000000', '0.1e1', '-9007199254740993',
  'NaN', 'Infinity', '-Infinity', '"64"', '"1e400"', '"NaN"', '"-0"', '""', 'null', 'true', 'false', '[]', '{}', '[null]',
  '[0]', '[-1]', '[1.5]', '[0,0]', '[1,0]', '[0,1e400]', '{"a":null}', '"\\u0000"', '"\\ud800"', '"__proto__"',
];

const INTERESTING_BYTES = [0x00, 0x01, 0x7f, 0x80, 0xff, 0xfe, 0x22, 0x5b, 0x5d, 0x7b, 0x7d, 0x2c, 0x3a, 0x0a, 0x0d, 0x2d, 0x2e, 0x30, 0x39, 0x65];

type ByteOp =
  | { op: 'flip'; at: number; bit: number }
  | { op: 'set'; at: number; value: number }
  | { op: 'insert'; at: number; bytes: Uint8Array }
  | { op: 'delete'; at: number; length: number }
  | { op: 'duplicate'; at: number; length: number; to: number }
  | { op: 'splice'; at: number; seed: number; from: number; length: number }
  | { op: 'truncate'; at: number }
  | { op: 'u32'; at: number; value: number };

const position = fc.nat({ max: 1 << 30 });

function byteOp(seedCount: number): fc.Arbitrary<ByteOp> {
  return fc.oneof(
    fc.record({ op: fc.constant('flip' as const), at: position, bit: fc.nat({ max: 7 }) }),
    fc.record({ op: fc.constant('set' as const), at: position, value: fc.oneof(fc.constantFrom(...INTERESTING_BYTES), fc.nat({ max: 255 })) }),
    fc.record({ op: fc.constant('insert' as const), at: position, bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
    fc.record({ op: fc.constant('delete' as const), at: position, length: fc.integer({ min: 1, max: 64 }) }),
    fc.record({ op: fc.constant('duplicate' as const), at: position, length: fc.integer({ min: 1, max: 256 }), to: position }),
    fc.record({ op: fc.constant('splice' as const), at: position, seed: fc.nat({ max: Math.max(0, seedCount - 1) }), from: position, length: fc.integer({ min: 1, max: 256 }) }),
    fc.record({ op: fc.constant('truncate' as const), at: position }),
    fc.record({ op: fc.constant('u32' as const), at: position, value: fc.constantFrom(0, 1, 0x7fffffff, 0x80000000, 0xffffffff, 0xfffffffe, 0x10000, 64, 3072) }),
  );
}

function applyByteOps(seed: Uint8Array, ops: readonly ByteOp[], seeds: readonly Uint8Array[]): Uint8Array {
  let b = seed;
  for (const o of ops) {
    const n = b.length;
    const at = n === 0 ? 0 : o.at % (n + 1);
    switch (o.op) {
      case 'flip':
        if (n > 0) {
          b = b.slice();
          b[o.at % n] = b[o.at % n]! ^ (1 << o.bit);
        }
        break;
      case 'set':
        if (n > 0) {
          b = b.slice();
          b[o.at % n] = o.value;
        }
        break;
      case 'u32':
        if (n >= 4) {
          b = b.slice();
          new DataView(b.buffer).setUint32(o.at % (n - 3), o.value, (o.at & 1) === 0);
        }
        break;
      case 'insert':
        b = concat(b.subarray(0, at), o.bytes, b.subarray(at));
        break;
      case 'delete':
        b = concat(b.subarray(0, at), b.subarray(Math.min(n, at + o.length)));
        break;
      case 'duplicate': {
        const piece = b.subarray(at, Math.min(n, at + o.length));
        const to = n === 0 ? 0 : o.to % (n + 1);
        b = concat(b.subarray(0, to), piece, b.subarray(to));
        break;
      }
      case 'splice': {
        const other = seeds[o.seed % Math.max(1, seeds.length)] ?? new Uint8Array(0);
        const from = other.length === 0 ? 0 : o.from % other.length;
        b = concat(b.subarray(0, at), other.subarray(from, from + o.length), b.subarray(at));
        break;
      }
      case 'truncate':
        b = b.subarray(0, at);
        break;
    }
  }
  return b;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

type TextOp =
  | { op: 'token'; which: number; value: string }
  | { op: 'nest'; which: number; depth: number }
  | { op: 'long'; which: number; length: number };

// A JSON/CSV scalar: a number, a quoted string, or a bare word.
const TOKEN = /-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|"(?:[^"\\]|\\.)*"|\b(?:true|false|null)\b/g;

function textOp(): fc.Arbitrary<TextOp> {
  return fc.oneof(
    { weight: 6, arbitrary: fc.record({ op: fc.constant('token' as const), which: position, value: fc.oneof(fc.constantFrom(...INTERESTING_TOKENS), fc.double().map((d) => (Number.isFinite(d) ? String(d) : '1e400')), fc.json({ maxDepth: 2 })) }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('nest' as const), which: position, depth: fc.constantFrom(2, 63, 64, 65, 200, 5000, 20000, 100000) }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('long' as const), which: position, length: fc.constantFrom(1000, 20000) }) },
  );
}

function applyTextOps(text: string, ops: readonly TextOp[]): string {
  let t = text;
  for (const o of ops) {
    const tokens = [...t.matchAll(TOKEN)];
    if (tokens.length === 0) {
      t += o.op === 'token' ? o.value : '';
      continue;
    }
    const m = tokens[o.which % tokens.length]!;
    const replacement = o.op === 'token' ? o.value : o.op === 'nest' ? `${'['.repeat(o.depth)}${']'.repeat(o.depth)}` : JSON.stringify('x'.repeat(o.length));
    t = t.slice(0, m.index) + replacement + t.slice(m.index + m[0].length);
  }
  return t;
}

export interface InputOptions {
  /** Seeds are text (JSON, CSV): add token-level edits. */
  text?: boolean;
  maxRandomLength?: number;
}

/** Bytes for a target: random, byte-mutated seeds and (text) token-mutated seeds. */
export function inputs(seeds: readonly Uint8Array[], options: InputOptions = {}): fc.Arbitrary<Uint8Array> {
  const pool = seeds.length > 0 ? seeds : [new Uint8Array(0)];
  const seedIndex = fc.nat({ max: pool.length - 1 });
  const random = fc.uint8Array({ maxLength: options.maxRandomLength ?? 512 });
  const byteMutated = fc
    .tuple(seedIndex, fc.array(byteOp(pool.length), { minLength: 1, maxLength: 8 }))
    .map(([i, ops]) => applyByteOps(pool[i]!, ops, pool));
  const choices: fc.WeightedArbitrary<Uint8Array>[] = [
    { weight: 1, arbitrary: random },
    { weight: 1, arbitrary: seedIndex.map((i) => pool[i]!) },
    { weight: 4, arbitrary: byteMutated },
  ];
  if (options.text === true) {
    const textMutated = fc
      .tuple(seedIndex, fc.array(textOp(), { minLength: 1, maxLength: 4 }))
      .map(([i, ops]) => bytesOf(applyTextOps(textOf(pool[i]!), ops)));
    choices.push({ weight: 6, arbitrary: textMutated });
    choices.push({ weight: 1, arbitrary: fc.json({ maxDepth: 4 }).map(bytesOf) });
  }
  return fc.oneof(...choices);
}
