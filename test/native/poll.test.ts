// The JS thread polls for finished calls for a short window after each run() (module_executor.h):
// results must be the same as through the thread-safe function, in call order, with dispose,
// worker threads and process exit still clean; and a long call must not keep the JS thread busy.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { DoveError } from '../../lib/base/errors';
import { loadModule } from '../../lib/core/module';
import { Tensor } from '../../lib/core/tensor';
import { CORE_MODEL, ROOT, SLOWDOWN, parityMeta, slowCallLasting } from './helpers';

const MODULE_JS = JSON.stringify(join(ROOT, 'dist', 'lib', 'core', 'module.js'));
const TENSOR_JS = JSON.stringify(join(ROOT, 'dist', 'lib', 'core', 'tensor.js'));

test('thousands of sequential awaits resolve in call order with their own results', async (t) => {
  const module = await loadModule(CORE_MODEL);
  const x = Tensor.fromArray(new Float32Array([1, -2, 0.5]));
  for (let i = 0; i < 3000; i++) {
    const k = (i % 13) - 6;
    const out = (await module.run('scale', [x, k])) as Tensor;
    const data = out.data();
    if (data[0] !== k || data[1] !== -2 * k || data[2] !== 0.5 * k) {
      t.fail(`call ${i}: scale by ${k} gave ${[...data].join(', ')}`);
      break;
    }
    out.dispose();
  }
  // tick() counts the calls that ran: awaited one by one, in order, none lost or repeated.
  const ticks: number[] = [];
  for (let i = 0; i < 1000; i++) ticks.push((await module.run('tick')) as number);
  t.deepEqual(ticks, Array.from({ length: 1000 }, (_, i) => i + 1));
  // Errors take the same path: the right code, and the next call still works.
  const error = await module.run('wants_2d', [Tensor.zeros([2, 3])]).catch((e: unknown) => e);
  t.true(error instanceof DoveError);
  t.is((error as DoveError).code, 'TORCH_ERROR');
  t.is(await module.run('tick'), 1001);
  module.dispose();
});

test('sequential awaits and batches in flight interleave on two modules without mixing results', async (t) => {
  const a = await loadModule(CORE_MODEL);
  const b = await loadModule(CORE_MODEL);
  const x = Tensor.fromArray(new Float32Array([3]));
  const loop = async (module: typeof a, k: number): Promise<number> => {
    let sum = 0;
    for (let i = 0; i < 500; i++) sum += Number(((await module.run('scale', [x, k])) as Tensor).data()[0]);
    return sum;
  };
  const batch = Promise.all(Array.from({ length: 64 }, (_, i) => a.run('scale', [x, i])));
  const [sumA, sumB, batched] = await Promise.all([loop(a, 2), loop(b, 5), batch]);
  t.is(sumA, 500 * 6);
  t.is(sumB, 500 * 15);
  batched.forEach((r, i) => t.is((r as Tensor).data()[0], 3 * i));
  a.dispose();
  b.dispose();
});

test('dispose in the middle of a sequential loop: earlier calls resolved, later ones DISPOSED', async (t) => {
  const module = await loadModule(CORE_MODEL);
  const codes: string[] = [];
  let resolved = 0;
  for (let i = 0; i < 200; i++) {
    if (i === 100) module.dispose();
    try {
      await module.run('tick');
      resolved++;
    } catch (error) {
      codes.push((error as DoveError).code);
    }
  }
  t.is(resolved, 100);
  t.deepEqual([...new Set(codes)], ['DISPOSED']);
  t.is(codes.length, 100);
  // Dispose while calls are in flight and being polled for: each settles exactly once.
  const other = await loadModule(CORE_MODEL);
  const inFlight = Array.from({ length: 50 }, () => other.run('tick').then((v) => `ok ${String(v)}`, (e: DoveError) => e.code));
  await Promise.resolve();
  other.dispose();
  const outcomes = await Promise.all(inFlight);
  const ok = outcomes.filter((o) => o.startsWith('ok '));
  t.deepEqual(ok, ok.map((_, i) => `ok ${i + 1}`), 'the calls that ran, ran in order');
  t.true(outcomes.slice(ok.length).every((o) => o === 'DISPOSED'), outcomes.join(','));
});

