// Trainer options: defaults from the design doc (section 4) and strict validation.
import { DoveError } from '../base/errors';
import { DEFAULT_AUGMENT, type AugmentOptions } from './data';
import { booleanOption, integerInRange, numberInRange } from '../base/validate';

export interface DistributedOptions {
  rank: number;
  worldSize: number;
  masterAddr: string;
  masterPort: number;
  /** Collective / rendezvous timeout; a dead peer ends the job within it. Default 60000. */
  timeoutMs?: number;
  backend?: 'gloo' | 'nccl';
}

export interface TrainerOptions {
  /** The model to train (a DOVE / Q-DOVE export). Ignored when resuming (the checkpoint's model is used). */
  model: string;
  /** Load a model whose TorchScript touches files or the process (else UNSAFE_MODEL; docs/MODEL_FORMAT.md). Default false. */
  trustModel?: boolean;
  /** Folder of training images (flat; see `recursive`). */
  images: string;
  /** Q-DOVE annotations JSON ({image_id, question, answer|null, bounding_box}). Required for Q-DOVE models. */
  annotations?: string;
  recursive?: boolean;
  outDir: string;
  batchSize?: number;
  epochs?: number;
  /** Stop after this many optimizer steps in total (the schedule still spans `epochs`). */
  maxSteps?: number;
  lr?: number;
  /** Learning-rate multiplier of the VQGAN parameters (`vqgan.*`). Default 0.1. */
  vqganLrScale?: number;
  weightDecay?: number;
  betas?: [number, number];
  warmupSteps?: number;
  minLrRatio?: number;
  clipGradNorm?: number;
  /** Micro-batches per optimizer step. */
  accumulate?: number;
  /** bf16 autocast (CUDA only). Default true on CUDA. */
  bf16?: boolean;
  seed?: number;
  device?: string;
  /** Resume from a checkpoint folder, its trainer.json, or an outDir (newest checkpoint); true = outDir. */
  resume?: string | boolean;
  /** Checkpoint every N optimizer steps (0 = only at epoch ends). */
  checkpointEvery?: number;
  keepLast?: number;
  prefetch?: number;
  /** Random resized crop + flip; false = centre crop. */
  augment?: boolean | AugmentOptions;
  /** Sample images in the per-epoch reconstruction grid (0 = no grid). */
  sampleImages?: number;
  /** Loss curve and reconstruction grid after each epoch. */
  plots?: boolean;
  /** intra-op threads for libtorch (default: libtorch's choice). */
  threads?: number;
  /** Multi-process training; 'env' reads RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT like torchrun. */
  distributed?: DistributedOptions | 'env' | null;
  maxInputPixels?: number;
}

/** TrainerOptions checked, with the defaults filled in; the options below keep "not given" or change type. */
export type ResolvedOptions = Required<Omit<TrainerOptions, 'annotations' | 'warmupSteps' | 'bf16' | 'resume' | 'augment' | 'threads' | 'distributed'>> & {
  annotations: string | undefined;
  warmupSteps: number | undefined;
  bf16: boolean | undefined;
  resume: string | undefined;
  augment: AugmentOptions | null;
  threads: number | undefined;
  distributed: Required<DistributedOptions> | null;
};

function int(name: string, value: number | undefined, fallback: number, min: number, max: number): number {
  return integerInRange(value ?? fallback, name, min, max);
}

function num(name: string, value: number | undefined, fallback: number, min: number, max: number, openMin = false): number {
  return numberInRange(value ?? fallback, name, min, max, openMin);
}

function str(name: string, value: unknown): string {
  if (typeof value !== 'string' || value.length === 0) {
    throw new DoveError(`Expected a non-empty path for ${name} but received ${String(value)}`, 'INVALID_ARGUMENT');
  }
  return value;
}

export function distributedFromEnv(env: NodeJS.ProcessEnv = process.env): Required<DistributedOptions> | null {
  if (env.WORLD_SIZE === undefined) return null;
  const read = (key: string, min: number, max: number): number => {
    const raw = env[key];
    return integerInRange(raw !== undefined && /^\d+$/.test(raw) ? Number(raw) : raw, `environment variable ${key}`, min, max);
  };
  const worldSize = read('WORLD_SIZE', 1, 65536);
  if (worldSize === 1) return null;
  return {
    worldSize,
    rank: read('RANK', 0, worldSize - 1),
    masterAddr: env.MASTER_ADDR ?? '127.0.0.1',
    masterPort: read('MASTER_PORT', 1, 65535),
    timeoutMs: env.DOVE_DIST_TIMEOUT_MS !== undefined ? read('DOVE_DIST_TIMEOUT_MS', 1000, 86400000) : 60000,
    backend: 'gloo',
  };
}

