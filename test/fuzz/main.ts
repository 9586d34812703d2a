// `scripts/fuzz`: the fuzz runs outside npm test.
//   scripts/fuzz                      every target for 10 s, random seeds (npm test runs 8 s, a fixed seed)
//   scripts/fuzz --long               every target for 4 min, a random seed each (the long run)
//   scripts/fuzz --minutes 2 --targets csv,bpe [--seed N]
//   scripts/fuzz --replay <target> <seed>   rerun a seed, saving every input first, to catch the
//                                     input of a hang or crash in fuzz-findings/<target>/replay.bin
// Each target runs in its own child process (supervise.ts). Findings (the shrunk input, the error,
// the seed) go to fuzz-findings/<target>/; the exit code is 1 when there is any. A finding becomes a
// regression test: fix it, add the input to test/fuzz/corpus/<target>/ (every run replays the corpus
// first) and a test that names it.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { superviseTarget, type SupervisedRun } from './supervise';
import { TARGETS } from './targets';

const FINDINGS = resolve(__dirname, '..', '..', '..', 'fuzz-findings');

interface MainOptions {
  ms: number;
  targets: string[];
  seed?: number;
  replay?: { target: string; seed: number };
}

function parse(argv: readonly string[]): MainOptions {
  const options: MainOptions = { ms: 10_000, targets: TARGETS.map((t) => t.name) };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const next = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--long') options.ms = 4 * 60_000;
    else if (a === '--minutes') options.ms = Number(next()) * 60_000;
    else if (a === '--seconds') options.ms = Number(next()) * 1000;
    else if (a === '--targets') options.targets = next().split(',');
    else if (a === '--seed') options.seed = Number(next());
    else if (a === '--replay') options.replay = { target: next(), seed: Number(next()) };
    else throw new Error(`unknown argument ${a} (see the comment at the top of test/fuzz/main.ts)`);
  }
  if (!(options.ms > 0)) throw new Error('the run time must be positive');
  const unknown = options.targets.filter((t) => !TARGETS.some((x) => x.name === t));
  if (unknown.length > 0) throw new Error(`unknown target ${unknown.join(', ')} (have ${TARGETS.map((t) => t.name).join(', ')})`);
  return options;
}

function record(run: SupervisedRun): void {
  if (run.outcome === 'ok') return;
  const dir = join(FINDINGS, run.target);
  mkdirSync(dir, { recursive: true });
  const base = join(dir, `${new Date().toISOString().replace(/[:.]/g, '-')}-${run.seed}`);
  if (run.finding) writeFileSync(`${base}.bin`, Buffer.from(run.finding.input, 'base64'));
  writeFileSync(`${base}.txt`, `${run.outcome} in ${run.target}, seed ${run.seed}, after ${run.runs} inputs\n${run.finding?.message ?? ''}\n${run.finding?.stack ?? ''}\n${run.detail ?? ''}\n`);
  process.stdout.write(`  -> ${base}.txt\n`);
}

async function main(): Promise<number> {
  const options = parse(process.argv.slice(2));
  if (options.replay !== undefined) {
    mkdirSync(join(FINDINGS, options.replay.target), { recursive: true });
    const replayFile = join(FINDINGS, options.replay.target, 'replay.bin');
    const run = await superviseTarget(options.replay.target, { seed: options.replay.seed, ms: options.ms, replayFile });
    process.stdout.write(`${run.target}: ${run.outcome} after ${run.runs} inputs; the last input is in ${replayFile}\n`);
    record(run);
    return run.outcome === 'ok' ? 0 : 1;
  }
  const runs: SupervisedRun[] = [];
  for (const target of options.targets) {
    const seed = options.seed ?? Math.floor(Math.random() * 2 ** 31);
    const run = await superviseTarget(target, { seed, ms: options.ms });
    runs.push(run);
    const rate = run.runs / Math.max(0.001, run.ms / 1000);
    process.stdout.write(`${target.padEnd(14)} ${run.outcome.padEnd(8)} ${String(run.runs).padStart(10)} inputs in ${(run.ms / 1000).toFixed(0).padStart(4)} s (${rate.toFixed(0)}/s), seed ${seed}\n`);
    if (run.finding) process.stdout.write(`  ${run.finding.message.split('\n')[0]}\n`);
    if (run.detail) process.stdout.write(`  ${run.detail.split('\n')[0]}\n`);
    record(run);
  }
  const total = runs.reduce((s, r) => s + r.runs, 0);
  const bad = runs.filter((r) => r.outcome !== 'ok');
  process.stdout.write(`${runs.length} targets, ${total} inputs, ${bad.length} with findings\n`);
  return bad.length > 0 ? 1 : 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`scripts/fuzz: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 2;
  },
);
