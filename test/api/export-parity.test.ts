// Issue 3's Node-side acceptance: the exports written by python/dove_fixtures/model.py give, in Node,
// the same numbers Python recorded for every call (encode, decode, encode_pixels, decode_pixels).
import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ScriptModule, type Value } from '../../lib/core/module';
import { readSafetensors, type SafetensorsTensor } from '../../lib/io/safetensors';
import { Tensor, type DType } from '../../lib/core/tensor';
import { FIXTURES } from './helpers';

interface ParityCall {
  method: string;
  args: { [name: string]: string | number | boolean | null };
  outputs: string[];
}
interface ParitySpec {
  model: string;
  tensors: string;
  tolerance: number;
  uint8Tolerance: number;
  calls: ParityCall[];
}

const DTYPES: Partial<Record<SafetensorsTensor['dtype'], DType>> = {
  F32: 'float32',
  F64: 'float64',
  I64: 'int64',
  I32: 'int32',
  U8: 'uint8',
  BOOL: 'bool',
};

function toTensor(name: string, stored: SafetensorsTensor): Tensor {
  const dtype = DTYPES[stored.dtype];
  if (dtype === undefined) throw new Error(`${name}: unsupported dtype ${stored.dtype}`);
  return Tensor.fromArray(stored.data as never, stored.shape, dtype);
}

function maxDifference(actual: Tensor, expected: SafetensorsTensor): number {
  const a = actual.data();
  const e = expected.data;
  if (a.length !== e.length) return Infinity;
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(Number(a[i]) - Number(e[i]));
    if (!(d <= worst)) worst = Number.isNaN(d) ? Infinity : d;
  }
  return worst;
}

for (const name of ['tiny-dove', 'tiny-qdove', 'official-14m']) {
  test.serial(`${name}: Node reproduces Python's outputs for every recorded call`, async (t) => {
    const spec = JSON.parse(readFileSync(join(FIXTURES, `${name}.parity.json`), 'utf8')) as ParitySpec;
    const stored = (await readSafetensors(join(FIXTURES, spec.tensors))).tensors;
    const module = await ScriptModule.load(join(FIXTURES, spec.model));
    try {
      t.true(spec.calls.length > 0);
      for (const call of spec.calls) {
        const args: Value[] = Object.entries(call.args).map(([argName, value]) => {
          if (typeof value !== 'string') return value;
          const tensor = stored.get(value);
          // Literal strings (e.g. mode 'auto') are arguments; tensor references name stored keys.
          return tensor === undefined ? value : toTensor(`${call.method}.${argName}`, tensor);
        });
        const result = await module.run(call.method, args);
        const outputs = Array.isArray(result) ? result : [result];
        t.is(outputs.length, call.outputs.length, `${call.method}: number of outputs`);
        call.outputs.forEach((key, i) => {
          const expected = stored.get(key);
          const actual = outputs[i];
          if (expected === undefined || !(actual instanceof Tensor)) {
            t.fail(`${call.method}: output ${key} missing (expected stored tensor and tensor result)`);
            return;
          }
          t.deepEqual(actual.shape, expected.shape, `${key}: shape`);
          const tolerance = expected.dtype === 'U8' ? spec.uint8Tolerance : expected.dtype === 'I64' ? 0 : spec.tolerance;
          const diff = maxDifference(actual, expected);
          t.true(diff <= tolerance, `${key}: max |node - python| = ${diff} > ${tolerance}`);
        });
      }
    } finally {
      module.dispose();
    }
  });
}
