// Ratios between runtimes, taken round by round (bench/lib/interleave.ts): in round i both sides ran
// in the same minutes, so peer ms / Node ms of round i is a fair comparison even on a busy machine.
// A row reports the median of its per-round ratios and their spread (min-max); a spread that
// crosses a target leaves the row "not resolved" for that target.
import { maxOf, minOf } from '../../lib/base/arrays';
import type { BenchResult } from './result';
import type { Op, Runtime, ThroughputRow } from './schema';

export interface RatioStat {
  /** Median over rounds of (peer ms / Node ms) = Node's speed relative to the peer. */
  median: number;
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

function medianOf(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Node's speed over the peer's, per round (rows of results older than interleaving: their medians). */
export function ratioStat(node: ThroughputRow, peer: ThroughputRow): RatioStat {
  const a = node.roundMs ?? [node.medianMs];
  const b = peer.roundMs ?? [peer.medianMs];
  const n = Math.min(a.length, b.length);
  const ratios = Array.from({ length: n }, (_, i) => b[i]! / a[i]!);
  if (n === 0) return { median: peer.medianMs / node.medianMs, min: peer.medianMs / node.medianMs, max: peer.medianMs / node.medianMs, rounds: 0 };
  return { median: medianOf(ratios), min: minOf(ratios), max: maxOf(ratios), rounds: n };
}

export function verdict(s: RatioStat, goal: number): Verdict {
  if (s.min >= goal) return 'met';
  if (s.max < goal) return 'not met';
  return 'not resolved';
}

/** "1.23× (1.10–1.31)", the spread over rounds in brackets. */
export function formatRatio(s: RatioStat): string {
  const f = (v: number): string => v.toFixed(2);
  return s.rounds > 1 ? `${f(s.median)}× (${f(s.min)}–${f(s.max)})` : `${f(s.median)}×`;
}
