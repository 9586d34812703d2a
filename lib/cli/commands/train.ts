import type { Command } from '../command';
import { getFlag, getNumber, getString, parseArgs, takeFlags, UsageError, withUsage } from '../args';
import { formatDuration } from '../progress';
import { defaultModelPath } from '../../model/model-file';
import { launchWorkers } from '../../trainer/launcher';
import { Trainer, type StepEvent } from '../../trainer/trainer';
import { FLIP_ONLY, type AugmentOptions } from '../../trainer/data';

const SPECS = {
  images: { type: 'string' },
  out: { type: 'string', alias: 'o' },
  epochs: { type: 'int', min: 1, max: 1000000 },
  'batch-size': { type: 'int', min: 1, max: 65536 },
  lr: { type: 'float', min: 0, max: 10 },
  checkpoint: { type: 'string' },
  'init-from': { type: 'string' },
  model: { type: 'string', alias: 'm' },
  device: { type: 'string' },
  'trust-model': { type: 'flag' },
  qdove: { type: 'flag' },
  annotations: { type: 'string' },
  recursive: { type: 'flag' },
  'max-steps': { type: 'int', min: 1 },
  accumulate: { type: 'int', min: 1, max: 1000000 },
  'warmup-steps': { type: 'int', min: 0 },
  'vqgan-lr-scale': { type: 'float', min: 0, max: 1000000 },
  'weight-decay': { type: 'float', min: 0, max: 10 },
  'clip-grad-norm': { type: 'float', min: 0 },
  'checkpoint-every': { type: 'int', min: 0 },
  'keep-last': { type: 'int', min: 1 },
  seed: { type: 'int', min: 0, max: 2147483647 },
  threads: { type: 'int', min: 1, max: 1024 },
  'no-augment': { type: 'flag' },
  augment: { type: 'string', choices: ['crop', 'flip', 'none'] },
  'no-plots': { type: 'flag' },
  'sample-images': { type: 'int', min: 0, max: 64 },
  bf16: { type: 'flag' },
  'nproc-per-node': { type: 'int', min: 1, max: 1024 },
  nnodes: { type: 'int', min: 1, max: 65536 },
  'node-rank': { type: 'int', min: 0, max: 65535 },
  'master-addr': { type: 'string' },
  'master-port': { type: 'int', min: 1, max: 65535 },
  'dist-timeout-ms': { type: 'int', min: 1000, max: 86400000 },
} as const;

const help = `Usage: dove train --images DIR --out DIR [options]

Trains a DOVE (or Q-DOVE) export on a folder of images with the native libtorch engine (AdamW,
warm-up + cosine schedule, gradient clipping, bf16 autocast on CUDA). Writes OUT/log.jsonl,
OUT/loss-curve.png and a reconstruction grid after each epoch, and crash-safe checkpoints in
OUT/checkpoints/step-N/ (model.pt loads in the Tokenizer as is, optimizer.pt, trainer.json).
Ctrl-C / SIGTERM finishes the running step, checkpoints and exits 0.

Data and model:
      --images <dir>          training images (flat folder; --recursive for sub-folders)
  -o, --out <dir>             output folder (checkpoints, log, plots)
      --init-from <model.pt>  starting weights/architecture (default: the embedded model); also -m/--model
      --checkpoint <path>     resume: a checkpoint folder, its trainer.json, or an --out folder (newest)
      --qdove                 train Q-DOVE (needs a Q-DOVE model and --annotations)
      --annotations <file>    Q-DOVE annotations JSON [{image_id, question, answer, bounding_box}]
      --device <dev>          cpu (default), cuda, cuda:N
      --trust-model           load a model whose TorchScript touches files or the process (refused
                              otherwise: a model file is code; docs/MODEL_FORMAT.md)

Optimisation:
      --epochs <n>            default 1          --batch-size <n>     per process, default 8
      --lr <x>                default 1e-4       --vqgan-lr-scale <x> default 0.1
      --accumulate <n>        micro-batches per optimizer step (default 1)
      --warmup-steps <n>      default min(100, 5% of the steps)
      --weight-decay <x>      default 0.01       --clip-grad-norm <x> default 1 (0 = off)
      --max-steps <n>         stop after n optimizer steps
      --seed <n>              data order, augmentation and training randomness (default 0)
      --augment <kind>        crop: random resized crop + flip (default); flip: the whole image,
                              mirrored half of the time (for folders of ready-made crops); none:
                              centre crop
      --no-augment            same as --augment none
      --bf16                  bf16 autocast (default on for CUDA)
      --threads <n>           libtorch intra-op threads

Checkpoints and output:
      --checkpoint-every <n>  also checkpoint every n optimizer steps (default: epoch ends only)
      --keep-last <k>         checkpoints kept (default 3)
      --sample-images <n>     images in the reconstruction grid (default 4)
      --no-plots              skip the loss curve and the grid

Multi-process (torchrun contract; Gloo on CPU):
      --nproc-per-node <n>    worker processes on this node
      --nnodes <n> --node-rank <r> --master-addr <host> --master-port <port>
      --dist-timeout-ms <ms>  a dead peer ends the job within this (default 60000)

Examples:
  dove train --images photos/ --out runs/a --epochs 10 --batch-size 16 --lr 3e-4
  dove train --images photos/ --out runs/a --checkpoint runs/a
  dove train --qdove --init-from qdove.pt --images coco/ --annotations ann.json --out runs/q
  dove train --images photos/ --out runs/d --nproc-per-node 2
`;

