// The shapes the benchmark's processes exchange: the cases the runtime workers measure
// (bench/lib/worker.ts; Python speaks the same JSON) and the rows the throughput section keeps.
import type { LoopSpec, LoopStats } from './timing';

/** node-addon: the TorchScript file through the addon; node-aoti: its AOTInductor package (inference). */
export type Runtime = 'python-eager' | 'python-torchscript' | 'node-addon' | 'node-aoti' | 'onnxruntime-node';
export type Op = 'encode' | 'decode' | 'encode+decode' | 'train';

/** Column order of the throughput tables, and the order of the first round (later rounds alternate). */
export const RUNTIMES: readonly Runtime[] = ['python-eager', 'python-torchscript', 'node-addon', 'node-aoti', 'onnxruntime-node'];
/** Runtimes with a training step. */
export const TRAINING_RUNTIMES: readonly Runtime[] = ['python-eager', 'python-torchscript', 'node-addon'];
export const OPS: readonly Op[] = ['encode', 'decode', 'encode+decode', 'train'];

export interface ModelFiles {
  config: string;
  /** TorchScript export (python -m dove.export). */
  pt: string;
  /** Fixed-budget ONNX graphs (--onnx PREFIX), absent when the exporter could not write them. */
  onnxEncode: string | null;
  onnxDecode: string | null;
  /** The AOTInductor package beside `pt` (--compiled), absent when it could not be compiled. */
  aoti: string | null;
  imageSize: number;
  maxTokens: number;
  tokenDim: number;
}

export interface CaseSpec {
  model: ModelFiles;
  batch: number;
  ops: Op[];
  /** warmup: untimed calls at prepare; the rest: one runtime's share of one round. */
  loop: LoopSpec;
  /** Rounds: every runtime measures once per round, in alternating order (A B C, then C B A, ...). */
  rounds: number;
}

export interface ThroughputRow extends LoopStats {
  runtime: Runtime;
  config: string;
  batch: number;
  op: Op;
  /** Images per second (for train: images per second of optimizer steps). */
  imagesPerSec: number;
  /** Optimizer steps per second (train only). */
  stepsPerSec: number | null;
  /**
   * Median ms per call in each round, by round index: rounds are the same minutes for every runtime
   * of the case, so per-round ratios compare work done side by side.
   */
  roundMs: number[];
}

export interface RowError {
  runtime: Runtime;
  config: string;
  batch: number;
  op: Op;
  error: string;
}

export function toRow(runtime: Runtime, c: CaseSpec, op: Op, stats: LoopStats, roundMs: number[]): ThroughputRow {
  const perSec = 1000 / stats.medianMs;
  return {
    ...stats,
    runtime,
    config: c.model.config,
    batch: c.batch,
    op,
    imagesPerSec: c.batch * perSec,
    stepsPerSec: op === 'train' ? perSec : null,
    roundMs,
  };
}

export function errorText(e: unknown): string {
  if (e instanceof Error) {
    const code = (e as Error & { code?: unknown }).code;
    return typeof code === 'string' ? `${code}: ${e.message}` : e.message;
  }
  return String(e);
}

/** bench/memory: RSS sampled every `every` calls of a repeated operation in a fresh process. */
export interface MemorySample {
  calls: number;
  rssMiB: number;
  heapUsedMiB: number;
  externalMiB: number;
}

export interface MemoryResult {
  what: string;
  totalCalls: number;
  warmupCalls: number;
  samples: MemorySample[];
  /** max RSS after warm-up minus RSS at the end of warm-up. */
  growthAfterWarmupMiB: number;
  /** Least-squares slope of RSS over the post-warm-up samples, per 1,000 calls. */
  slopeMiBPer1000: number;
  seconds: number;
}

/** bench/eventloop: lateness of a 1 ms interval timer while tokenize calls run. */
export interface LagResult {
  concurrentCalls: number;
  rounds: number;
  timerTicks: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** perf_hooks.monitorEventLoopDelay over the same window, for cross-checking. */
  histogramP99Ms: number;
  /** The same timer with nothing else running: the floor the machine itself imposes. */
  idleP99Ms: number;
  tokenizeCallsPerSec: number;
  seconds: number;
}
