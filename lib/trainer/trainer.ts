// Trainer: trains a DOVE / Q-DOVE export in place with the native engine (AdamW, schedule, clipping,
// accumulation, c10d gradient averaging), feeding it from the sharp data pipeline, writing crash-safe
// checkpoints, log.jsonl and per-epoch plots. Progress is reported as events and an async iterator.
import { EventEmitter } from 'node:events';
import { promises as fs } from 'node:fs';
import { join, resolve } from 'node:path';
import { DoveError } from '../base/errors';
import { appendFileChecked, fsyncPath, writeFileAtomic } from '../base/files';
import { DoveModel } from '../model/model-file';
import { loadAnnotations } from './annotations';
import {
  checkpointStopFromEnv, commitCheckpoint, pruneCheckpoints, readState, resolveCheckpoint, STATE_FORMAT, STATE_VERSION, stopIfRequested,
  type TrainerState,
} from './checkpoint';
import { BatchLoader, buildSamples, loadCrop, suspendOperationCache, type Batch, type Sample } from './data';
import { requireCudaFor } from '../core/cuda-libtorch';
import { binding } from '../core/native';
import { resolveOptions, type ResolvedOptions, type TrainerOptions } from './options';
import { lossCurvePng, reconstructionGridPng, type SampleReconstruction } from './plots';
import { Rng } from './rng';
import type { NativeProcessGroup, NativeTensor, NativeTrainEngine, StepResult } from '../../binding';

export interface StepEvent {
  type: 'step';
  epoch: number;
  /** Micro-batch within the epoch just trained. */
  stepInEpoch: number;
  stepsPerEpoch: number;
  /** Optimizer steps done. */
  step: number;
  totalSteps: number;
  parts: { [name: string]: number };
  loss: number;
  lr: number;
  gradNorm: number;
  /** Mean predicted (EOS) length: tokens per image. */
  tokensPerImage: number;
  images: number;
  imagesPerSecond: number;
  /** Seconds left at the current rate. */
  etaSeconds: number;
  accumulated: boolean;
}
export interface EpochEvent {
  type: 'epoch';
  epoch: number;
  meanLoss: number;
  lossCurve?: string;
  grid?: string;
}
export interface CheckpointEvent {
  type: 'checkpoint';
  dir: string;
  step: number;
}
export interface SkipEvent {
  type: 'skip';
  file: string;
  reason: string;
}
export interface DoneEvent {
  type: 'done';
  step: number;
  stopped: boolean;
  checkpoint?: string;
}
export type TrainerEvent = StepEvent | EpochEvent | CheckpointEvent | SkipEvent | DoneEvent;

export class Trainer extends EventEmitter {
  readonly options: ResolvedOptions;
  private stopRequested = false;
  private running = false;
  private readonly listeners_: Set<(e: TrainerEvent | null) => void> = new Set();

  constructor(options: TrainerOptions) {
    super();
    this.options = resolveOptions(options);
  }

  get rank(): number {
    return this.options.distributed?.rank ?? 0;
  }

  /** Finish the running step, write a checkpoint, and make fit() return. */
  stop(): void {
    this.stopRequested = true;
  }

  /** Every event of the next (or running) fit(), ending when it finishes. */
  async *events(): AsyncGenerator<TrainerEvent> {
    const queue: (TrainerEvent | null)[] = [];
    let wake: (() => void) | undefined;
    const push = (e: TrainerEvent | null): void => {
      queue.push(e);
      wake?.();
    };
    this.listeners_.add(push);
    try {
      for (;;) {
        while (queue.length === 0) await new Promise<void>((r) => (wake = r));
        wake = undefined;
        const e = queue.shift()!;
        if (e === null) return;
        yield e;
      }
    } finally {
      this.listeners_.delete(push);
    }
  }

  private publish(e: TrainerEvent): void {
    this.emit(e.type, e);
    this.emit('event', e);
    for (const l of this.listeners_) l(e);
  }

  async fit(): Promise<DoneEvent> {
    if (this.running) throw new DoveError('fit() is already running on this Trainer', 'INVALID_ARGUMENT');
    this.running = true;
    this.stopRequested = false;
    try {
      return await this.run();
    } finally {
      this.running = false;
      for (const l of this.listeners_) l(null);
    }
  }

