import test from 'ava';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readDataset } from '../../lib/eval/cifar';
import { binding as getBinding } from '../../lib/core/native';
import { probeCsv, probeFeatures, trainProbe } from '../../lib/eval/probe';
import { Tokenizer } from '../../lib/model/tokenizer';
import { dove, EVAL, ROOT, tempDir } from './fixtures';

const C = join(EVAL, 'cifar');

test('raw-pixel probe on linearly separable CIFAR-format data reaches > 95% test top-1', async (t) => {
  const dataset = await readDataset(join(C, 'binary'));
  const features = await probeFeatures(dataset, { kind: 'pixels', cacheDir: null });
  t.is(features.dim, 3072);
  const seen: number[] = [];
  const result = await trainProbe(features, dataset, { numClasses: 10, epochs: 5, batchSize: 64, lr: 1e-3, onEpoch: (m) => seen.push(m.epoch) });
  t.deepEqual(seen, [1, 2, 3, 4, 5]);
  const last = result.epochs[result.epochs.length - 1]!;
  t.true(last.testTop1 > 0.95, `test top-1 ${last.testTop1}`);
  t.true(result.epochs[0]!.trainLoss > last.trainLoss, 'loss falls');
  t.deepEqual(getBinding().tensorShape(result.weight), [10, 3072]);
  const csv = probeCsv(result.epochs).trim().split('\n');
  t.is(csv[0], 'epoch,train_loss,train_top1,test_top1,test_top5');
  t.is(csv.length, 6);
});

test('probe training is deterministic for a seed and validates its inputs', async (t) => {
  const b = getBinding();
  const x = b.tensorFromArray(Float32Array.from([0, 0, 1, 1, 0, 1, 1, 0]), [4, 2], 'float32');
  const y = b.tensorFromArray(Int32Array.from([0, 1, 1, 0]), [4], 'int32');
  const opts = { numClasses: 2, epochs: 3, batchSize: 2, lr: 0.1, weightDecay: 0, seed: 7, standardize: true };
  const r1 = await b.trainLinearProbe(x, y, x, y, opts);
  const r2 = await b.trainLinearProbe(x, y, x, y, opts);
  t.deepEqual(r1.epochs, r2.epochs);
  const badY = b.tensorFromArray(Int32Array.from([0, 1, 2, 0]), [4], 'int32');
  await t.throwsAsync(async () => b.trainLinearProbe(x, badY, x, y, opts), { message: /labels between 0 and 1 in trainLabels but found 2/ });
  await t.throwsAsync(async () => b.trainLinearProbe(x, y, x, y, { ...opts, epochs: 0 }), { message: /integer between 1 and .* for epochs but received 0/ });
  const x3 = b.tensorFromArray(new Float32Array(12), [4, 3], 'float32');
  await t.throwsAsync(async () => b.trainLinearProbe(x, y, x3, y, opts), { message: /testFeatures of shape \(M, 2\)/ });
  // A throwing progress callback stops training with an error instead of crashing.
  await t.throwsAsync(
    async () => b.trainLinearProbe(x, y, x, y, { ...opts, epochs: 50 }, () => {
      throw new Error('boom');
    }),
    { message: /onEpoch callback threw/ },
  );
  const dataset = await readDataset(join(C, 'binary'));
  const features = await probeFeatures(dataset, { kind: 'pixels', cacheDir: null });
  await t.throwsAsync(trainProbe(features, dataset, { numClasses: 5, epochs: 1, batchSize: 64, lr: 1e-3 }), { message: /numClasses \(the data has labels up to 9\)/ });
});

test('token features: fixed budget flattened, auto mean-pooled, cached on disk by model and settings', async (t) => {
  const model = join(ROOT, 'test', 'fixtures', 'generated', 'tiny-dove.pt');
  const tokenizer = await Tokenizer.load(model);
  try {
    const dataset = await readDataset(join(C, 'folder'));
    const cacheDir = tempDir('probe-cache');
    const fixed = await probeFeatures(dataset, { kind: 'tokens', tokenizer, numTokens: 2, cacheDir });
    t.is(fixed.dim, 2 * tokenizer.tokenDim);
    t.false(fixed.fromCache);
    t.is(fixed.train.length, dataset.train.count * fixed.dim);
    // Fixed-mode features are the first K tokens as the Tokenizer returns them (batched there, single
    // here: equal up to float32 rounding of the batched kernels).
    const one = await tokenizer.tokenize((dataset.train.images as { paths: string[] }).paths[0]!, { mode: 'fixed', maxTokens: 2 });
    t.is(one.tokens.length, fixed.dim);
    const diff = Math.max(...Array.from(one.tokens, (v, i) => Math.abs(v - fixed.train[i]!)));
    t.true(diff < 1e-4, `max diff ${diff}`);
    const again = await probeFeatures(dataset, { kind: 'tokens', tokenizer, numTokens: 2, cacheDir });
    t.true(again.fromCache);
    t.deepEqual([...again.test], [...fixed.test]);
    const auto = await probeFeatures(dataset, { kind: 'tokens', tokenizer, auto: true, cacheDir });
    t.false(auto.fromCache, 'other settings, other cache entry');
    t.is(auto.dim, tokenizer.tokenDim);
    t.is(readdirSync(cacheDir).filter((f) => f.endsWith('.json')).length, 2);
  } finally {
    tokenizer.dispose();
  }
});

test('dove probe --features pixels on CIFAR python format writes the per-epoch log', (t) => {
  const out = tempDir('probe-cli');
  const log = join(out, 'results.csv');
  const r = dove(['probe', '--data-root', join(C, 'python'), '--features', 'pixels', '--num-classes', '10', '--epochs', '3', '--batch-size', '64', '--log', log, '--cache-dir', join(out, 'cache')]);
  t.is(r.status, 0, r.stderr);
  t.regex(r.stdout, /raw pixels: test top-1 (9[5-9]|100)\.\d\d%/);
  const lines = readFileSync(log, 'utf8').trim().split('\n');
  t.is(lines.length, 4);
  t.true(existsSync(join(out, 'cache')));
  const again = dove(['probe', '--data-root', join(C, 'python'), '--features', 'pixels', '--num-classes', '10', '--epochs', '1', '--cache-dir', join(out, 'cache')]);
  t.is(again.status, 0, again.stderr);
  t.regex(again.stderr, /from cache/);
});

test('dove probe reports bad data and bad flags clearly', (t) => {
  const bad = dove(['probe', '--data-root', join(C, 'bad', 'badbin'), '--features', 'pixels', '--no-cache']);
  t.is(bad.status, 1);
  t.regex(bad.stderr, /train\.bin: 3075 bytes is not a whole number of 3074-byte CIFAR records/);
  const both = dove(['probe', '--data-root', C, '--auto', '--num-tokens', '4']);
  t.is(both.status, 2);
  t.regex(both.stderr, /either --num-tokens or --auto/);
  const noRoot = dove(['probe', '--features', 'pixels']);
  t.is(noRoot.status, 2);
  t.regex(noRoot.stderr, /Missing --data-root/);
});