function augmentFromFlags(kind: string | undefined, noAugment: boolean): boolean | AugmentOptions {
  if (noAugment && kind !== undefined && kind !== 'none') throw new UsageError(`--no-augment contradicts --augment ${kind}`);
  if (noAugment || kind === 'none') return false;
  return kind === 'flip' ? FLIP_ONLY : true;
}

/** The launcher's own flags: a worker's argv is the command's without them (and their values). */
const LAUNCHER_FLAGS = ['--nproc-per-node', '--nnodes', '--node-rank', '--master-addr', '--master-port'];

class StepLine {
  private last = 0;
  private readonly tty = process.stderr.isTTY === true;
  show(e: StepEvent, force = false): void {
    const now = Date.now();
    if (!this.tty && !force && now - this.last < 10000) return;
    this.last = now;
    const done = e.epoch * e.stepsPerEpoch + e.stepInEpoch + 1;
    const frac = Math.min(1, e.step / Math.max(1, e.totalSteps));
    const width = 20;
    const bar = `${'#'.repeat(Math.round(frac * width))}${'-'.repeat(width - Math.round(frac * width))}`;
    const text = `epoch ${e.epoch + 1} [${bar}] step ${e.step}/${e.totalSteps} loss ${e.loss.toFixed(4)} tokens/image ${Number.isFinite(e.tokensPerImage) ? e.tokensPerImage.toFixed(1) : '-'} ${e.imagesPerSecond.toFixed(1)} images/s ETA ${formatDuration(e.etaSeconds)} (batch ${done})`;
    process.stderr.write(this.tty ? `\r\x1b[K${text}` : `${text}\n`);
  }
  end(): void {
    if (this.tty) process.stderr.write('\n');
  }
}