// CPU time of the calling OS thread (the JS thread), from /proc.
function jsThreadCpuMs(): number {
  const stat = readFileSync('/proc/thread-self/stat', 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 of stat(5), in clock ticks (100 per second on Linux).
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
}

const HAS_THREAD_STAT = existsSync('/proc/thread-self/stat');
// Serial: the other tests of this file would otherwise run JS on this thread meanwhile.
(HAS_THREAD_STAT ? test.serial : test.skip)(
  `a long call does not keep the JS thread busy while it runs${HAS_THREAD_STAT ? '' : ' [skipped: no /proc/thread-self on this platform]'}`,
  async (t) => {
    const module = await loadModule(CORE_MODEL);
    const dim = parityMeta().slowDim;
    const x = Tensor.fromArray(new Float32Array(64 * dim).fill(0.01), [64, dim]);
    // The first runs of a TorchScript method are profiling runs; warm up before measuring.
    await module.run('slow', [x, 5]);
    await module.run('slow', [x, 5]);
    // A short call first, so the long one starts inside a poll window (the case that polls), then
    // one right after a long one (the case that does not poll at all): it starts from the count the
    // first case ended with, so it normally follows a long call on its first attempt too.
    let iters = 50;
    for (const afterShortCall of [true, false]) {
      const label = afterShortCall ? 'after a short call' : 'after a long call';
      const call = await slowCallLasting(300, async (iters) => {
        if (afterShortCall) await module.run('noop', [Tensor.zeros([1])]);
        const cpu0 = jsThreadCpuMs();
        const start = performance.now();
        await module.run('slow', [x, iters]);
        return { wallMs: performance.now() - start, cpuMs: jsThreadCpuMs() - cpu0 };
      }, iters);
      iters = call.iters;
      t.log(`${label}: slow(${call.iters}) took ${call.wallMs.toFixed(0)} ms; the JS thread used ${call.cpuMs.toFixed(0)} ms of CPU meanwhile`);
      // Polling for the whole call would cost about the wall time; allow ticks of rounding and GC.
      t.true(call.cpuMs < call.wallMs * 0.25 + 30, `${label}: JS thread CPU ${call.cpuMs.toFixed(0)} ms in ${call.wallMs.toFixed(0)} ms`);
    }
    module.dispose();
  },
);

function runChild(body: string, env: Record<string, string> = {}): { status: number | null; signal: string | null; stdout: string; stderr: string } {
  const script = `
    const { loadModule } = require(${MODULE_JS});
    const { Tensor } = require(${TENSOR_JS});
    const model = ${JSON.stringify(CORE_MODEL)};
    (async () => { ${body} })().catch((e) => { console.error(e); process.exitCode = 1; });
  `;
  const child = spawnSync(process.execPath, ['-e', script], {
    encoding: 'utf8',
    timeout: 120_000 * SLOWDOWN,
    env: { ...process.env, OMP_WAIT_POLICY: 'passive', ...env },
  });
  return { status: child.status, signal: child.signal, stdout: child.stdout, stderr: child.stderr };
}

const SEQUENTIAL = `
  const m = await loadModule(model);
  const x = Tensor.fromArray(new Float32Array([2]));
  let sum = 0;
  for (let i = 0; i < 500; i++) sum += (await m.run('scale', [x, i % 3])).data()[0];
  const ticks = [];
  for (let i = 0; i < 100; i++) ticks.push(await m.run('tick'));
  const batch = await Promise.all(Array.from({ length: 64 }, () => m.run('tick')));
  console.log('sum', sum, 'ordered', ticks.every((v, i) => v === i + 1) && batch.every((v, i) => v === 101 + i));
`;

test('with polling off (DOVE_RUN_POLL_US=0) the thread-safe function delivers the same results', (t) => {
  for (const poll of ['0', '200']) {
    const child = runChild(SEQUENTIAL, { DOVE_RUN_POLL_US: poll });
    t.is(child.stderr.trim(), '', `poll ${poll}`);
    t.is(child.status, 0, `poll ${poll}`);
    // sum over i of 2 * (i % 3): 166 full cycles of 0+2+4, then i = 498 (0) and 499 (2).
    t.is(child.stdout.trim(), 'sum 998 ordered true', `poll ${poll}`);
  }
});

test('the process ends by itself after polled calls, and process.exit from an awaiting loop is clean', (t) => {
  // Not disposed: the poll handle must not hold the loop open once nothing is pending.
  const natural = runChild(`${SEQUENTIAL} setTimeout(() => console.log('timer'), 5);`);
  t.is(natural.stderr.trim(), '');
  t.is(natural.status, 0);
  t.regex(natural.stdout, /ordered true\ntimer/);
  // process.exit from code resumed by a poll (inside the poller's callback scope).
  const exiting = runChild(`
    const m = await loadModule(model);
    const x = Tensor.zeros([1]);
    const more = loadModule(model).then((n) => { for (let i = 0; i < 8; i++) n.run('slow', [Tensor.zeros([16, ${parityMeta().slowDim}]), 200]); });
    await more;
    for (let i = 0; ; i++) {
      await m.run('noop', [x]);
      if (i === 500) process.exit(3);
    }
  `);
  t.is(exiting.signal, null, 'no crash at teardown');
  t.is(exiting.status, 3);
  t.is(exiting.stderr.trim(), '');
});

test('worker threads poll their own calls; a worker terminated mid-loop takes its poller with it', async (t) => {
  const script = `
    const { parentPort, workerData } = require('node:worker_threads');
    const { loadModule } = require(${MODULE_JS});
    const { Tensor } = require(${TENSOR_JS});
    (async () => {
      const module = await loadModule(workerData.model);
      const x = Tensor.fromArray(new Float32Array([1, 2, 3]));
      let sum = 0;
      const n = workerData.forever ? Infinity : 1000;
      for (let i = 0; i < n; i++) {
        sum += (await module.run('scale', [x, 2])).data()[2];
        if (i === 100 && workerData.forever) parentPort.postMessage({ running: true });
      }
      parentPort.postMessage({ sum });
      if (!workerData.keep) module.dispose();
    })().catch((e) => parentPort.postMessage({ error: String(e && e.stack || e) }));
  `;
  const runWorker = (data: object): { worker: Worker; message: Promise<{ sum?: number; running?: boolean; error?: string }>; exit: Promise<number> } => {
    const worker = new Worker(script, { eval: true, workerData: { model: CORE_MODEL, ...data } });
    return {
      worker,
      message: new Promise((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
      }),
      exit: new Promise((resolve) => worker.once('exit', resolve)),
    };
  };
  const finishing = [runWorker({}), runWorker({ keep: true })];
  const endless = runWorker({ forever: true });
  const module = await loadModule(CORE_MODEL);
  const x = Tensor.fromArray(new Float32Array([1]));
  for (let i = 0; i < 500; i++) t.is(((await module.run('scale', [x, 3])) as Tensor).data()[0], 3);
  for (const w of finishing) {
    const message = await w.message;
    t.is(message.error, undefined);
    t.is(message.sum, 1000 * 6);
    t.is(await w.exit, 0, 'a worker with an undisposed, idle module ends by itself');
  }
  t.deepEqual(await endless.message, { running: true });
  await endless.worker.terminate();
  // This thread's module is unaffected by the workers' teardown.
  t.is(((await module.run('scale', [x, 4])) as Tensor).data()[0], 4);
  module.dispose();
});

test('terminating workers in the middle of their await loops never aborts the process', (t) => {
  // In a child process, so that an abort shows up as its signal instead of ending this test run.
  // (It did abort: node-addon-api rethrew an exception it could not hand to a terminating worker.)
  const child = spawnSync(process.execPath, ['-e', `
    const { Worker } = require('node:worker_threads');
    const script = \`
      const { parentPort } = require('node:worker_threads');
      const { loadModule } = require(${MODULE_JS});
      const { Tensor } = require(${TENSOR_JS});
      (async () => {
        const m = await loadModule(${JSON.stringify(CORE_MODEL)});
        const x = Tensor.fromArray(new Float32Array([1, 2, 3]));
        parentPort.postMessage('go');
        for (;;) if ((await m.run('scale', [x, 2])).data()[2] !== 6) throw new Error('wrong result');
      })();
    \`;
    (async () => {
      for (let round = 0; round < 10; round++) {
        const ws = Array.from({ length: 2 }, () => new Worker(script, { eval: true }));
        await Promise.all(ws.map((w) => new Promise((r) => w.once('message', r))));
        await new Promise((r) => setTimeout(r, (round * 7) % 25));
        await Promise.all(ws.map((w) => w.terminate()));
      }
      console.log('survived');
    })();
  `], { encoding: 'utf8', timeout: 120_000 * SLOWDOWN, env: { ...process.env, OMP_WAIT_POLICY: 'passive' } });
  t.is(child.signal, null, child.stderr);
  t.is(child.status, 0, child.stderr);
  t.is(child.stdout.trim(), 'survived');
});
