// The joined result of one `npm run bench`: written as bench/results/<date>.json and rendered to .md.
import type { AreaResult } from './areas';
import type { MachineInfo } from './machine';
import type { LagResult, MemoryResult, RowError, Runtime, ThroughputRow } from './schema';

export interface GemmPeak {
  device: string;
  /** 'float32', or 'bfloat16' for the GPU's training peak. */
  dtype?: string;
  threads: number;
  torch: string;
  peak_gflops: number;
  gflops_by_size: Record<string, number>;
  /** CPU float32: per backend ("matmul": aten/MKL, "onednn": prepacked linear), per size; the peak is the best. */
  gflops_by_backend?: Record<string, Record<string, number>>;
}

export interface FlopsInfo {
  config: string | null;
  params: number;
  perImage: Record<string, number>;
}

export interface SectionLog {
  name: string;
  ok: boolean;
  seconds: number;
  error: string | null;
}

export interface TargetCheck {
  target: string;
  goal: string;
  measured: string;
  /** not resolved: no row misses the goal, but some row's spread over rounds crosses it. */
  status: 'met' | 'not met' | 'not resolved' | 'not measured';
  why: string | null;
}

export interface BenchResult {
  machine: MachineInfo;
  options: { quick: boolean; full: boolean; threads: number; configs: string[]; batches: number[]; device: string; ompWait: string; runtimes?: string[] };
  versions: Partial<Record<Runtime, Record<string, string>>>;
  gemm: GemmPeak | null;
  /** CUDA runs: the bfloat16 GEMM peak, against which the bf16-autocast training rows are read (MFU). */
  gemmBf16?: GemmPeak | null;
  flops: Record<string, FlopsInfo | null>;
  exportNotes: Record<string, string | null>;
  /**
   * Per config with a package: the path its compiler measured faster (the package's dove.prefer,
   * python/dove/aoti_export.py) and the timings, which the API follows (lib/model/compiled.ts).
   * Absent in results older than the measurement: the package was then always used.
   */
  compiledPreference?: Record<string, { prefer: string; measured: string }>;
  rows: ThroughputRow[];
  rowErrors: RowError[];
  areas: AreaResult[];
  memory: MemoryResult[];
  eventloop: LagResult | null;
  targets: TargetCheck[];
  sections: SectionLog[];
  totalSeconds: number;
  /** false while the run is in progress (the files are rewritten after every section). */
  complete: boolean;
}
