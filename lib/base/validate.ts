// The one place arguments are range-checked: every public option, CLI flag and request parameter
// goes through these, so the rule and the message ("Expected integer between 1 and 256 for maxTokens
// but received 0") are written once. Each throws DoveError INVALID_ARGUMENT naming the argument.
import { DoveError } from './errors';

function received(value: unknown): string {
  return typeof value === 'string' ? `'${value}'` : String(value);
}

/** `value` when it is an integer in min..max. */
export function integerInRange(value: unknown, name: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new DoveError(`Expected integer between ${min} and ${max} for ${name} but received ${String(value)}`, 'INVALID_ARGUMENT');
  }
  return value;
}

/** `value` when it is an integer >= min (no upper bound but the safe-integer range). */
export function integerAtLeast(value: unknown, name: string, min: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw new DoveError(`Expected integer >= ${min} for ${name} but received ${String(value)}`, 'INVALID_ARGUMENT');
  }
  return value;
}

/** `value` when it is a finite number in min..max (min itself excluded when `minExclusive`). */
export function numberInRange(value: unknown, name: string, min: number, max: number, minExclusive = false): number {
  if (typeof value !== 'number' || !(minExclusive ? value > min : value >= min) || !(value <= max)) {
    const range = minExclusive ? `> ${min} and <= ${max}` : `between ${min} and ${max}`;
    throw new DoveError(`Expected number ${range} for ${name} but received ${String(value)}`, 'INVALID_ARGUMENT');
  }
  return value;
}

/** `value` when it is a number strictly between lo and hi. */
export function numberBetweenExclusive(value: unknown, name: string, lo: number, hi: number): number {
  if (typeof value !== 'number' || !(value > lo && value < hi)) {
    throw new DoveError(`Expected number between ${lo} and ${hi} (exclusive) for ${name} but received ${String(value)}`, 'INVALID_ARGUMENT');
  }
  return value;
}

/** A boolean option: `fallback` when absent, INVALID_ARGUMENT when not a boolean. */
export const booleanOption = (name: string, value: unknown, fallback: boolean): boolean => booleanOrWord(name, value, fallback, []) as boolean;

/** A boolean option that also takes one of `words`: `fallback` when absent, INVALID_ARGUMENT otherwise. */
export function booleanOrWord<W extends string>(name: string, value: unknown, fallback: boolean, words: readonly W[]): boolean | W {
  if (value === undefined) return fallback;
  if (typeof value === 'boolean' || (words as readonly unknown[]).includes(value)) return value as boolean | W;
  throw new DoveError(`Expected ${['boolean', ...words.map((w) => `'${w}'`)].join(' or ')} for ${name} but received ${received(value)}`, 'INVALID_ARGUMENT');
}