  private async run(): Promise<DoneEvent> {
    const o = this.options;
    const b = binding();
    // First: libtorch decides once per process whether CUDA exists (lib/core/cuda-libtorch.ts).
    requireCudaFor(o.device);
    if (o.threads !== undefined) b.setNumThreads(o.threads);
    const isMain = this.rank === 0;
    const worldSize = o.distributed?.worldSize ?? 1;
    const testStop = checkpointStopFromEnv();

    // 1. Where to start: a checkpoint (its model, optimizer, data position) or the given model.
    const resumeDir = o.resume === undefined ? undefined : await resolveCheckpoint(o.resume);
    const state = resumeDir === undefined ? undefined : await readState(resumeDir);
    // Annotations are checked first: a malformed file fails in milliseconds, before the model loads.
    const annotations = o.annotations !== undefined ? await loadAnnotations(o.annotations) : undefined;
    const modelPath = resumeDir !== undefined ? join(resumeDir, 'model.pt') : resolve(o.model);
    // Trainable: not optimised (freezing turns parameters into constants).
    const model = await DoveModel.load(modelPath, { device: o.device, optimize: false, trustModel: o.trustModel });
    const module = model.module.native;
    const disposables: { dispose(): void }[] = [model, { dispose: suspendOperationCache() }];
    try {
      const meta = model.meta;
      const size = meta.imageSize;

      // 2. Data: everything is checked (annotations included) before the first step.
      if (meta.variant === 'qdove' && o.annotations === undefined) {
        throw new DoveError(`${modelPath} is a Q-DOVE model: training needs annotations (--annotations FILE)`, 'INVALID_ARGUMENT');
      }
      if (annotations !== undefined && meta.variant !== 'qdove') throw new DoveError(`${modelPath} is a DOVE model; annotations need a Q-DOVE model`, 'INVALID_ARGUMENT');
      const samples = await buildSamples(o.images, o.recursive, annotations, o.annotations);
      const loader = new BatchLoader(samples, {
        size,
        batchSize: o.batchSize,
        seed: o.seed,
        rank: this.rank,
        worldSize,
        augment: o.augment,
        prefetch: o.prefetch,
        maxInputPixels: o.maxInputPixels,
        onSkip: (file, reason) => {
          this.publish({ type: 'skip', file, reason });
          if (isMain) void this.log({ type: 'skip', file, reason });
        },
      });
      const stepsPerEpoch = loader.stepsPerEpoch;
      const totalSteps = Math.max(1, Math.floor((o.epochs * stepsPerEpoch) / o.accumulate));
      if (state !== undefined) {
        const d = state.data;
        if (d.numSamples !== samples.length || d.batchSize * d.worldSize !== o.batchSize * worldSize || d.accumulate !== o.accumulate) {
          throw new DoveError(
            `Cannot resume ${resumeDir}: it was trained with ${d.numSamples} samples, global batch ${d.batchSize * d.worldSize}, accumulate ${d.accumulate}; now ${samples.length}, ${o.batchSize * worldSize}, ${o.accumulate}`,
            'INVALID_ARGUMENT',
          );
        }
      }

      // 3. Process group, then the engine (its seed is per rank so random training lengths differ).
      let group: NativeProcessGroup | null = null;
      if (o.distributed !== null) {
        group = await b.initProcessGroup({ ...o.distributed });
        disposables.push(group);
        // Same starting weights everywhere, whatever each process loaded. Ranks that loaded models
        // of different parameter names, dtypes or shapes stop here with DISTRIBUTED_ERROR naming the
        // first difference (Gloo would abort the process on mismatched sizes).
        const signature = Object.entries(module.namedParameters())
          .map(([name, p]) => `${name} ${b.tensorDtype(p)} [${b.tensorShape(p).join(', ')}]`)
          .join('\n');
        await group.agree('parameters', signature);
        for (const p of module.parameters()) await group.broadcast(p, 0);
      }
      const engine: NativeTrainEngine = b.createTrainEngine(module, {
        lr: o.lr,
        betas: o.betas,
        eps: 1e-8,
        groups: [{ prefixes: ['vqgan.'], lrScale: o.vqganLrScale, weightDecay: o.weightDecay }],
        weightDecay: o.weightDecay,
        warmupSteps: o.warmupSteps ?? Math.min(100, Math.floor(totalSteps * 0.05)),
        totalSteps,
        minLrRatio: o.minLrRatio,
        clipGradNorm: o.clipGradNorm,
        accumulate: o.accumulate,
        autocastBf16: o.bf16 ?? o.device.startsWith('cuda'),
        seed: o.seed + this.rank,
      });
      disposables.push(engine);
      if (resumeDir !== undefined) await engine.loadState(join(resumeDir, 'optimizer.pt'));
      engine.setProcessGroup(group);

      if (isMain) {
        await fs.mkdir(o.outDir, { recursive: true });
        await pruneCheckpoints(o.outDir, o.keepLast);
      }
      const history = state?.history.slice() ?? [];
      let epoch = state?.epoch ?? 0;
      let stepInEpoch = state?.stepInEpoch ?? 0;
      let samplesSeen = state?.samplesSeen ?? 0;
      let lastCheckpoint: string | undefined;
      let savedStep = -1;
      const fixedSamples = samples.slice(0, o.sampleImages);

      const saveCheckpoint = async (): Promise<void> => {
        const trainerState: TrainerState = {
          format: STATE_FORMAT,
          version: STATE_VERSION,
          epoch,
          stepInEpoch,
          step: engine.step,
          samplesSeen,
          data: { seed: o.seed, numSamples: samples.length, batchSize: o.batchSize, worldSize, accumulate: o.accumulate, stepsPerEpoch },
          rng: { cpu: 'optimizer.pt' },
          totalSteps,
          epochs: o.epochs,
          history,
          sourceModel: state?.sourceModel ?? resolve(o.model),
          savedAt: new Date().toISOString(),
        };
        savedStep = engine.step;
        // Every rank reaches this point at the same step; only rank 0 writes.
        if (isMain) {
          lastCheckpoint = await commitCheckpoint(o.outDir, engine.step, async (dir) => {
            const doveJson = JSON.parse(module.extraFiles['dove.json']!) as Record<string, unknown>;
            doveJson.training = {
              steps: engine.step,
              epochs: epoch + stepInEpoch / stepsPerEpoch,
              images: samplesSeen,
              batchSize: o.batchSize * worldSize * o.accumulate,
              lr: o.lr,
              seed: o.seed,
              dataset: resolve(o.images),
              annotations: o.annotations !== undefined ? resolve(o.annotations) : null,
              sourceModel: trainerState.sourceModel,
              updated: trainerState.savedAt,
            };
            const extra: { [name: string]: string } = { 'dove.json': JSON.stringify(doveJson, null, 2) };
            const tok = module.extraFiles['tokenizer.json'];
            if (tok !== undefined) extra['tokenizer.json'] = tok;
            // Saved in eval mode so the file loads for inference exactly like an export.
            module.train(false);
            await module.save(join(dir, 'model.pt'), extra);
            stopIfRequested(testStop, engine.step, 'model.pt');
            await engine.saveState(join(dir, 'optimizer.pt'));
            stopIfRequested(testStop, engine.step, 'optimizer.pt');
            await writeFileAtomic(join(dir, 'trainer.json'), JSON.stringify(trainerState, null, 1), { durable: true });
            await fsyncPath(join(dir, 'model.pt'));
            stopIfRequested(testStop, engine.step, 'trainer.json');
          });
          await pruneCheckpoints(o.outDir, o.keepLast);
          this.publish({ type: 'checkpoint', dir: lastCheckpoint, step: engine.step });
          await this.log({ type: 'checkpoint', dir: lastCheckpoint, step: engine.step });
        }
      };

      const started = Date.now();
      let imagesThisRun = 0;
      let epochLosses: number[] = [];
      const maxSteps = o.maxSteps;
      outer: while (epoch < o.epochs) {
        while (stepInEpoch < stepsPerEpoch) {
          if (engine.step >= maxSteps) break outer;
          const batch = await loader.get(epoch, stepInEpoch);
          const result = await this.step(engine, batch, size, model);
          stepInEpoch += 1;
          samplesSeen += batch.count * worldSize;
          imagesThisRun += batch.count * worldSize;
          const loss = result.parts.loss ?? NaN;
          if (!Number.isFinite(loss)) {
            throw new DoveError(`training diverged: loss is ${loss} at step ${engine.step} (epoch ${epoch}); lower --lr`, 'TRAINING_DIVERGED');
          }
          epochLosses.push(loss);
          const elapsed = (Date.now() - started) / 1000;
          const rate = elapsed > 0 ? imagesThisRun / elapsed : 0;
          const remainingImages = (totalSteps * o.accumulate - (epoch * stepsPerEpoch + stepInEpoch)) * o.batchSize * worldSize;
          const event: StepEvent = {
            type: 'step',
            epoch,
            stepInEpoch: stepInEpoch - 1,
            stepsPerEpoch,
            step: result.step,
            totalSteps,
            parts: result.parts,
            loss,
            lr: result.lr,
            gradNorm: result.gradNorm,
            tokensPerImage: result.parts.length ?? NaN,
            images: batch.count * worldSize,
            imagesPerSecond: rate,
            etaSeconds: rate > 0 ? remainingImages / rate : NaN,
            accumulated: result.accumulated,
          };
          if (!result.accumulated) history.push({ step: result.step, loss, ...(result.parts.rec !== undefined ? { rec: result.parts.rec } : {}) });
          this.publish(event);
          if (isMain) await this.log({ ...event, time: new Date().toISOString() });
          if (stepInEpoch === stepsPerEpoch) break;
          if (!result.accumulated && (this.stopRequested || (o.checkpointEvery > 0 && result.step % o.checkpointEvery === 0))) {
            await saveCheckpoint();
            if (this.stopRequested) break outer;
          }
        }
        // Epoch end: the position moves to the next epoch before saving, so a resume starts there.
        const finished = epoch;
        epoch += 1;
        stepInEpoch = 0;
        await saveCheckpoint();
        const ev: EpochEvent = { type: 'epoch', epoch: finished, meanLoss: epochLosses.reduce((a, x) => a + x, 0) / Math.max(1, epochLosses.length) };
        epochLosses = [];
        if (isMain && o.plots) {
          ev.lossCurve = join(o.outDir, 'loss-curve.png');
          await writeFileAtomic(ev.lossCurve, await lossCurvePng(history, `DOVE training loss (epoch ${finished + 1}/${o.epochs})`));
          if (fixedSamples.length > 0) {
            ev.grid = join(o.outDir, `reconstructions-epoch-${String(finished + 1).padStart(3, '0')}.png`);
            await writeFileAtomic(ev.grid, await this.reconstructionGrid(model, fixedSamples));
          }
        }
        this.publish(ev);
        if (isMain) await this.log({ ...ev, time: new Date().toISOString() });
        if (this.stopRequested) break;
      }
      // maxSteps reached mid-epoch (or stop() after the last epoch's checkpoint): save where we are.
      if (savedStep !== engine.step) await saveCheckpoint();
      const done: DoneEvent = { type: 'done', step: engine.step, stopped: this.stopRequested, ...(lastCheckpoint !== undefined ? { checkpoint: lastCheckpoint } : {}) };
      this.publish(done);
      if (isMain) await this.log({ ...done, time: new Date().toISOString() });
      return done;
    } finally {
      for (const d of disposables.reverse()) d.dispose();
    }
  }

