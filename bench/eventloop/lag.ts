// bench/eventloop: how late a 1 ms interval timer fires while 4 tokenize calls run concurrently
// (PNG decode on the libuv pool, encode on the native worker). Every heavy step must stay off the JS
// thread; the p99 lateness says whether it does. An idle baseline (same timer, nothing running)
// shows the floor the machine itself imposes (on a loaded 2-core box it is not zero).
//   node dist/bench/eventloop/lag.js --plan plan.json --out out.json
//   plan: { model, concurrent, rounds, threads }
import { readFileSync, writeFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { maxOf } from '../../lib/base/arrays';
import { Tokenizer } from '../../lib/model/tokenizer';
import { loadBinding } from '../lib/addon';
import { sectionArgs } from '../lib/child';
import { seededPngs } from '../lib/images';
import type { LagResult } from '../lib/schema';
import { nowMs, percentile } from '../lib/timing';

interface LagPlan {
  model: string;
  concurrent: number;
  rounds: number;
  threads: number;
}

/** Runs `work` while a 1 ms interval records how late each tick is relative to the previous one. */
async function withTimer<T>(work: () => Promise<T>): Promise<{ lateMs: number[]; histP99: number; result: T }> {
  const lateMs: number[] = [];
  const hist = monitorEventLoopDelay({ resolution: 1 });
  hist.enable();
  let last = nowMs();
  const timer = setInterval(() => {
    const t = nowMs();
    lateMs.push(Math.max(0, t - last - 1));
    last = t;
  }, 1);
  try {
    const result = await work();
    return { lateMs, histP99: hist.percentile(99) / 1e6, result };
  } finally {
    clearInterval(timer);
    hist.disable();
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  const args = sectionArgs(process.argv);
  const plan = JSON.parse(readFileSync(args.plan, 'utf8')) as LagPlan;
  loadBinding().setNumThreads(plan.threads);
  const tokenizer = await Tokenizer.load(plan.model);
  const images = await seededPngs(plan.concurrent, 256, 192);
  // Warm-up outside the measured window: first calls profile the TorchScript graph.
  for (let i = 0; i < 3; i++) await Promise.all(images.map((img) => tokenizer.tokenize(img)));

  const idle = await withTimer(() => sleep(1000));
  const started = nowMs();
  const busy = await withTimer(async () => {
    for (let r = 0; r < plan.rounds; r++) {
      await Promise.all(images.map((img) => tokenizer.tokenize(img, { mode: 'auto' })));
    }
  });
  const seconds = (nowMs() - started) / 1000;
  const result: LagResult = {
    concurrentCalls: plan.concurrent,
    rounds: plan.rounds,
    timerTicks: busy.lateMs.length,
    p50Ms: percentile(busy.lateMs, 50),
    p99Ms: percentile(busy.lateMs, 99),
    maxMs: maxOf(busy.lateMs),
    histogramP99Ms: busy.histP99,
    idleP99Ms: percentile(idle.lateMs, 99),
    tokenizeCallsPerSec: (plan.rounds * plan.concurrent) / seconds,
    seconds,
  };
  console.log(`p99 lag ${result.p99Ms.toFixed(2)} ms (idle ${result.idleP99Ms.toFixed(2)} ms) over ${result.timerTicks} ticks`);
  tokenizer.dispose();
  writeFileSync(args.out, JSON.stringify(result, null, 2));
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? (e.stack ?? e.message) : String(e));
  process.exitCode = 1;
});
