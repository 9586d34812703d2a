// Section child: the cost of crossing the boundary. (1) Per-call overhead: `runSync('noop', [t])` and
// `await run('noop', [t])` on a scripted identity method, sequential calls, best of 5 batches each (argument conversion, the hop to a
// libuv worker and back, result wrapping). (2) A 256 MiB float32 tensor in (tensorFromArray over a JS
// Float32Array), through the same noop call, and out (data() view): bytes/s for each, which is only
// bounded by memory bandwidth if nothing is copied; memcpy of the same buffer is given for scale.
//   node dist/bench/peers/call-overhead.js --plan plan.json --out out.json   plan: { noopPt, calls, threads }
import { readFileSync, writeFileSync } from 'node:fs';
import type { NativeTensor } from '../../binding';
import { loadBinding } from '../lib/addon';
import { sectionArgs } from '../lib/child';
import { nowMs } from '../lib/timing';

interface OverheadPlan {
  noopPt: string;
  calls: number;
  threads: number;
}

export interface OverheadResult {
  nodeUsPerCall: number;
  nodeSyncUsPerCall: number;
  calls: number;
  mib: number;
  inGBps: number;
  outGBps: number;
  roundTripGBps: number;
  memcpyGBps: number;
  sameAddressIn: boolean;
  sameAddressOut: boolean;
}

async function main(): Promise<void> {
  const args = sectionArgs(process.argv);
  const plan = JSON.parse(readFileSync(args.plan, 'utf8')) as OverheadPlan;
  const b = loadBinding();
  b.setNumThreads(plan.threads);
  const mod = await b.loadModule(plan.noopPt, 'cpu', []);
  const small = b.tensorFromArray(new Float32Array(4), [4], 'float32');
  for (let i = 0; i < 1000; i++) b.tensorDispose((await mod.run('noop', [small])) as NativeTensor);
  let best = Number.POSITIVE_INFINITY;
  const per = Math.floor(plan.calls / 5);
  for (let r = 0; r < 5; r++) {
    const t0 = nowMs();
    for (let i = 0; i < per; i++) b.tensorDispose((await mod.run('noop', [small])) as NativeTensor);
    best = Math.min(best, ((nowMs() - t0) / per) * 1000);
  }
  // runSync: the same call on the JS thread, no hop (what Python's m.noop(x) does).
  for (let i = 0; i < 1000; i++) b.tensorDispose(mod.runSync('noop', [small]) as NativeTensor);
  let bestSync = Number.POSITIVE_INFINITY;
  for (let r = 0; r < 5; r++) {
    const t0 = nowMs();
    for (let i = 0; i < per; i++) b.tensorDispose(mod.runSync('noop', [small]) as NativeTensor);
    bestSync = Math.min(bestSync, ((nowMs() - t0) / per) * 1000);
  }

  const bytes = 256 * 2 ** 20;
  const big = new Float32Array(bytes / 4);
  for (let i = 0; i < big.length; i += 1024) big[i] = i; // touch every page: first-touch faults are not the binding's cost
  const gbps = (ms: number): number => bytes / (ms / 1000) / 1e9;
  let tIn = Infinity;
  let tOut = Infinity;
  let tTrip = Infinity;
  let sameIn = true;
  let sameOut = true;
  for (let r = 0; r < 5; r++) {
    let t0 = nowMs();
    const t = b.tensorFromArray(big, [big.length], 'float32');
    tIn = Math.min(tIn, nowMs() - t0);
    t0 = nowMs();
    const view = b.tensorData(t) as Float32Array;
    tOut = Math.min(tOut, nowMs() - t0);
    view[1] = 42; // a write through the tensor's view shows in the JS array: one memory, no copy
    sameIn = sameIn && big[1] === 42;
    big[1] = 0;
    t0 = nowMs();
    const back = (await mod.run('noop', [t])) as NativeTensor;
    const backView = b.tensorData(back);
    tTrip = Math.min(tTrip, nowMs() - t0);
    // The method's result is the same storage the JS array lent (no copy in, none out).
    sameOut = sameOut && b.tensorDataAddress(back) === b.tensorDataAddress(t) && backView.length === big.length;
    b.tensorDispose(back);
    b.tensorDispose(t);
  }
  const copy = new Float32Array(big.length);
  let tCopy = Infinity;
  for (let r = 0; r < 3; r++) {
    const t0 = nowMs();
    copy.set(big);
    tCopy = Math.min(tCopy, nowMs() - t0);
  }
  const result: OverheadResult = {
    nodeUsPerCall: best,
    nodeSyncUsPerCall: bestSync,
    calls: plan.calls,
    mib: 256,
    inGBps: gbps(tIn),
    outGBps: gbps(tOut),
    roundTripGBps: gbps(tTrip),
    memcpyGBps: gbps(tCopy),
    sameAddressIn: sameIn,
    sameAddressOut: sameOut,
  };
  console.log(`node ${best.toFixed(2)} µs/call; 256 MiB in ${result.inGBps.toFixed(0)} GB/s, out ${result.outGBps.toFixed(0)} GB/s, round trip ${result.roundTripGBps.toFixed(0)} GB/s (memcpy ${result.memcpyGBps.toFixed(1)} GB/s)`);
  b.tensorDispose(small);
  mod.dispose();
  writeFileSync(args.out, JSON.stringify(result, null, 2));
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? (e.stack ?? e.message) : String(e));
  process.exitCode = 1;
});
