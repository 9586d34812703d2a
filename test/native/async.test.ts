// Work runs off the JS thread: timers keep firing during a long forward, and many concurrent calls
// on one module all resolve with their own results.
import test from 'ava';
import { loadModule } from '../../lib/core/module';
import { Tensor } from '../../lib/core/tensor';
import { CORE_MODEL, parityMeta, slowCallLasting } from './helpers';

test('a long forward lets JS timers fire while it runs', async (t) => {
  const module = await loadModule(CORE_MODEL);
  const dim = parityMeta().slowDim;
  const x = Tensor.fromArray(new Float32Array(64 * dim).fill(0.01), [64, dim]);
  // The first runs of a TorchScript method are profiling runs (slower): warm up before measuring.
  await module.run('slow', [x, 5]);
  await module.run('slow', [x, 5]);
  const call = await slowCallLasting(500, async (iters) => {
    const ticks: number[] = [];
    const timer = setInterval(() => ticks.push(performance.now()), 10);
    const start = performance.now();
    await module.run('slow', [x, iters]);
    const wallMs = performance.now() - start;
    clearInterval(timer);
    return { wallMs, fired: ticks.filter((tick) => tick >= start && tick <= start + wallMs).length };
  });
  t.log(`slow(${call.iters} iters) took ${call.wallMs.toFixed(0)} ms; 10 ms timer fired ${call.fired} times meanwhile`);
  // A blocked event loop would fire the interval at most once (after the run).
  t.true(call.fired >= call.wallMs / 10 / 4, `timer fired ${call.fired} times in ${call.wallMs.toFixed(0)} ms`);
  module.dispose();
});

test('a JS timer keeps firing on schedule while runs are queued back to back', async (t) => {
  const module = await loadModule(CORE_MODEL);
  const dim = parityMeta().slowDim;
  const x = Tensor.zeros([16, dim]);
  let fired = 0;
  let longestGap = 0;
  let last = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    longestGap = Math.max(longestGap, now - last);
    last = now;
    fired++;
  }, 5);
  const start = performance.now();
  await Promise.all(Array.from({ length: 8 }, () => module.run('slow', [x, 100])));
  const elapsed = performance.now() - start;
  clearInterval(timer);
  t.log(`8 queued runs: ${elapsed.toFixed(0)} ms, timer fired ${fired} times, longest gap ${longestGap.toFixed(1)} ms`);
  t.true(fired >= 3, `timer fired ${fired} times`);
  t.true(longestGap < Math.max(250, elapsed / 2), `no long stall of the event loop (longest gap ${longestGap.toFixed(1)} ms)`);
  module.dispose();
});

test('100 concurrent run calls all resolve with their own correct results', async (t) => {
  const module = await loadModule(CORE_MODEL);
  const inputs = Array.from({ length: 100 }, (_, i) => Tensor.fromArray(new Float32Array([i, i + 0.5, -i])));
  const results = await Promise.all(inputs.map((x, i) => module.run('scale', [x, i % 7])));
  results.forEach((result, i) => {
    const k = i % 7;
    t.deepEqual([...(result as Tensor).data()], [i * k, (i + 0.5) * k, -i * k], `call ${i}`);
  });
  // Two modules run in parallel; calls interleave without mixing results.
  const other = await loadModule(CORE_MODEL);
  const mixed = await Promise.all(inputs.slice(0, 20).map((x, i) => (i % 2 === 0 ? module : other).run('scale', [x, 2])));
  mixed.forEach((result, i) => t.is((result as Tensor).data()[0], 2 * i));
  module.dispose();
  other.dispose();
});

test('calls on one module run one at a time in call order', async (t) => {
  const module = await loadModule(CORE_MODEL);
  const counts = await Promise.all(Array.from({ length: 50 }, () => module.run('tick')));
  t.deepEqual(counts, Array.from({ length: 50 }, (_, i) => i + 1));
  module.dispose();
});
