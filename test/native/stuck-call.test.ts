// A TorchScript method that never returns (issue 15, row 6): process.exit(), worker.terminate() and
// dispose() must still return within a bounded time; the call is abandoned, not joined forever.
// hang.pt's spin() loops forever (python/dove_fixtures/hostile.py). DOVE_STOP_WAIT_MS is the wait
// before a running call is abandoned (exit_guard.h); the bounds below allow for a loaded machine.
import test from 'ava';
import { join } from 'node:path';
import { describeExit, HOSTILE, runChild, SLOWDOWN } from './helpers';

const HANG = join(HOSTILE, 'hang.pt');
const WAIT_MS = 500;
const env = { DOVE_STOP_WAIT_MS: String(WAIT_MS) };
// Startup (node + libtorch) and the load take seconds on the shared 2-core machine.
const BOUND_MS = 60_000 * SLOWDOWN;

test('process.exit() while a call never returns: the process exits with its code', (t) => {
  const r = runChild(`
const m = await lib.loadModule(${JSON.stringify(HANG)});
const x = lib.Tensor.fromArray(new Float32Array([1, 2, 3]), [3]);
m.run('spin', [x]).then(() => report('returned'), (e) => report('rejected ' + e.code));
setTimeout(() => { report('exiting'); process.exit(7); }, 300);
`, { env, timeoutMs: BOUND_MS });
  t.is(r.signal, null, describeExit(r));
  t.is(r.status, 7, describeExit(r));
  t.is(r.result, 'exiting');
  t.log(`exited in ${r.ms} ms`);
});

test('dispose() while a call never returns comes back at once, and the process can still exit', (t) => {
  const r = runChild(`
const m = await lib.loadModule(${JSON.stringify(HANG)});
const x = lib.Tensor.fromArray(new Float32Array([1, 2, 3]), [3]);
const spinning = m.run('spin', [x]);
spinning.catch(() => {});
await new Promise((done) => setTimeout(done, 200));
const started = Date.now();
m.dispose();
const disposeMs = Date.now() - started;
const after = await codeOfAsync(m.run('forward', [x]));
report({ disposeMs, after });
process.exit(0);
`, { env, timeoutMs: BOUND_MS });
  t.is(r.signal, null, describeExit(r));
  t.is(r.status, 0, describeExit(r));
  const out = r.result as { disposeMs: number; after: string };
  t.true(out.disposeMs < 1000, `dispose took ${out.disposeMs} ms`);
  t.is(out.after, 'DISPOSED');
});

test('worker.terminate() while a call in the worker never returns: terminate resolves, the process goes on', (t) => {
  const r = runChild(`
const { Worker } = require('node:worker_threads');
const worker = new Worker(\`
  const { parentPort } = require('node:worker_threads');
  const lib = require(\${JSON.stringify(LIB_DIR + '/index.js')});
  (async () => {
    const m = await lib.loadModule(\${JSON.stringify(${JSON.stringify(HANG)})});
    m.run('spin', [lib.Tensor.fromArray(new Float32Array([1, 2, 3]), [3])]).catch(() => {});
    parentPort.postMessage('spinning');
  })();
\`, { eval: true });
await new Promise((done) => worker.once('message', done));
await new Promise((done) => setTimeout(done, 200));
const started = Date.now();
const code = await worker.terminate();
const terminateMs = Date.now() - started;
// The main thread still works: load and run something.
const m = await lib.loadModule(${JSON.stringify(HANG)});
const y = await m.run('forward', [lib.Tensor.fromArray(new Float32Array([4]), [1])]);
report({ terminateMs, code, y: Array.from(y.data()) });
process.exit(0);
`, { env, timeoutMs: BOUND_MS });
  t.is(r.signal, null, describeExit(r));
  t.is(r.status, 0, describeExit(r));
  const out = r.result as { terminateMs: number; code: number; y: number[] };
  t.true(out.terminateMs < WAIT_MS + 10_000, `terminate took ${out.terminateMs} ms`);
  t.deepEqual(out.y, [4]);
});
