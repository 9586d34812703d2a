// A CPU batch is encoded and decoded in slices of at most PIXELS_PER_CALL image pixels per call
// (lib/model/model-file.ts), through TorchScript and through a compiled package alike, and gives the
// tokens and images one call over the whole batch gives.
import test from 'ava';
import { join } from 'node:path';
import { DoveError } from '../../lib/base/errors';
import { DoveModel, sliceSize, PIXELS_PER_CALL } from '../../lib/model/model-file';
import { Tensor } from '../../lib/core/tensor';
import { FIXTURES, maxAbsDiff, TINY_DOVE } from './helpers';
import type { EncodeResult } from '../../lib/model/model-file';

function seededTokens(batch: number, k: number, d: number): Tensor {
  return Tensor.fromArray(Float32Array.from({ length: batch * k * d }, (_, i) => Math.sin(i * 0.37) * 0.8), [batch, k, d]);
}

/** Records the batch of every call to `fn` on `target` while `body` runs. */
async function batchesOf<T extends object>(target: T, fn: keyof T, body: () => Promise<void>): Promise<number[]> {
  const original = target[fn] as unknown as (...args: unknown[]) => unknown;
  const seen: number[] = [];
  (target as Record<keyof T, unknown>)[fn] = (...args: unknown[]) => {
    const first = args.find((a) => a instanceof Tensor) ?? (args[1] as Tensor[] | undefined)?.[0];
    seen.push(first instanceof Tensor ? first.shape[0]! : -1);
    return original.apply(target, args);
  };
  try {
    await body();
  } finally {
    (target as Record<keyof T, unknown>)[fn] = original;
  }
  return seen;
}

test('the slice size: one 256x256 image of pixels per call, at least one image', (t) => {
  t.is(PIXELS_PER_CALL, 256 * 256);
  t.is(sliceSize(256), 1);
  t.is(sliceSize(512), 1);
  t.is(sliceSize(128), 4);
  t.is(sliceSize(64), 16);
  t.is(sliceSize(16), 256);
});

for (const { name, file, compiled } of [
  { name: 'TorchScript (tiny, 64 px: 16 per call)', file: TINY_DOVE, compiled: false },
  { name: 'a compiled package (micro, 16 px: 256 per call)', file: join(FIXTURES, 'compiled', 'micro.pt'), compiled: true },
]) {
  test(`a batch above the slice size encodes in slices and equals one call: ${name}`, async (t) => {
    const model = await DoveModel.load(file, { trustModel: true, compiled });
    try {
      const slice = sliceSize(model.imageSize);
      const batch = slice + 1;
      const s = model.imageSize;
      const pixels = Tensor.fromArray(Uint8Array.from({ length: batch * s * s * 3 }, (_, i) => (i * 7919 + (i >> 9)) % 256), [batch, s, s, 3], 'uint8');
      // TorchScript runs reach module.run('encode_pixels', [pixels, …]); the compiled encoder encode(pixels).
      const [target, fn] = compiled ? [model.compiled!, 'encode' as const] : [model.module, 'run' as const];
      let sliced: EncodeResult | undefined;
      const calls = await batchesOf(target as object, fn as never, async () => {
        sliced = await model.encodePixels(pixels, 'auto', model.maxTokens, 0.5);
      });
      t.deepEqual(calls.filter((b) => b !== -1), [slice, 1], 'two encode calls: a full slice, then the rest');
      const whole = await model.encodeOnce(pixels, 'auto', model.maxTokens, 0.5);
      t.deepEqual(sliced!.tokens.shape, [batch, model.maxTokens, model.tokenDim]);
      t.deepEqual(sliced!.eosProbabilities.shape, whole.eosProbabilities.shape);
      // A GEMM's rounding may follow its row count, so slices agree with one call within float32 rounding.
      t.true(maxAbsDiff(sliced!.tokens.data() as Float32Array, whole.tokens.data() as Float32Array) < 1e-4, 'tokens');
      t.true(maxAbsDiff(sliced!.eosProbabilities.data() as Float32Array, whole.eosProbabilities.data() as Float32Array) < 1e-5, 'p(EOS)');
      t.deepEqual(sliced!.lengths.data(), whole.lengths.data());
      for (const r of [sliced!, whole]) Tensor.disposeAll([r.tokens, r.eosProbabilities, r.lengths]);
      pixels.dispose();
    } finally {
      model.dispose();
    }
  });

  test(`a batch above the slice size decodes in slices and equals one call: ${name}`, async (t) => {
    const model = await DoveModel.load(file, { trustModel: true, compiled });
    try {
      t.is(model.compiled !== null, compiled, model.compiledNote);
      const slice = sliceSize(model.imageSize);
      const batch = slice + 1;
      const tokens = seededTokens(batch, model.maxTokens, model.tokenDim);
      const lengths = Tensor.fromArray(BigInt64Array.from({ length: batch }, (_, i) => BigInt(1 + (i % model.maxTokens))), [batch], 'int64');
      // TorchScript runs reach module.run(method, [tokens, lengths]); the compiled decoder decode(tokens, lengths).
      const [target, fn] = compiled ? [model.compiled!, 'decode' as const] : [model.module, 'run' as const];
      let sliced: Tensor | undefined;
      let host: Uint8Array | undefined;
      const calls = await batchesOf(target as object, fn as never, async () => {
        sliced = await model.decodePixels(tokens, lengths);
        host = (await model.decodeToHost(tokens, lengths)).pixels;
      });
      t.deepEqual(calls, [slice, 1, slice, 1], 'two calls per decode: a full slice, then the rest');
      const whole = await model.decodeOnce(tokens, lengths);
      t.deepEqual(sliced!.shape, whole.shape);
      const a = sliced!.data() as Uint8Array;
      t.true(maxAbsDiff(a, whole.data() as Uint8Array) <= 1, 'sliced and whole within one level');
      t.true(maxAbsDiff(a, host!) === 0, 'decodeToHost gives the pixels decodePixels gives');
      // Slices of unequal batches could each agree: the mismatch is refused before any slice runs.
      for (const n of [batch - 1, batch + 1]) {
        const wrong = Tensor.fromArray(new BigInt64Array(n).fill(1n), [n], 'int64');
        await t.throwsAsync(model.decodePixels(tokens, wrong), { instanceOf: DoveError, code: 'SHAPE_MISMATCH', message: new RegExp(`${batch} token rows but ${n} lengths`) });
        wrong.dispose();
      }
      Tensor.disposeAll([tokens, lengths, sliced!, whole]);
    } finally {
      model.dispose();
    }
  });
}
