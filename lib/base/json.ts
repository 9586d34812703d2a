// Untrusted JSON and untrusted values in messages. JSON.parse itself is iterative, but JSON.stringify,
// String(array) and every recursive walk over the result overflow the stack on deeply nested input
// ([[[[...]]]] a million levels deep is 2 MB of text), so parsed files are depth-checked once here, and
// messages quote values through `preview`, which never recurses and never grows past its limit.
import { DoveError, type DoveErrorCode } from './errors';

/** Deepest nesting accepted in a JSON file this package reads (real files nest a handful of levels). */
export const MAX_JSON_DEPTH = 64;

/** Nesting depth of a parsed JSON value (0 for a scalar), counted without recursion; stops past `limit`. */
export function jsonDepth(value: unknown, limit = Infinity): number {
  let deepest = 0;
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    const d = depth + 1;
    if (d > deepest) deepest = d;
    if (deepest > limit) return deepest;
    for (const child of Array.isArray(v) ? v : Object.values(v)) stack.push([child, d]);
  }
  return deepest;
}

/** A parsed JSON object: not null, not an array. */
export function isJsonObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Parses JSON text from `what` (a file name or "dove.json in x.pt"); invalid JSON and nesting deeper
 * than MAX_JSON_DEPTH fail with a message that names `what`: a DoveError of `code`, or the error
 * `code(message)` makes, for a caller that wraps it in its own (a file format's "not a valid ...").
 */
export function parseJson(text: string, what: string, code: DoveErrorCode | ((message: string) => Error)): unknown {
  const fail = (message: string): never => {
    throw typeof code === 'function' ? code(`${what}: ${message}`) : new DoveError(`${what}: ${message}`, code);
  };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    fail(`not valid JSON (${(error as Error).message})`);
  }
  if (jsonDepth(value, MAX_JSON_DEPTH) > MAX_JSON_DEPTH) fail(`JSON nested deeper than ${MAX_JSON_DEPTH} levels`);
  return value;
}

/**
 * A short JSON-like rendering of any value for an error message: at most `max` characters (then
 * "..."), built breadth-first without recursion, so nesting, size and cycles cannot make it fail.
 */
export function preview(value: unknown, max = 80): string {
  let out = '';
  // Work items: a value to render, or literal text (closing brackets, separators), popped in order.
  const work: unknown[] = [value];
  while (work.length > 0 && out.length <= max) {
    const item = work.pop();
    if (item instanceof TextPiece) {
      out += item.text;
      continue;
    }
    const scalar = renderScalar(item);
    if (scalar !== undefined) {
      out += scalar;
      continue;
    }
    const list = Array.isArray(item);
    const entries: [string | null, unknown][] = list
      ? (item as unknown[]).slice(0, max).map((v) => [null, v])
      : Object.keys(item as object).slice(0, max).map((k) => [k, (item as Record<string, unknown>)[k]]);
    out += list ? '[' : '{';
    work.push(new TextPiece(list ? ']' : '}'));
    for (let i = entries.length - 1; i >= 0; i--) {
      const [key, v] = entries[i]!;
      work.push(v);
      const prefix = `${i > 0 ? ',' : ''}${key === null ? '' : `${JSON.stringify(key)}:`}`;
      if (prefix.length > 0) work.push(new TextPiece(prefix));
    }
  }
  return out.length > max ? `${out.slice(0, Math.max(0, max - 3))}...` : out;
}

class TextPiece {
  constructor(readonly text: string) {}
}

/** A scalar's rendering, or undefined for arrays and plain objects (which `preview` opens). */
function renderScalar(value: unknown): string | undefined {
  if (value === undefined) return 'undefined';
  if (value === null) return 'null';
  if (typeof value === 'string') return JSON.stringify(value.length > 200 ? `${value.slice(0, 200)}...` : value);
  if (typeof value === 'number') return Object.is(value, -0) ? '-0' : String(value);
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'boolean') return String(value);
  if (typeof value === 'function' || typeof value === 'symbol') return typeof value;
  if (ArrayBuffer.isView(value)) return `${value.constructor.name}(${value.byteLength} bytes)`;
  if (Array.isArray(value)) return undefined;
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto === Object.prototype || proto === null) return undefined;
  const name = (value as { constructor?: { name?: unknown } }).constructor?.name;
  return `<${typeof name === 'string' ? name : 'object'}>`;
}
