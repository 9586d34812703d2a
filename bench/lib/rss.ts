// RSS sampling for bench/memory: one sample every `every` calls, growth judged after warm-up only
// (allocator pools, libtorch's caches and V8's heap sizing all settle during the first calls).
import { maxOf } from '../../lib/base/arrays';
import type { MemoryResult, MemorySample } from './schema';

const MiB = 2 ** 20;

export function sample(calls: number): MemorySample {
  const m = process.memoryUsage();
  return { calls, rssMiB: m.rss / MiB, heapUsedMiB: m.heapUsed / MiB, externalMiB: m.external / MiB };
}

export function summarizeRss(what: string, samples: MemorySample[], totalCalls: number, warmupCalls: number, seconds: number): MemoryResult {
  const after = samples.filter((s) => s.calls >= warmupCalls);
  if (after.length < 2) throw new Error(`Expected at least 2 samples after ${warmupCalls} warm-up calls but received ${after.length}`);
  const base = after[0].rssMiB;
  const growth = maxOf(after.map((s) => s.rssMiB)) - base;
  const n = after.length;
  const mx = after.reduce((s, p) => s + p.calls, 0) / n;
  const my = after.reduce((s, p) => s + p.rssMiB, 0) / n;
  const sxy = after.reduce((s, p) => s + (p.calls - mx) * (p.rssMiB - my), 0);
  const sxx = after.reduce((s, p) => s + (p.calls - mx) ** 2, 0);
  return {
    what,
    totalCalls,
    warmupCalls,
    samples,
    growthAfterWarmupMiB: growth,
    slopeMiBPer1000: sxx > 0 ? (sxy / sxx) * 1000 : 0,
    seconds,
  };
}
