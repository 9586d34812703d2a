// Reductions and appends over arrays of any length. `Math.min(...values)` and `push(...values)` pass
// every element as a call argument, which overflows the stack somewhere past ~120k elements (a
// 200k-row lengths.csv, a loss curve of 100k steps, a folder of 200k images): these loop instead.

/** The smallest value, as `Math.min(initial, ...values)` (NaN if any value is NaN; `initial` for none). */
export function minOf(values: ArrayLike<number>, initial = Infinity): number {
  let min = initial;
  for (let i = 0; i < values.length; i++) min = Math.min(min, values[i]!);
  return min;
}

/** The largest value, as `Math.max(initial, ...values)` (NaN if any value is NaN; `initial` for none). */
export function maxOf(values: ArrayLike<number>, initial = -Infinity): number {
  let max = initial;
  for (let i = 0; i < values.length; i++) max = Math.max(max, values[i]!);
  return max;
}

/** The middle value of the sorted values, or the mean of the two middle ones (NaN for none). */
export function medianOf(values: ArrayLike<number>): number {
  if (values.length === 0) return Number.NaN;
  const s = Array.from(values).sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Appends `source` to `target` in place (what `target.push(...source)` does, for any length). */
export function appendAll<T>(target: T[], source: Iterable<T>): T[] {
  for (const item of source) target.push(item);
  return target;
}
