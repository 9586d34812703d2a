// The nccl backend (c10d::ProcessGroupNCCL, native/dist_nccl.cpp). On a machine without it, or
// without CUDA, initProcessGroup must refuse before any rendezvous (that half runs in CI); on a GPU
// (scripts/gpu-check) a world-size-1 NCCL group all-reduces, broadcasts and passes a barrier on cuda:0,
// and a training step runs with it attached. Two ranks on one GPU are refused by NCCL itself, so one
// rank is what a single-GPU machine can check.
import test from 'ava';
import { createServer } from 'node:net';
import { DoveError } from '../../lib/base/errors';
import { hasDevice, versions } from '../../lib/core/runtime';
import { binding as native } from '../../lib/core/native';
import { fixturesReady, MINI } from '../trainer/helpers';

const CUDA = 'cuda:0';
// Chosen at load time: each half runs where its subject exists and is listed as skipped elsewhere.
const GPU = hasDevice(CUDA);
const NCCL = versions().nccl;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

const refusal = GPU && NCCL ? test.skip : test;
refusal(`backend nccl is refused with its reason where NCCL or CUDA is missing, before any rendezvous${GPU && NCCL ? ' (skipped: NCCL and cuda:0 are here)' : ''}`, async (t) => {
  const nccl = NCCL;
  const started = Date.now();
  const port = await freePort();
  // The refusal may come at once (JS thread) or from the worker: both count.
  const error = await t.throwsAsync(
    Promise.resolve().then(() => native().initProcessGroup({ backend: 'nccl', rank: 0, worldSize: 2, masterAddr: '127.0.0.1', masterPort: port, timeoutMs: 60_000 })),
    { instanceOf: DoveError },
  );
  t.is(error?.code, nccl ? 'DEVICE_UNAVAILABLE' : 'DISTRIBUTED_ERROR', error?.message);
  t.regex(error?.message ?? '', nccl ? /needs a CUDA device/ : /not compiled into this addon/);
  t.true(Date.now() - started < 10_000, 'no wait for the missing second rank');
});

(GPU ? test : test.skip)(`on cuda:0 a world-size-1 NCCL group runs collectives and a training step${GPU ? '' : ' (skipped: no CUDA device here)'}`, async (t) => {
  if (!NCCL) return t.fail('cuda:0 present but the addon was built without NCCL (see scripts/get-cuda-headers)');
  if (!fixturesReady()) return t.fail('training fixtures missing: run scripts/setup');
  const b = native();
  const group = await b.initProcessGroup({ backend: 'nccl', rank: 0, worldSize: 1, masterAddr: '127.0.0.1', masterPort: await freePort(), timeoutMs: 60_000 });
  t.teardown(() => group.dispose());
  t.is(group.backend, 'nccl');
  const host = b.tensorFromArray(new Float32Array([1, 2, 3, 4]), [4], 'float32');
  const x = b.tensorTo(host, CUDA, null);
  await group.allReduce(x, 'sum');
  await group.allReduce(x, 'avg');
  await group.broadcast(x, 0);
  await group.barrier();
  t.deepEqual([...(b.tensorData(b.tensorTo(x, 'cpu', null)) as Float32Array)], [1, 2, 3, 4], 'one rank: sum, average and broadcast leave the values');

  const module = await b.loadModule(MINI, CUDA, ['dove.json']);
  t.teardown(() => module.dispose());
  const size = (JSON.parse(module.extraFiles['dove.json']!) as { imageSize: number }).imageSize;
  module.train(true);
  const engine = b.createTrainEngine(module, {
    lr: 1e-4, betas: [0.9, 0.95], eps: 1e-8, groups: [{ prefixes: ['vqgan.'], lrScale: 0.1, weightDecay: 0.01 }], weightDecay: 0.01,
    warmupSteps: 0, totalSteps: 10, minLrRatio: 0.1, clipGradNorm: 1, accumulate: 1, autocastBf16: true, seed: 0,
  });
  t.teardown(() => engine.dispose());
  engine.setProcessGroup(group);
  const pixels = b.tensorFromArray(Uint8Array.from({ length: 2 * size * size * 3 }, (_, i) => (i * 7) % 256), [2, size, size, 3], 'uint8');
  for (let i = 0; i < 2; i++) {
    const step = await engine.trainStep([pixels]);
    t.true(Number.isFinite(step.parts.loss!), `loss ${step.parts.loss}`);
    t.true(Number.isFinite(step.gradNorm) && step.gradNorm > 0, `grad norm ${step.gradNorm}`);
  }
  t.is(engine.step, 2);
});
