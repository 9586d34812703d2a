// The `optimize` load option (docs/API.md): the Tokenizer / Reconstructor load an inference-only module
// (frozen, conv weights channels_last, CPU block cache) by default; its outputs equal the file run as is
// within float32 rounding; `optimize: false` and the Trainer's load keep the trainable module.
import test from 'ava';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DoveError } from '../../lib/base/errors';
import { DoveModel, type LoadOptions } from '../../lib/model/model-file';
import { binding } from '../../lib/core/native';
import { readSafetensors, type SafetensorsTensor } from '../../lib/io/safetensors';
import { Tensor, type DType } from '../../lib/core/tensor';
import { Tokenizer } from '../../lib/model/tokenizer';
import { Trainer } from '../../lib/trainer';
import { FIXTURES, pngOf, tempDir, TINY_DOVE } from './helpers';

// Bounds documented in docs/API.md: channels_last convolutions round differently from NCHW ones
// (measured max 6.5e-5 on official-14m decode images, whose own float32 error against a float64 run is
// 4.6e-5; 1.6e-6 on the tiny exports). uint8 pixels within 1 step.
const FLOAT_TOLERANCE = 1e-4;

interface ParitySpec {
  model: string;
  tensors: string;
  calls: { method: string; args: { [name: string]: string | number | boolean | null }; outputs: string[] }[];
}

const DTYPES: Partial<Record<SafetensorsTensor['dtype'], DType>> = { F32: 'float32', I64: 'int64', U8: 'uint8', BOOL: 'bool' };

function maxDiff(a: Tensor, b: Tensor): number {
  const x = a.data();
  const y = b.data();
  if (x.length !== y.length) return Infinity;
  let worst = 0;
  for (let i = 0; i < x.length; i++) {
    const d = Math.abs(Number(x[i]) - Number(y[i]));
    if (!(d <= worst)) worst = Number.isNaN(d) ? Infinity : d;
  }
  return worst;
}

for (const name of ['tiny-dove', 'tiny-qdove', 'official-14m']) {
  test.serial(`${name}: the optimised module gives the unoptimised module's outputs within float32 rounding`, async (t) => {
    const spec = JSON.parse(readFileSync(join(FIXTURES, `${name}.parity.json`), 'utf8')) as ParitySpec;
    const stored = (await readSafetensors(join(FIXTURES, spec.tensors))).tensors;
    const plain = await DoveModel.load(join(FIXTURES, spec.model), { optimize: false });
    const fast = await DoveModel.load(join(FIXTURES, spec.model));
    try {
      t.true(Object.keys(plain.module.namedParameters()).length > 0, 'optimize: false keeps the parameters');
      t.is(Object.keys(fast.module.namedParameters()).length, 0, 'the optimised module is frozen (weights are graph constants)');
      t.is(fast.module.nbytes, plain.module.nbytes, 'nbytes still counts the weights');
      for (const call of spec.calls) {
        const args = Object.values(call.args).map((value) => {
          const s = typeof value === 'string' ? stored.get(value) : undefined;
          return s === undefined ? value : Tensor.fromArray(s.data as never, s.shape, DTYPES[s.dtype]!);
        });
        const a = await plain.module.run(call.method, args);
        const b = await fast.module.run(call.method, args);
        const as = Array.isArray(a) ? a : [a];
        const bs = Array.isArray(b) ? b : [b];
        call.outputs.forEach((key, i) => {
          const x = as[i] as Tensor;
          const y = bs[i] as Tensor;
          t.deepEqual(y.shape, x.shape, `${key}: shape`);
          const tolerance = x.dtype === 'uint8' ? 1 : x.dtype === 'int64' ? 0 : FLOAT_TOLERANCE;
          const d = maxDiff(x, y);
          t.true(d <= tolerance, `${call.method} ${key}: max |optimised - plain| = ${d} > ${tolerance}`);
        });
      }
    } finally {
      plain.module.dispose();
      fast.module.dispose();
    }
  });
}

test('optimize is validated like every other option', async (t) => {
  for (const bad of ['x', 1, null] as unknown[]) {
    const error = await t.throwsAsync(() => DoveModel.load(TINY_DOVE, { optimize: bad } as LoadOptions));
    t.true(error instanceof DoveError);
    t.is((error as DoveError).code, 'INVALID_ARGUMENT');
    t.regex(error!.message, /^Expected boolean for optimize but received /);
  }
  const error = await t.throwsAsync(() => DoveModel.load(TINY_DOVE, { optimize: 'x' } as unknown as LoadOptions));
  t.is(error!.message, "Expected boolean for optimize but received 'x'");
  t.throws(() => binding().loadModule(TINY_DOVE, 'cpu', [], 'yes' as unknown as boolean), { message: /Expected boolean for optimize/ });
});

test('Tokenizer.load optimises by default, and a non-DOVE file still fails as NOT_DOVE_EXPORT', async (t) => {
  const tokenizer = await Tokenizer.load(TINY_DOVE);
  try {
    t.is(Object.keys(tokenizer.model.module.namedParameters()).length, 0);
  } finally {
    tokenizer.dispose();
  }
  const error = await t.throwsAsync(() => DoveModel.load(join(FIXTURES, 'not-dove.pt')));
  t.is((error as DoveError).code, 'NOT_DOVE_EXPORT');
});

test('the raw loadModule never optimises unless asked, and the Trainer trains the file as it is', async (t) => {
  const trainable = await binding().loadModule(TINY_DOVE, 'cpu', []);
  const frozen = await binding().loadModule(TINY_DOVE, 'cpu', [], true);
  const { dir, cleanup } = tempDir('optimize-train');
  t.teardown(cleanup);
  try {
    t.true(trainable.parameters().length > 0);
    t.is(frozen.parameters().length, 0);
    // A frozen module has no parameters to train (createTrainEngine would refuse it): one step of the
    // Trainer must update the export's own parameters, every one of them still there.
    const images = join(dir, 'images');
    mkdirSync(images);
    for (let i = 0; i < 2; i++) writeFileSync(join(images, `p${i}.png`), await pngOf(64, 64, i));
    const done = await new Trainer({ model: TINY_DOVE, images, outDir: join(dir, 'out'), batchSize: 2, epochs: 1, maxSteps: 1, threads: 1, plots: false, augment: false }).fit();
    t.is(done.step, 1);
    const trained = await binding().loadModule(join(done.checkpoint!, 'model.pt'), 'cpu', []);
    try {
      const before = trainable.namedParameters();
      const after = trained.namedParameters();
      t.deepEqual(Object.keys(after).sort(), Object.keys(before).sort());
      const changed = Object.keys(before).filter((name) => {
        const a = binding().tensorData(before[name]!) as Float32Array;
        const b = binding().tensorData(after[name]!) as Float32Array;
        return a.some((v, i) => v !== b[i]);
      });
      t.true(changed.length > Object.keys(before).length / 2, `${changed.length} of ${Object.keys(before).length} parameters changed`);
    } finally {
      trained.dispose();
    }
  } finally {
    trainable.dispose();
    frozen.dispose();
  }
});
