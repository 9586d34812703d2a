// bench/train: training steps/s on CPU, Node (the C++ engine alone, and the whole Trainer with its
// sharp data pipeline) against a plain PyTorch loop on the same export, batch and hyper-parameters.
//   node dist/bench/train/train.js [--configs tiny,official-14m] [--batch 4,1 (per config)] [--steps 10] [--threads 2] [--rounds 3]
// The three run in rounds (python, engine, Trainer, then the reverse order, ...; `steps` timed steps
// each), so their ratios are taken within a round. Prints a Markdown table and writes
// bench/results/train-<date>.json (medians over rounds, and every round's steps/s).
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { Trainer, type StepEvent } from '../../lib/trainer';
import { binding as native } from '../../lib/core/native';
import { medianOf } from '../../lib/base/arrays';
import { pythonPath, repoRoot, resultsDir } from '../lib/paths';
import { roundRatio } from '../lib/ratios';

const execFileP = promisify(execFile);
const ROOT = repoRoot();
const MODELS: { [name: string]: string } = {
  tiny: join(ROOT, 'test', 'fixtures', 'generated', 'tiny-dove.pt'),
  'official-14m': join(ROOT, 'test', 'fixtures', 'generated', 'official-14m.pt'),
};

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}

/** The engine alone on one fixed batch, same as the Python loop. */
interface Speed {
  stepsPerSecond: number;
  cpuSecondsPerStep: number;
}

async function nodeEngine(model: string, batch: number, warmup: number, steps: number, threads: number): Promise<Speed> {
  const b = native();
  b.setNumThreads(threads);
  const m = await b.loadModule(model, 'cpu', ['dove.json']);
  try {
    const size = (JSON.parse(m.extraFiles['dove.json']!) as { imageSize: number }).imageSize;
    const pixels = new Uint8Array(batch * size * size * 3);
    for (let i = 0; i < pixels.length; i++) pixels[i] = (i * 2654435761) >>> 24;
    const images = b.tensorFromArray(pixels, [batch, size, size, 3], 'uint8');
    const engine = b.createTrainEngine(m, {
      lr: 1e-4, betas: [0.9, 0.95], eps: 1e-8, groups: [{ prefixes: ['vqgan.'], lrScale: 0.1, weightDecay: 0.01 }], weightDecay: 0.01,
      warmupSteps: 0, totalSteps: 1000, minLrRatio: 1, clipGradNorm: 1, accumulate: 1, autocastBf16: false, seed: 0,
    });
    for (let i = 0; i < warmup; i++) await engine.trainStep([images]);
    const t = process.hrtime.bigint();
    const c = process.cpuUsage();
    for (let i = 0; i < steps; i++) await engine.trainStep([images]);
    const seconds = Number(process.hrtime.bigint() - t) / 1e9;
    const cpu = process.cpuUsage(c);
    engine.dispose();
    return { stepsPerSecond: steps / seconds, cpuSecondsPerStep: (cpu.user + cpu.system) / 1e6 / steps };
  } finally {
    m.dispose();
  }
}