export function resolveOptions(o: TrainerOptions): ResolvedOptions {
  if (typeof o !== 'object' || o === null) throw new DoveError('Expected an options object for new Trainer()', 'INVALID_ARGUMENT');
  const betas = o.betas ?? [0.9, 0.95];
  if (!Array.isArray(betas) || betas.length !== 2) throw new DoveError(`Expected [beta1, beta2] for betas but received ${String(betas)}`, 'INVALID_ARGUMENT');
  num('betas[0]', betas[0], 0.9, 0, 0.999999);
  num('betas[1]', betas[1], 0.95, 0, 0.999999);
  let distributed: Required<DistributedOptions> | null = null;
  if (o.distributed === 'env') distributed = distributedFromEnv();
  else if (o.distributed) {
    const d = o.distributed;
    const worldSize = int('distributed.worldSize', d.worldSize, 1, 1, 65536);
    distributed = {
      worldSize,
      rank: int('distributed.rank', d.rank, 0, 0, worldSize - 1),
      masterAddr: str('distributed.masterAddr', d.masterAddr),
      masterPort: int('distributed.masterPort', d.masterPort, 0, 1, 65535),
      timeoutMs: int('distributed.timeoutMs', d.timeoutMs, 60000, 100, 86400000),
      backend: d.backend ?? 'gloo',
    };
    if (worldSize === 1) distributed = null;
  }
  const augment = o.augment === false ? null : o.augment === true || o.augment === undefined ? DEFAULT_AUGMENT : o.augment;
  return {
    model: str('model', o.model),
    trustModel: booleanOption('trustModel', o.trustModel, false),
    images: str('images', o.images),
    annotations: o.annotations === undefined ? undefined : str('annotations', o.annotations),
    recursive: o.recursive ?? false,
    outDir: str('outDir', o.outDir),
    batchSize: int('batchSize', o.batchSize, 8, 1, 65536),
    epochs: int('epochs', o.epochs, 1, 1, 1e6),
    maxSteps: int('maxSteps', o.maxSteps, Number.MAX_SAFE_INTEGER, 1, Number.MAX_SAFE_INTEGER),
    lr: num('lr', o.lr, 1e-4, 0, 10, true),
    vqganLrScale: num('vqganLrScale', o.vqganLrScale, 0.1, 0, 1e6),
    weightDecay: num('weightDecay', o.weightDecay, 0.01, 0, 10),
    betas: [betas[0], betas[1]],
    warmupSteps: o.warmupSteps === undefined ? undefined : int('warmupSteps', o.warmupSteps, 0, 0, 1e12),
    minLrRatio: num('minLrRatio', o.minLrRatio, 0.1, 0, 1),
    clipGradNorm: num('clipGradNorm', o.clipGradNorm, 1.0, 0, 1e12),
    accumulate: int('accumulate', o.accumulate, 1, 1, 1e6),
    bf16: o.bf16,
    seed: int('seed', o.seed, 0, 0, 2 ** 31 - 1),
    device: o.device ?? 'cpu',
    resume: o.resume === true ? o.outDir : o.resume === false || o.resume === undefined ? undefined : str('resume', o.resume),
    checkpointEvery: int('checkpointEvery', o.checkpointEvery, 0, 0, 1e12),
    keepLast: int('keepLast', o.keepLast, 3, 1, 1e6),
    prefetch: int('prefetch', o.prefetch, 2, 0, 64),
    augment,
    sampleImages: int('sampleImages', o.sampleImages, 4, 0, 64),
    plots: o.plots ?? true,
    threads: o.threads === undefined ? undefined : int('threads', o.threads, 1, 1, 1024),
    distributed,
    maxInputPixels: int('maxInputPixels', o.maxInputPixels, 0x3fff * 0x3fff, 1, Number.MAX_SAFE_INTEGER),
  };
}
