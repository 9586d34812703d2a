// bench/memory: RSS over N training steps of the tiny model through the public Trainer (data
// pipeline with sharp crops, native AdamW steps, epoch-end checkpoints), in a fresh process.
// Small PNGs and batch 2 keep 1,000 steps to a few minutes on 2 cores.
//   node dist/bench/memory/train-rss.js --plan plan.json --out out.json
//   plan: { model, calls (steps), every, warmup, threads }
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Trainer } from '../../lib/trainer';
import { sectionArgs } from '../lib/child';
import { seededPngs } from '../lib/images';
import { tmpDir } from '../lib/paths';
import { sample, summarizeRss } from '../lib/rss';
import type { MemorySample } from '../lib/schema';

interface RssPlan {
  model: string;
  calls: number;
  every: number;
  warmup: number;
  threads: number;
}

async function main(): Promise<void> {
  const args = sectionArgs(process.argv);
  const plan = JSON.parse(readFileSync(args.plan, 'utf8')) as RssPlan;
  const work = join(tmpDir(), 'memory-train');
  rmSync(work, { recursive: true, force: true });
  const images = join(work, 'images');
  mkdirSync(images, { recursive: true });
  const pngs = await seededPngs(32, 80, 72);
  pngs.forEach((png, i) => writeFileSync(join(images, `img${String(i).padStart(3, '0')}.png`), png));
  const batchSize = 2;
  const stepsPerEpoch = pngs.length / batchSize;
  const trainer = new Trainer({
    model: plan.model,
    images,
    outDir: join(work, 'out'),
    batchSize,
    epochs: Math.ceil(plan.calls / stepsPerEpoch),
    maxSteps: plan.calls,
    checkpointEvery: 0,
    keepLast: 1,
    sampleImages: 0,
    plots: false,
    threads: plan.threads,
    seed: 0,
  });
  const samples: MemorySample[] = [sample(0)];
  trainer.on('step', (e: { step: number }) => {
    if (e.step % plan.every === 0) {
      samples.push(sample(e.step));
      if (e.step % (plan.every * 10) === 0) console.log(`${e.step} steps, RSS ${samples[samples.length - 1].rssMiB.toFixed(1)} MiB`);
    }
  });
  const started = Date.now();
  const done = await trainer.fit();
  if (done.step !== plan.calls) throw new Error(`Expected ${plan.calls} steps but the trainer stopped at ${done.step}`);
  const result = summarizeRss(
    `training steps (tiny, batch ${batchSize}, 80x72 PNG crops, checkpoint every ${stepsPerEpoch} steps)`,
    samples,
    plan.calls,
    plan.warmup,
    (Date.now() - started) / 1000,
  );
  writeFileSync(args.out, JSON.stringify(result, null, 2));
  rmSync(work, { recursive: true, force: true });
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? (e.stack ?? e.message) : String(e));
  process.exitCode = 1;
});
