// Boundary benchmark (Node side): per-call overhead of a no-op TorchScript method (async run,
// pipelined run, synchronous runSync) and the cost of
// moving a 256 MiB tensor in and out. bench/boundary/run.sh runs this and boundary.py on the same
// file and libtorch and prints one table. Prints one JSON line on stdout.
import { medianOf } from '../../lib/base/arrays';
import { loadModule } from '../../lib/core/module';
import { binding } from '../../lib/core/native';
import { getNumThreads, setNumThreads, versions } from '../../lib/core/runtime';
import { Tensor } from '../../lib/core/tensor';

interface Args {
  model: string;
  calls: number;
  mib: number;
}

function parse(argv: string[]): Args {
  const args: Args = { model: '', calls: 20000, mib: 256 };
  for (let i = 0; i < argv.length; i++) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (flag === '--model' && value !== undefined) args.model = value;
    else if (flag === '--calls' && value !== undefined) args.calls = Number(value);
    else if (flag === '--mib' && value !== undefined) args.mib = Number(value);
    else continue;
    i++;
  }
  if (args.model === '') throw new Error('usage: node boundary.js --model core.pt [--calls N] [--mib M]');
  return args;
}

async function main(): Promise<void> {
  const args = parse(process.argv.slice(2));
  setNumThreads(Math.min(getNumThreads(), 2));
  const module = await loadModule(args.model);
  const raw = module.native;
  const x = Tensor.fromArray(new Float32Array([1]));
  const rawX = x.native;

  // Warm up: TorchScript's profiling executor optimises a method during its first calls.
  for (let i = 0; i < 200; i++) await raw.run('noop', [rawX]);

  const timeSequential = async (call: () => Promise<unknown>): Promise<number> => {
    const rounds: number[] = [];
    for (let r = 0; r < 5; r++) {
      const n = Math.floor(args.calls / 5);
      const start = process.hrtime.bigint();
      for (let i = 0; i < n; i++) await call();
      rounds.push(Number(process.hrtime.bigint() - start) / 1e3 / n);
    }
    return medianOf(rounds);
  };
  const rawUs = await timeSequential(() => raw.run('noop', [rawX]));
  const publicUs = await timeSequential(() => module.run('noop', [x]));
  // The synchronous path: no thread hop at all, the closest equivalent of Python's direct call.
  const timeSync = (call: () => unknown): number => {
    for (let i = 0; i < 200; i++) call();
    const rounds: number[] = [];
    for (let r = 0; r < 5; r++) {
      const n = Math.floor(args.calls / 5);
      const start = process.hrtime.bigint();
      for (let i = 0; i < n; i++) call();
      rounds.push(Number(process.hrtime.bigint() - start) / 1e3 / n);
    }
    return medianOf(rounds);
  };
  const syncRawUs = timeSync(() => raw.runSync('noop', [rawX]));
  const syncPublicUs = timeSync(() => module.runSync('noop', [x]));
  // No tensor in or out: the call without the tensor crossing (wrapping, recognising, finalising).
  const noArgs: never[] = [];
  const syncNothingUs = timeSync(() => raw.runSync('nothing', noArgs));
  // Pipelined: 64 calls in flight (they still run one at a time on the module), median of 5 rounds.
  const inFlight = 64;
  const batches = Math.max(1, Math.floor(args.calls / inFlight / 5));
  const pipelinedRounds: number[] = [];
  for (let r = 0; r < 5; r++) {
    const start = process.hrtime.bigint();
    for (let b = 0; b < batches; b++) await Promise.all(Array.from({ length: inFlight }, () => raw.run('noop', [rawX])));
    pipelinedRounds.push(Number(process.hrtime.bigint() - start) / 1e3 / (batches * inFlight));
  }
  const pipelinedUs = medianOf(pipelinedRounds);

  // 256 MiB in and out. Each step is timed over several repetitions on the same buffer and the
  // median kept: single shots catch garbage collections that the external memory provokes.
  const bytes = args.mib * 1024 * 1024;
  const big = new Float32Array(bytes / 4);
  for (let i = 0; i < big.length; i += 1024) big[i] = i; // touch every page so timing excludes page faults
  const gc = (globalThis as { gc?: () => void }).gc;
  const reps = 15;
  const copyRounds: number[] = [];
  const inRounds: number[] = [];
  const runRounds: number[] = [];
  const outRounds: number[] = [];
  const runSyncRounds: number[] = [];
  const freshOutRounds: number[] = [];
  const target = new Float32Array(big.length);
  for (let r = 0; r < 3; r++) {
    gc?.();
    let t0 = process.hrtime.bigint();
    target.set(big);
    copyRounds.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  const seconds = (t0: bigint): number => Number(process.hrtime.bigint() - t0) / 1e9;
  for (let r = 0; r < reps; r++) {
    gc?.();
    // The first allocations after a full collection fault in the young generation's pages again
    // (~50 us); that is the collection's cost, not the crossing's, so it is paid before timing.
    Tensor.fromArray(new Float32Array(1)).dispose();
    (module.runSync('noop', [x]) as Tensor).dispose();
    let t0 = process.hrtime.bigint();
    const tensor = Tensor.fromArray(big, [big.length]);
    inRounds.push(seconds(t0));
    t0 = process.hrtime.bigint();
    const out = (await module.run('noop', [tensor])) as Tensor;
    runRounds.push(seconds(t0));
    t0 = process.hrtime.bigint();
    const view = out.data();
    outRounds.push(seconds(t0));
    // The same call on the JS thread: what Python's direct call is compared with.
    t0 = process.hrtime.bigint();
    const outSync = module.runSync('noop', [tensor]) as Tensor;
    runSyncRounds.push(seconds(t0));
    outSync.dispose();
    if (view.length !== big.length || view.buffer !== big.buffer) throw new Error('expected the same memory back');
    tensor.dispose();
    out.dispose();
  }
  // A tensor libtorch allocated: data() hands out its memory as an external ArrayBuffer.
  const fresh = Tensor.fromNative(binding().zeros([big.length], 'float32', 'cpu'));
  for (let r = 0; r < reps; r++) {
    const t0 = process.hrtime.bigint();
    const freshView = fresh.data();
    freshOutRounds.push(seconds(t0));
    if (freshView.length !== big.length) throw new Error('size mismatch');
  }
  fresh.dispose();
  const result = {
    side: 'node',
    node: process.version,
    libtorch: versions().libtorch,
    threads: getNumThreads(),
    noopUs: rawUs,
    noopPublicUs: publicUs,
    noopPipelinedUs: pipelinedUs,
    noopSyncUs: syncRawUs,
    noopSyncPublicUs: syncPublicUs,
    nothingSyncUs: syncNothingUs,
    mib: args.mib,
    copyS: medianOf(copyRounds),
    inS: medianOf(inRounds),
    runS: medianOf(runRounds),
    runSyncS: medianOf(runSyncRounds),
    outS: medianOf(outRounds),
    freshOutS: medianOf(freshOutRounds),
  };
  process.stdout.write(JSON.stringify(result) + '\n');
  module.dispose();
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
  process.exitCode = 1;
});
