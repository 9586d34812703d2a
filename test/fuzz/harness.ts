// The fuzz property and an in-process runner. A target passes an input when it returns, or throws a
// DoveError whose code is documented (README/API.md), within PER_INPUT_MS of CPU time. Anything else (TypeError,
// RangeError: Maximum call stack size exceeded, an Error without a code, a slow input) is a finding:
// fast-check shrinks it and the runner reports the smallest input it found, base64, with the seed.
import fc from 'fast-check';
import { isDoveError } from '../../lib/base/errors';
import type { FuzzTarget } from './targets';

/** Every code a DoveError may carry (binding.d.ts NativeErrorCode and lib/base/errors.ts). */
export const DOCUMENTED_CODES: ReadonlySet<string> = new Set([
  'INVALID_ARGUMENT', 'DTYPE_MISMATCH', 'SHAPE_MISMATCH', 'FILE_NOT_FOUND', 'NOT_TORCHSCRIPT', 'NOT_DOVE_EXPORT', 'FORMAT_VERSION',
  'METHOD_NOT_FOUND', 'DEVICE_UNAVAILABLE', 'DISPOSED', 'BUSY', 'TORCH_ERROR', 'IO_ERROR', 'DISTRIBUTED_ERROR', 'INTERNAL',
  'INVALID_IMAGE', 'IMAGE_TOO_LARGE', 'INVALID_DATASET', 'INVALID_ANNOTATION', 'ADDON_LOAD_FAILED', 'TRAINING_DIVERGED',
]);

/** CPU time one input may take (parsers here are linear; a quadratic blow-up or a loop shows up as this). */
export const PER_INPUT_MS = 2000;

/** Runs fast-check's numRuns this high and stops by time instead. */
const UNBOUNDED_RUNS = 2 ** 31 - 1;

export class PropertyViolation extends Error {}

/** Runs one input; throws a PropertyViolation when the target broke the property. */
export function checkInput(target: FuzzTarget, input: Uint8Array, perInputMs = PER_INPUT_MS): void {
  // CPU time, not wall time: on a loaded machine a 100 ms parse can take seconds of wall time.
  const start = process.cpuUsage();
  try {
    target.run(input);
  } catch (error) {
    if (!(isDoveError(error) && DOCUMENTED_CODES.has(error.code))) {
      const what = isDoveError(error) ? `DoveError with undocumented code ${String(error.code)}` : error instanceof Error ? error.constructor.name : typeof error;
      const message = error instanceof Error ? error.message.slice(0, 500) : String(error).slice(0, 500);
      const violation = new PropertyViolation(`${what}: ${message}`, { cause: error });
      if (error instanceof Error && error.stack) violation.stack = `${violation.message}\n${error.stack}`;
      throw violation;
    }
  }
  const used = process.cpuUsage(start);
  const ms = (used.user + used.system) / 1000;
  if (ms > perInputMs) throw new PropertyViolation(`slow input: ${ms.toFixed(0)} ms of CPU (limit ${perInputMs} ms) for ${input.length} bytes`);
}

export interface Finding {
  /** The smallest failing input fast-check found. */
  input: Uint8Array;
  message: string;
  stack?: string;
}

export interface TargetRun {
  target: string;
  seed: number;
  /** Inputs executed (including the shrinking of a failure). */
  runs: number;
  ms: number;
  finding?: Finding;
}

export interface RunOptions {
  seed: number;
  timeMs: number;
  perInputMs?: number;
  /** Called every `beatEvery` inputs (the supervising process's sign of life). */
  onBeat?: (runs: number) => void;
  beatEvery?: number;
  /** Called with each input before it runs (replay mode saves it, to catch the one that hangs). */
  onInput?: (input: Uint8Array, index: number) => void;
}

/** Fuzzes one target in this process for `timeMs` (seeds first, then generated inputs). */
export function runTarget(target: FuzzTarget, seeds: readonly Uint8Array[], options: RunOptions): TargetRun {
  let runs = 0;
  const beatEvery = options.beatEvery ?? 250;
  const start = performance.now();
  const property = fc.property(target.arbitrary(seeds), (input) => {
    runs++;
    options.onInput?.(input, runs);
    if (runs % beatEvery === 0) options.onBeat?.(runs);
    checkInput(target, input, options.perInputMs);
  });
  const details = fc.check(property, {
    seed: options.seed,
    numRuns: UNBOUNDED_RUNS,
    examples: seeds.map((s) => [s] as [Uint8Array]),
    plugins: [fc.interruptAfterTimeLimit(options.timeMs)],
  });
  const result: TargetRun = { target: target.name, seed: options.seed, runs, ms: Math.round(performance.now() - start) };
  const counterexample = details.counterexample as [Uint8Array] | null | undefined;
  if (details.failed && counterexample) {
    const error = details.errorInstance;
    result.finding = {
      input: counterexample[0],
      message: error instanceof Error ? error.message : String(error),
      stack: error instanceof Error ? error.stack : undefined,
    };
  }
  return result;
}
