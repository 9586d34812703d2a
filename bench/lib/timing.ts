// One timing protocol for every runtime in the comparison: warm-up calls (not timed), then timed calls
// until both a minimum count and a minimum duration are reached (or a maximum count), median reported.
// bench/peers/python_torch.py has the Python copy of timedSamples.
import { medianOf } from '../../lib/base/arrays';

export interface LoopSpec {
  warmup: number;
  minIterations: number;
  maxIterations: number;
  minSeconds: number;
}

export interface LoopStats {
  iterations: number;
  medianMs: number;
  meanMs: number;
  minMs: number;
  maxMs: number;
}

export function summarize(samplesMs: number[]): LoopStats {
  if (samplesMs.length === 0) throw new Error('Expected at least one timed sample but received none');
  const sorted = [...samplesMs].sort((a, b) => a - b);
  return {
    iterations: sorted.length,
    medianMs: medianOf(sorted),
    meanMs: sorted.reduce((s, v) => s + v, 0) / sorted.length,
    minMs: sorted[0],
    maxMs: sorted[sorted.length - 1],
  };
}

export function nowMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

/** Timed calls until both a minimum count and a minimum duration are reached (or a maximum count). */
export async function timedSamples(spec: LoopSpec, body: () => Promise<void>): Promise<number[]> {
  const samples: number[] = [];
  const start = nowMs();
  while (samples.length < spec.maxIterations && (samples.length < spec.minIterations || nowMs() - start < spec.minSeconds * 1000)) {
    const t0 = nowMs();
    await body();
    samples.push(nowMs() - t0);
  }
  return samples;
}

/** Percentile by nearest rank, p in [0, 100]. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank];
}
