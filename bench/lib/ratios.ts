// Ratios between runtimes, taken round by round (bench/lib/interleave.ts): in round i both sides ran
// in the same minutes, so peer ms / Node ms of round i is a fair comparison even on a busy machine.
// A row reports the median of its per-round ratios, their interquartile range and their min-max.
// Targets are judged on the interquartile range (the "min-max or IQR"): with 5 rounds it
// leaves out the lowest and the highest round, so one round disturbed by other work on a shared
// machine does not decide the verdict, while a ratio that sits across the goal in the bulk of the
// rounds stays "not resolved".
import { maxOf, medianOf, minOf } from '../../lib/base/arrays';
import type { BenchResult } from './result';
import type { Op, Runtime, ThroughputRow } from './schema';

export interface RatioStat {
  /** Median over rounds of (peer ms / Node ms) = Node's speed relative to the peer. */
  median: number;
  /** First and third quartile of the per-round ratios (linear interpolation between rounds). */
  q1: number;
  q3: number;
  min: number;
  max: number;
  rounds: number;
}

export type Verdict = 'met' | 'not met' | 'not resolved';

export function findRow(r: BenchResult, runtime: Runtime, config: string, batch: number, op: Op): ThroughputRow | undefined {
  return r.rows.find((x) => x.runtime === runtime && x.config === config && x.batch === batch && x.op === op);
}

/**
 * The Node runtime a user of the API gets for an op: for inference, the compiled package when the
 * model has one that was not measured slower than TorchScript at compile time (the Tokenizer and
 * Reconstructor then use it); the TorchScript file otherwise and for training.
 */
export function nodeRuntime(r: BenchResult, config: string, batch: number, op: Op): Runtime {
  const preferred = r.compiledPreference?.[config]?.prefer !== 'torchscript';
  return op !== 'train' && preferred && findRow(r, 'node-aoti', config, batch, op) ? 'node-aoti' : 'node-addon';
}

/** The q-quantile of `values` (0 <= q <= 1), interpolating linearly between the sorted values. */
export function quantileOf(values: readonly number[], q: number): number {
  const s = [...values].sort((a, b) => a - b);
  const at = (s.length - 1) * q;
  const lo = Math.floor(at);
  const hi = Math.ceil(at);
  return s[lo]! + (s[hi]! - s[lo]!) * (at - lo);
}

/** Per-round ratios a/b as text: "1.23× (1.10–1.31)" (median, min–max over rounds); null for no rounds. */
export function roundRatio(a: readonly number[], b: readonly number[]): string | null {
  const n = Math.min(a.length, b.length);
  if (n === 0) return null;
  const r = Array.from({ length: n }, (_, i) => a[i]! / b[i]!);
  const med = medianOf(r).toFixed(2);
  return n > 1 ? `${med}× (${minOf(r).toFixed(2)}–${maxOf(r).toFixed(2)})` : `${med}×`;
}

/** Node's speed over the peer's, per round (rows of results older than interleaving: their medians). */
export function ratioStat(node: ThroughputRow, peer: ThroughputRow): RatioStat {
  const a = node.roundMs ?? [node.medianMs];
  const b = peer.roundMs ?? [peer.medianMs];
  const n = Math.min(a.length, b.length);
  const ratios = Array.from({ length: n }, (_, i) => b[i]! / a[i]!);
  if (n === 0) {
    const only = peer.medianMs / node.medianMs;
    return { median: only, q1: only, q3: only, min: only, max: only, rounds: 0 };
  }
  return { median: quantileOf(ratios, 0.5), q1: quantileOf(ratios, 0.25), q3: quantileOf(ratios, 0.75), min: minOf(ratios), max: maxOf(ratios), rounds: n };
}

/** Met when the interquartile range is at or above the goal, not met when it is below, else not resolved. */
export function verdict(s: RatioStat, goal: number): Verdict {
  if (s.q1 >= goal) return 'met';
  if (s.q3 < goal) return 'not met';
  return 'not resolved';
}

/** "1.23× (1.18–1.29; 0.96–1.31)": the interquartile range, then the min–max over rounds. */
export function formatRatio(s: RatioStat): string {
  const f = (v: number): string => v.toFixed(2);
  return s.rounds > 1 ? `${f(s.median)}× (${f(s.q1)}–${f(s.q3)}; ${f(s.min)}–${f(s.max)})` : `${f(s.median)}×`;
}
