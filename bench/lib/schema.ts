// The shapes every benchmark section exchanges: a plan handed to a child process (node or python) and
// the rows it hands back. Python writes the same JSON (bench/peers/python_torch.py).
import type { LoopSpec, LoopStats } from './timing';

export type Runtime = 'python-eager' | 'python-torchscript' | 'node-addon' | 'onnxruntime-node';
export type Op = 'encode' | 'decode' | 'encode+decode' | 'train';

export const RUNTIMES: readonly Runtime[] = ['python-eager', 'python-torchscript', 'node-addon', 'onnxruntime-node'];
export const OPS: readonly Op[] = ['encode', 'decode', 'encode+decode', 'train'];

export interface ModelFiles {
  config: string;
  /** TorchScript export (python -m dove.export). */
  pt: string;
  /** Fixed-budget ONNX graphs (--onnx PREFIX), absent when the exporter could not write them. */
  onnxEncode: string | null;
  onnxDecode: string | null;
  imageSize: number;
  maxTokens: number;
  tokenDim: number;
}

export interface CaseSpec {
  model: ModelFiles;
  batch: number;
  ops: Op[];
  loop: LoopSpec;
}

export interface Plan {
  runtime: Runtime;
  /** 'cpu' (default) or 'cuda:0' (scripts/gpu-check). ORT-node runs on CPU only. */
  device?: string;
  threads: number;
  seed: number;
  cases: CaseSpec[];
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
}

export interface RowError {
  runtime: Runtime;
  config: string;
  batch: number;
  op: Op;
  error: string;
}

export interface SectionOutput {
  runtime: Runtime;
  device?: string;
  versions: Record<string, string>;
  threads: number;
  rows: ThroughputRow[];
  errors: RowError[];
}

export function toRow(runtime: Runtime, c: CaseSpec, op: Op, stats: LoopStats): ThroughputRow {
  const perSec = 1000 / stats.medianMs;
  return {
    ...stats,
    runtime,
    config: c.model.config,
    batch: c.batch,
    op,
    imagesPerSec: c.batch * perSec,
    stepsPerSec: op === 'train' ? perSec : null,
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
