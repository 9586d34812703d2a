// How much work each throughput case gets. Every case runs in rounds (bench/lib/interleave.ts): each
// runtime measures for its share of a round, in alternating order, and the rounds give the ratios.
// official-70m costs ~0.7 TFLOP per image for encode+decode on 2 cores, so its rounds are one call
// per runtime, and its encode+decode is the sum of the measured halves.
import type { CaseSpec, ModelFiles, Op } from './schema';
import type { LoopSpec } from './timing';

export interface PlanOptions {
  /** --quick: tiny only, short rounds (a smoke run of the whole pipeline in a few minutes). */
  quick: boolean;
  /** --full: also train official-70m at batch 16 and measure its encode+decode directly. */
  full: boolean;
  batches: number[];
  /** On CUDA every config is cheap enough for the full loops (and needs their warm-up: cuDNN autotuning). */
  device: string;
}

interface Budget {
  loop: LoopSpec;
  rounds: number;
}

// A round is a few seconds: 1-2 s per runtime for tiny, 5 rounds.
const TINY_B1: Budget = { loop: { warmup: 3, minIterations: 3, maxIterations: 1000, minSeconds: 1 }, rounds: 5 };
const TINY_B16: Budget = { loop: { warmup: 2, minIterations: 2, maxIterations: 200, minSeconds: 1.5 }, rounds: 5 };
const TINY_TRAIN: Budget = { loop: { warmup: 2, minIterations: 2, maxIterations: 200, minSeconds: 2 }, rounds: 5 };
const QUICK: Budget = { loop: { warmup: 1, minIterations: 2, maxIterations: 50, minSeconds: 0.3 }, rounds: 3 };
// Two warm-up calls: TorchScript's profiling executor profiles the first call and optimises on the second.
const BIG_B1: Budget = { loop: { warmup: 2, minIterations: 1, maxIterations: 1, minSeconds: 0 }, rounds: 3 };
// One warm-up call: a new batch size makes the profiling executor re-specialise.
const BIG_B16: Budget = { loop: { warmup: 1, minIterations: 1, maxIterations: 1, minSeconds: 0 }, rounds: 3 };
const BIG_TRAIN: Budget = { loop: { warmup: 1, minIterations: 1, maxIterations: 1, minSeconds: 0 }, rounds: 3 };
// CUDA: every config is milliseconds per call; more warm-up (cuDNN autotuning), short rounds (a GPU is lent for minutes).
const GPU: Budget = { loop: { warmup: 3, minIterations: 3, maxIterations: 1000, minSeconds: 0.5 }, rounds: 3 };

export function isBig(config: string): boolean {
  return config !== 'tiny';
}

/** The cases of one model, inference before training (training changes the weights it steps). */
export function casesFor(model: ModelFiles, o: PlanOptions): CaseSpec[] {
  const big = isBig(model.config) && o.device === 'cpu';
  const out: CaseSpec[] = [];
  for (const batch of o.batches) {
    const ops: Op[] = ['encode', 'decode'];
    if (!big || o.full) ops.push('encode+decode');
    const b = o.quick ? QUICK : o.device !== 'cpu' ? GPU : big ? (batch === 1 ? BIG_B1 : BIG_B16) : batch === 1 ? TINY_B1 : TINY_B16;
    out.push({ model, batch, ops, loop: b.loop, rounds: b.rounds });
  }
  for (const batch of o.batches) {
    if (big && batch > 1 && !o.full) continue;
    const b = o.quick ? QUICK : o.device !== 'cpu' ? GPU : big ? BIG_TRAIN : TINY_TRAIN;
    out.push({ model, batch, ops: ['train'], loop: b.loop, rounds: b.rounds });
  }
  return out;
}
