// No native call made on the JS thread waits for a lock a worker holds: while a long `run` holds a
// module, calling the train engine of that module (trainStep, step, dispose) returns at once and
// timers keep firing; the step itself waits for the module on a worker thread.
import test from 'ava';
import { loadModule } from '../../lib/core/module';
import { binding } from '../../lib/core/native';
import { Tensor } from '../../lib/core/tensor';
import { CORE_MODEL, parityMeta, sleep, slowCallLasting } from './helpers';

const ENGINE_OPTIONS = {
  lr: 1e-3, betas: [0.9, 0.95] as [number, number], eps: 1e-8, groups: [], weightDecay: 0, warmupSteps: 0,
  totalSteps: 10, minLrRatio: 0, clipGradNorm: 0, accumulate: 1, autocastBf16: false, seed: 0,
};

test('the train engine of a module busy with a long run answers on the JS thread at once', async (t) => {
  const module = await loadModule(CORE_MODEL);
  t.teardown(() => module.dispose());
  const dim = parityMeta().slowDim;
  const x = Tensor.fromArray(new Float32Array(64 * dim).fill(0.01), [64, dim]);
  const input = Tensor.zeros([2, parityMeta().inFeatures]);
  // The first runs of a TorchScript method are profiling runs (slower): warm up before measuring.
  await module.run('slow', [x, 5]);
  const call = await slowCallLasting(1500, async (iters) => {
    const engine = binding().createTrainEngine(module.native, ENGINE_OPTIONS);
    const order: string[] = [];
    let ticks = 0;
    const timer = setInterval(() => ticks++, 10);
    const start = performance.now();
    const run = module.run('slow', [x, iters]).then(() => order.push('run'));
    // Long enough for the module's thread to have taken the run (and the module mutex) by now.
    await sleep(300);
    const callStart = performance.now();
    const step = engine.trainStep([input.native]).then(
      () => order.push('step resolved'),
      (error: { code?: string }) => order.push(`step rejected ${error.code}`),
    );
    const stepRead = engine.step;
    engine.dispose();
    const callMs = performance.now() - callStart;
    const ticksAtCall = ticks;
    await run;
    const ticksDuringRun = ticks - ticksAtCall;
    const wallMs = performance.now() - start;
    await step;
    clearInterval(timer);
    return { wallMs, callMs, ticksDuringRun, order, stepRead };
  });
  t.log(`slow(${call.iters}) took ${call.wallMs.toFixed(0)} ms; trainStep + step + dispose took ${call.callMs.toFixed(1)} ms; ` +
    `10 ms timer fired ${call.ticksDuringRun} times after them while the run went on`);
  // Waiting for the module mutex on the JS thread would last until the run ended.
  t.true(call.callMs < call.wallMs / 2, `the calls took ${call.callMs.toFixed(0)} ms of a ${call.wallMs.toFixed(0)} ms run`);
  t.true(call.ticksDuringRun >= 3, `timer fired ${call.ticksDuringRun} times`);
  t.is(call.stepRead, 0);
  // The step was called before dispose() and waited for the module on its worker thread, where it
  // found the engine disposed. (Which promise settles first is up to the loop: both finish together.)
  t.deepEqual([...call.order].sort(), ['run', 'step rejected DISPOSED']);
});
