// One fuzz target in a child process (what supervise.ts starts): a crash or a hang of the target
// then shows as this process dying or falling silent, never as the test runner's. Protocol: one JSON
// object per line on stdout ({event: beat|done, ...}), written synchronously so that beats reach the
// supervisor while a synchronous fuzz loop runs.
import { writeFileSync, writeSync } from 'node:fs';
import { resolve } from 'node:path';
import { runTarget } from './harness';
import { seedsOf, TARGETS, type FuzzTarget } from './targets';

interface ChildArgs {
  target: string;
  seed: number;
  ms: number;
  perInputMs?: number;
  /** Write every input here before running it (replay: the file then holds the input that hung or crashed). */
  replayFile?: string;
  /** Load targets from this module instead (the harness's own tests). */
  module?: string;
}

function emit(value: object): void {
  writeSync(1, `${JSON.stringify(value)}\n`);
}

async function main(): Promise<void> {
  const args = JSON.parse(process.argv[2] ?? '{}') as ChildArgs;
  const targets = args.module === undefined ? TARGETS : (require(resolve(args.module)) as { TARGETS: readonly FuzzTarget[] }).TARGETS;
  const target = targets.find((t) => t.name === args.target);
  if (target === undefined) throw new Error(`no fuzz target ${args.target} (have ${targets.map((t) => t.name).join(', ')})`);
  await target.setup?.();
  let lastBeat = performance.now();
  const result = runTarget(target, seedsOf(target.name), {
    seed: args.seed,
    timeMs: args.ms,
    perInputMs: args.perInputMs,
    beatEvery: 1,
    onBeat: (runs) => {
      const now = performance.now();
      if (now - lastBeat < 500) return;
      lastBeat = now;
      emit({ event: 'beat', runs });
    },
    onInput: args.replayFile === undefined ? undefined : (input) => writeFileSync(args.replayFile!, input),
  });
  emit({
    event: 'done',
    target: result.target,
    seed: result.seed,
    runs: result.runs,
    ms: result.ms,
    finding: result.finding && { input: Buffer.from(result.finding.input).toString('base64'), message: result.finding.message, stack: result.finding.stack },
  });
}

main().catch((error: unknown) => {
  process.stderr.write(`fuzz child: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(70);
});