  /** One engine step on `batch`; its input tensors are released as soon as the step has run. */
  private async step(engine: NativeTrainEngine, batch: Batch, size: number, model: DoveModel): Promise<StepResult> {
    const b = binding();
    // The batch buffer becomes the tensor's memory (no copy); the tensor keeps it alive.
    const inputs: NativeTensor[] = [b.tensorFromArray(batch.pixels, [batch.count, size, size, 3], 'uint8')];
    try {
      if (batch.regionMask !== undefined && model.isQDove) {
        inputs.push(b.tensorFromArray(batch.regionMask, [batch.count, 1, size, size], 'float32'));
        const { ids, mask } = model.encodeQueries(batch.questions ?? []);
        inputs.push(ids.native, mask.native);
      }
      return await engine.trainStep(inputs);
    } finally {
      for (const t of inputs) b.tensorDispose(t);
    }
  }

  private async reconstructionGrid(model: DoveModel, samples: readonly Sample[]): Promise<Buffer> {
    const size = model.imageSize;
    const inputs: Buffer[] = [];
    const kept: Sample[] = [];
    for (const s of samples) {
      try {
        inputs.push((await loadCrop(s.file, size, new Rng(0), null, this.options.maxInputPixels)).pixels);
        kept.push(s);
      } catch {
        // Unreadable samples were already reported by the loader.
      }
    }
    if (kept.length === 0) return reconstructionGridPng([], size);
    const plane = size * size * 3;
    const pixels = new Uint8Array(kept.length * plane);
    inputs.forEach((p, i) => pixels.set(p, i * plane));
    const queries = model.isQDove ? kept.map((s) => s.annotation?.question ?? '') : undefined;
    const module = model.module;
    const wasTraining = module.training;
    module.train(false);
    try {
      const result = await model.reconstructAtLengths(pixels, kept.length, ['auto'], { threshold: model.meta.eosThreshold, queries });
      const recs: SampleReconstruction[] = kept.map((s, i) => ({ name: s.file, input: pixels.subarray(i * plane, (i + 1) * plane), output: result.frames[0]![i]!, length: result.autoLengths[i]! }));
      return await reconstructionGridPng(recs, size);
    } finally {
      module.train(wasTraining);
    }
  }

  private async log(record: object): Promise<void> {
    await appendFileChecked(join(this.options.outDir, 'log.jsonl'), `${JSON.stringify(record)}\n`);
  }
}
