// Training from TypeScript: fine-tune a DOVE export on a folder of images with the Trainer, watch its
// events, then tokenize an image with the result.
//
//   npx tsc -p tsconfig.json
//   node dist/examples/train.js <images-dir> [model.pt] [out-dir]
//
// With no model the embedded one (models/dove-tiny.pt) is fine-tuned. A fresh model comes from the
// exporter: `cd python && $PY -m dove.export --config tiny -o ../my-tiny.pt`. Checkpoints land in
// <out-dir>/checkpoints/step-N/model.pt, each a normal DOVE export. Ctrl-C finishes the running step,
// checkpoints and returns. In your own project import from 'dove-encoder'.
import { join } from 'node:path';
import { defaultModelPath, Tokenizer, Trainer, type CheckpointEvent, type EpochEvent, type StepEvent } from '../lib/index';

async function main(): Promise<void> {
  const [images, model = defaultModelPath(), outDir = 'out/train-example'] = process.argv.slice(2);
  if (images === undefined) throw new Error('Usage: node dist/examples/train.js <images-dir> [model.pt] [out-dir]');

  const trainer = new Trainer({
    model,
    images,
    outDir,
    epochs: 2,
    batchSize: 8,
    lr: 3e-4,
    checkpointEvery: 50,
    seed: 1,
  });
  process.once('SIGINT', () => trainer.stop());

  // Events arrive while fit() runs: log every 10th step and every epoch and checkpoint.
  trainer.on('step', (e: StepEvent) => {
    if (e.step % 10 === 0) {
      process.stdout.write(`step ${e.step}/${e.totalSteps} loss ${e.loss.toFixed(4)} tokens/image ${e.tokensPerImage.toFixed(1)} (${e.imagesPerSecond.toFixed(1)} img/s)\n`);
    }
  });
  trainer.on('epoch', (e: EpochEvent) => process.stdout.write(`epoch ${e.epoch}: mean loss ${e.meanLoss.toFixed(4)}\n`));
  trainer.on('checkpoint', (e: CheckpointEvent) => process.stdout.write(`checkpoint ${e.dir}\n`));

  const done = await trainer.fit();
  process.stdout.write(`finished after ${done.step} steps${done.stopped ? ' (stopped)' : ''}; last checkpoint ${done.checkpoint ?? 'none'}\n`);
  if (done.checkpoint === undefined) return;

  // The checkpoint's model.pt is a DOVE export: load it like any other.
  const tokenizer = await Tokenizer.load(join(done.checkpoint, 'model.pt'));
  try {
    const tokens = await tokenizer.tokenize(join(__dirname, '..', '..', 'assets', 'sample.jpg'));
    process.stdout.write(`assets/sample.jpg -> ${tokens.length} tokens of ${tokens.dim} floats\n`);
  } finally {
    tokenizer.dispose();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