async function run(argv: string[]): Promise<number> {
  return withUsage('train', async () => {
    const args = parseArgs(argv, SPECS);
    if (args.positionals.length > 0) throw new UsageError(`Unexpected argument ${args.positionals[0]}`);
    const images = getString(args, 'images');
    const out = getString(args, 'out');
    if (images === undefined) throw new UsageError('Missing --images <dir>');
    if (out === undefined) throw new UsageError('Missing --out <dir>');
    const annotations = getString(args, 'annotations');
    if (getFlag(args, 'qdove') && annotations === undefined) throw new UsageError('--qdove needs --annotations <file>');
    if (getString(args, 'init-from') !== undefined && getString(args, 'model') !== undefined) throw new UsageError('Give either --init-from or --model, not both');

    const nproc = getNumber(args, 'nproc-per-node');
    if (nproc !== undefined && process.env.WORLD_SIZE === undefined) {
      // Launcher: start the workers and wait; each worker runs this command with RANK etc. set.
      const result = await launchWorkers({
        script: process.argv[1]!,
        args: ['train', ...takeFlags(argv, LAUNCHER_FLAGS).rest],
        nprocPerNode: nproc,
        nnodes: getNumber(args, 'nnodes'),
        nodeRank: getNumber(args, 'node-rank'),
        masterAddr: getString(args, 'master-addr'),
        masterPort: getNumber(args, 'master-port'),
        env: getNumber(args, 'dist-timeout-ms') !== undefined ? { DOVE_DIST_TIMEOUT_MS: String(getNumber(args, 'dist-timeout-ms')) } : {},
      });
      if (result.error !== undefined) process.stderr.write(`dove train: ${result.error}; the job was stopped [DISTRIBUTED_ERROR]\n`);
      return result.exitCode;
    }

    const trainer = new Trainer({
      model: getString(args, 'init-from') ?? getString(args, 'model') ?? defaultModelPath(),
      images,
      annotations,
      recursive: getFlag(args, 'recursive'),
      outDir: out,
      epochs: getNumber(args, 'epochs'),
      batchSize: getNumber(args, 'batch-size'),
      lr: getNumber(args, 'lr'),
      resume: getString(args, 'checkpoint'),
      device: getString(args, 'device'),
      trustModel: getFlag(args, 'trust-model'),
      maxSteps: getNumber(args, 'max-steps'),
      accumulate: getNumber(args, 'accumulate'),
      warmupSteps: getNumber(args, 'warmup-steps'),
      vqganLrScale: getNumber(args, 'vqgan-lr-scale'),
      weightDecay: getNumber(args, 'weight-decay'),
      clipGradNorm: getNumber(args, 'clip-grad-norm'),
      checkpointEvery: getNumber(args, 'checkpoint-every'),
      keepLast: getNumber(args, 'keep-last'),
      seed: getNumber(args, 'seed'),
      threads: getNumber(args, 'threads'),
      augment: augmentFromFlags(getString(args, 'augment'), getFlag(args, 'no-augment')),
      plots: !getFlag(args, 'no-plots'),
      sampleImages: getNumber(args, 'sample-images'),
      bf16: getFlag(args, 'bf16') ? true : undefined,
      distributed: 'env',
    });
    const quiet = trainer.rank !== 0;
    const line = new StepLine();
    let signals = 0;
    const onSignal = (signal: NodeJS.Signals): void => {
      signals += 1;
      if (signals > 1) {
        process.stderr.write(`\ndove train: second ${signal}, exiting without a checkpoint\n`);
        process.exit(130);
      }
      if (!quiet) process.stderr.write(`\ndove train: ${signal}: finishing the step and checkpointing (again to abort)\n`);
      trainer.stop();
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    let lastStep: StepEvent | undefined;
    if (!quiet) {
      trainer.on('step', (e: StepEvent) => {
        lastStep = e;
        line.show(e);
      });
      trainer.on('skip', (e: { file: string; reason: string }) => process.stderr.write(`\ndove train: skipped unreadable image ${e.file}: ${e.reason}\n`));
      trainer.on('epoch', (e: { epoch: number; meanLoss: number; grid?: string }) => {
        if (lastStep !== undefined) line.show(lastStep, true);
        line.end();
        process.stderr.write(`epoch ${e.epoch + 1} done: mean loss ${e.meanLoss.toFixed(4)}${e.grid !== undefined ? `, grid ${e.grid}` : ''}\n`);
      });
    }
    try {
      const done = await trainer.fit();
      if (!quiet) {
        line.end();
        process.stdout.write(`${done.stopped ? 'stopped' : 'finished'} at step ${done.step}; checkpoint ${done.checkpoint ?? '(none)'}\n`);
      }
      return 0;
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  });
}

const command: Command = { name: 'train', summary: 'train or fine-tune a DOVE / Q-DOVE model on an image folder', help, specs: SPECS, run };
export default command;