/** The whole Trainer: image folder -> sharp crops -> engine; timed between step events. */
async function nodeTrainer(model: string, batch: number, warmup: number, steps: number, threads: number): Promise<Speed> {
  const dir = mkdtempSync(join(tmpdir(), 'dove-bench-train-'));
  try {
    const images = join(dir, 'images');
    mkdirSync(images);
    const count = batch * (warmup + steps);
    for (let i = 0; i < count; i++) {
      const raw = Buffer.alloc(300 * 260 * 3);
      for (let j = 0; j < raw.length; j++) raw[j] = ((j + i * 7919) * 2654435761) >>> 24;
      await sharp(raw, { raw: { width: 300, height: 260, channels: 3 } }).jpeg({ quality: 90 }).toFile(join(images, `img-${i}.jpg`));
    }
    const trainer = new Trainer({ model, images, outDir: join(dir, 'out'), batchSize: batch, epochs: 1, threads, plots: false, lr: 1e-4 });
    const times: bigint[] = [];
    const cpus: NodeJS.CpuUsage[] = [];
    trainer.on('step', (_e: StepEvent) => {
      times.push(process.hrtime.bigint());
      cpus.push(process.cpuUsage());
    });
    await trainer.fit();
    const seconds = Number(times[times.length - 1]! - times[warmup - 1]!) / 1e9;
    const a = cpus[warmup - 1]!;
    const b = cpus[cpus.length - 1]!;
    return { stepsPerSecond: steps / seconds, cpuSecondsPerStep: (b.user - a.user + b.system - a.system) / 1e6 / steps };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function python(model: string, batch: number, warmup: number, steps: number, threads: number): Promise<Speed> {
  const { stdout } = await execFileP(pythonPath(), [join(ROOT, 'bench', 'train', 'train_python.py'), model, '--batch', String(batch), '--warmup', String(warmup), '--steps', String(steps), '--threads', String(threads)], { env: { ...process.env, OMP_NUM_THREADS: String(threads) }, timeout: 3600_000 });
  return JSON.parse(stdout.trim().split('\n').pop()!) as Speed;
}

function medianSpeed(speeds: Speed[]): Speed {
  return { stepsPerSecond: medianOf(speeds.map((x) => x.stepsPerSecond)), cpuSecondsPerStep: medianOf(speeds.map((x) => x.cpuSecondsPerStep)) };
}

/** "1.05× (0.98–1.12)": median and min–max of per-round ratios a/b of steps/s. */
function speedRatio(a: Speed[], b: Speed[]): string {
  return roundRatio(a.map((x) => x.stepsPerSecond), b.map((x) => x.stepsPerSecond)) ?? 'n/a';
}

async function main(): Promise<void> {
  const configs = arg('--configs', 'tiny,official-14m').split(',');
  const batches = arg('--batch', '4').split(',').map(Number);
  const steps = Number(arg('--steps', '10'));
  const threads = Number(arg('--threads', '2'));
  const rounds = Number(arg('--rounds', '3'));
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 100) throw new Error(`Expected integer between 1 and 100 for --rounds but received ${arg('--rounds', '3')}`);
  const warmup = 3;
  type Rounds = { python: Speed[]; engine: Speed[]; trainer: Speed[] };
  const rows: { config: string; batch: number; python: Speed; engine: Speed; trainer: Speed; rounds: Rounds }[] = [];
  for (const [ci, config] of configs.entries()) {
    const batch = batches[Math.min(ci, batches.length - 1)]!;
    const model = MODELS[config];
    if (model === undefined || !existsSync(model)) throw new Error(`No export for ${config} (${String(model)}); run scripts/setup`);
    const per: Rounds = { python: [], engine: [], trainer: [] };
    const sides: [keyof Rounds, () => Promise<Speed>][] = [
      ['python', () => python(model, batch, warmup, steps, threads)],
      ['engine', () => nodeEngine(model, batch, warmup, steps, threads)],
      ['trainer', () => nodeTrainer(model, batch, warmup, steps, threads)],
    ];
    for (let r = 0; r < rounds; r++) {
      for (const [name, run] of r % 2 === 0 ? sides : [...sides].reverse()) per[name].push(await run());
      process.stderr.write(`[bench/train] ${config} round ${r + 1}/${rounds}: ${JSON.stringify({ python: per.python.at(-1), engine: per.engine.at(-1), trainer: per.trainer.at(-1) })}\n`);
    }
    rows.push({ config, batch, python: medianSpeed(per.python), engine: medianSpeed(per.engine), trainer: medianSpeed(per.trainer), rounds: per });
  }
  const cell = (s: Speed): string => `${s.stepsPerSecond.toFixed(3)} (${s.cpuSecondsPerStep.toFixed(2)} cpu-s)`;
  const table = [
    `| config | batch | PyTorch loop: steps/s (CPU s/step) | Node engine | Node Trainer incl. data | engine / python | Trainer / python |`,
    '|---|---|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.config} | ${r.batch} | ${cell(r.python)} | ${cell(r.engine)} | ${cell(r.trainer)} | ${speedRatio(r.rounds.engine, r.rounds.python)} | ${speedRatio(r.rounds.trainer, r.rounds.python)} |`),
  ].join('\n');
  process.stdout.write(`${table}\n\nCPU, ${threads} threads, ${rounds} rounds of ${steps} timed steps after ${warmup} warm-up steps each, one fixed batch (Trainer: a folder of batch × ${warmup + steps} JPEGs, 300×260, random crops). Medians over rounds; ratios: median (min–max) of per-round ratios.\n`);
  const out = resultsDir();
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, `train-${new Date().toISOString().slice(0, 10)}.json`), JSON.stringify({ threads, steps, warmup, rounds, rows }, null, 2));
}

main().catch((error: unknown) => {
  process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
