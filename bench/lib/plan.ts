// How much work each throughput case gets. Sized so the whole `npm run bench` stays near 20 minutes
// on 2 cores: official-70m costs ~0.7 TFLOP per image for encode+decode, so its batch-16 rows get a
// single timed call (after the batch-1 rows of the same process have warmed up the TorchScript
// profiling executor and the allocator), and its encode+decode is the sum of the measured halves.
import type { CaseSpec, ModelFiles, Op } from './schema';
import type { LoopSpec } from './timing';

export interface PlanOptions {
  /** --quick: tiny only, short loops (a smoke run of the whole pipeline in a couple of minutes). */
  quick: boolean;
  /** --full: also train official-70m at batch 16 and measure its encode+decode directly. */
  full: boolean;
  batches: number[];
  /** On CUDA every config is cheap enough for the full loops (and needs their warm-up: cuDNN autotuning). */
  device: string;
}

const TINY_B1: LoopSpec = { warmup: 3, minIterations: 10, maxIterations: 500, minSeconds: 2 };
const TINY_B16: LoopSpec = { warmup: 2, minIterations: 5, maxIterations: 100, minSeconds: 2 };
const QUICK: LoopSpec = { warmup: 2, minIterations: 3, maxIterations: 50, minSeconds: 0.5 };
// Two warm-up calls: TorchScript's profiling executor profiles the first call and optimises on the second.
const BIG_B1: LoopSpec = { warmup: 2, minIterations: 2, maxIterations: 2, minSeconds: 0 };
const BIG_B16: LoopSpec = { warmup: 0, minIterations: 1, maxIterations: 1, minSeconds: 0 };
const BIG_TRAIN_B1: LoopSpec = { warmup: 1, minIterations: 1, maxIterations: 1, minSeconds: 0 };

export function isBig(config: string): boolean {
  return config !== 'tiny';
}

export function casesFor(model: ModelFiles, inference: boolean, training: boolean, o: PlanOptions): CaseSpec[] {
  const out: CaseSpec[] = [];
  for (const batch of o.batches) {
    const ops: Op[] = [];
    const big = isBig(model.config) && o.device === 'cpu';
    if (inference) ops.push('encode', 'decode');
    if (inference && (!big || o.full)) ops.push('encode+decode');
    let loop: LoopSpec;
    if (o.quick) loop = QUICK;
    else if (!big) loop = batch === 1 ? TINY_B1 : TINY_B16;
    else loop = batch === 1 ? BIG_B1 : BIG_B16;
    if (ops.length > 0) out.push({ model, batch, ops, loop });
    if (training && (!big || batch === 1 || o.full)) {
      out.push({ model, batch, ops: ['train'], loop: big ? BIG_TRAIN_B1 : o.quick ? QUICK : loop });
    }
  }
  return out;
}
