// How often `dove reconstruct` of one image crosses into native code, counted by wrapping every
// function of the binding and every method and accessor of the modules it loads; and that the
// in-native encode -> decode-at-several-lengths gives the images the earlier per-length decodes gave.
import test from 'ava';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { NativeBinding, NativeModule } from '../../binding';
import reconstructCommand from '../../lib/cli/commands/reconstruct';
import { loadImage } from '../../lib/io/images';
import { DoveModel } from '../../lib/model/model-file';
import { binding } from '../../lib/core/native';
import { Reconstructor } from '../../lib/model/reconstructor';
import { Tensor } from '../../lib/core/tensor';
import { fixtureExists, pngOf, tempDir, TINY_DOVE } from './helpers';

/** Counts calls into the binding (and into modules it returns) while `body` runs, by name. */
async function countNativeCalls(body: () => Promise<void>): Promise<string[]> {
  const b = binding() as unknown as Record<string, unknown>;
  const calls: string[] = [];
  const originals = new Map<string, unknown>();
  const wrapModule = (m: NativeModule): NativeModule => {
    for (let proto = Object.getPrototypeOf(m) as object | null; proto !== null && proto !== Object.prototype; proto = Object.getPrototypeOf(proto) as object | null) {
      for (const [name, d] of Object.entries(Object.getOwnPropertyDescriptors(proto))) {
        if (name === 'constructor' || Object.prototype.hasOwnProperty.call(m, name)) continue;
        if (typeof d.value === 'function') {
          const f = d.value as (...args: unknown[]) => unknown;
          Object.defineProperty(m, name, { configurable: true, value: (...args: unknown[]) => (calls.push(`module.${name}`), f.apply(m, args)) });
        } else if (d.get !== undefined) {
          const get = d.get;
          Object.defineProperty(m, name, { configurable: true, get: () => (calls.push(`module.${name}`), get.call(m)) });
        }
      }
    }
    return m;
  };
  for (const [name, value] of Object.entries(b)) {
    if (typeof value !== 'function') continue;
    const f = value as (...args: unknown[]) => unknown;
    originals.set(name, value);
    b[name] =
      name === 'loadModule'
        ? async (...args: unknown[]) => (calls.push(name), wrapModule((await f.apply(b, args)) as NativeModule))
        : (...args: unknown[]) => (calls.push(name), f.apply(b, args));
  }
  try {
    await body();
  } finally {
    for (const [name, value] of originals) b[name] = value;
  }
  return calls;
}

const ready = fixtureExists(TINY_DOVE);
const maybe = ready ? test.serial : test.serial.skip;
const title = (name: string): string => (ready ? name : `${name} (skipped: no test/fixtures/generated/tiny-dove.pt; run scripts/setup)`);

maybe(title('dove reconstruct of one image makes at most 8 calls into native between loading and freeing the model'), async (t) => {
  const tmp = tempDir('calls');
  try {
    const image = join(tmp.dir, 'in.png');
    writeFileSync(image, await pngOf(40, 30));
    const load = await countNativeCalls(async () => (await DoveModel.load(TINY_DOVE)).dispose());
    const stdout = process.stdout.write;
    process.stdout.write = (() => true) as typeof process.stdout.write;
    let code = -1;
    const all = await countNativeCalls(async () => {
      code = await reconstructCommand.run([image, '--model', TINY_DOVE, '--lengths', '1,2,4', '-o', join(tmp.dir, 'grid.png')]);
    }).finally(() => (process.stdout.write = stdout));
    t.is(code, 0);
    const afterLoad = all.slice(load.length - 1); // the load's own calls, less its final module.dispose
    t.deepEqual(all.slice(0, load.length - 1), load.slice(0, -1), 'the command loads the model as DoveModel.load does');
    t.log(`load: ${load.length - 1} calls (${load.slice(0, -1).join(', ')}); after load: ${afterLoad.length} calls (${afterLoad.join(', ')})`);
    t.true(afterLoad.length - 1 <= 8, `at most 8 calls after the load, not counting the final module.dispose: ${afterLoad.join(', ')}`);
    t.is(afterLoad.at(-1), 'module.dispose');
  } finally {
    tmp.cleanup();
  }
});

maybe(title('sweep decodes one encoding at every length as the per-length decodes did, bit for bit'), async (t) => {
  const tmp = tempDir('sweep-exact');
  const reconstructor = await Reconstructor.load(TINY_DOVE, { optimize: false });
  try {
    const model = reconstructor.model;
    const image = join(tmp.dir, 'in.png');
    writeFileSync(image, await pngOf(48, 48, 3));
    const lengths = [1, 3, 7, model.maxTokens];
    const result = await reconstructor.sweep(image, lengths);
    const s = model.imageSize;
    const pixels = await loadImage(image, { size: s });
    const input = Tensor.fromArray(pixels, [1, s, s, 3], 'uint8');
    const enc = await model.encodePixels(input, 'auto', model.maxTokens, model.meta.eosThreshold);
    try {
      const auto = Number((enc.lengths.data() as BigInt64Array)[0]);
      t.is(result.auto.length, auto);
      t.deepEqual(result.eosProbabilities, Float32Array.from(enc.eosProbabilities.data() as Float32Array));
      // The earlier sweep: the code copied into JS once per length, then one batched decode.
      const all = [...lengths, auto];
      const one = enc.tokens.data() as Float32Array;
      const repeated = new Float32Array(all.length * one.length);
      all.forEach((_, i) => repeated.set(one, i * one.length));
      const tokens = Tensor.fromArray(repeated, [all.length, model.maxTokens, model.tokenDim], 'float32');
      const lens = Tensor.fromArray(BigInt64Array.from(all, (l) => BigInt(l)), [all.length], 'int64');
      const before = await model.decodePixels(tokens, lens);
      const frame = s * s * 3;
      const old = before.data() as Uint8Array;
      const images = [...result.reconstructions.map((r) => r.image), result.auto.image];
      images.forEach((img, i) => t.deepEqual(img.data, old.subarray(i * frame, (i + 1) * frame), `length ${all[i]}`));
      Tensor.disposeAll([tokens, lens, before]);
      // Each length decoded on its own (batch of one) gives the same bytes too.
      for (const [i, length] of all.entries()) {
        const l = Tensor.fromArray(BigInt64Array.of(BigInt(length)), [1], 'int64');
        const single = await model.decodePixels(enc.tokens, l);
        t.deepEqual(images[i]!.data, single.data() as Uint8Array, `length ${length} alone`);
        Tensor.disposeAll([l, single]);
      }
    } finally {
      Tensor.disposeAll([input, enc.tokens, enc.lengths, enc.eosProbabilities]);
    }
  } finally {
    reconstructor.dispose();
    tmp.cleanup();
  }
});

maybe(title('tensorExpand0, tensorsInfo and tensorsDispose check their arguments'), (t) => {
  const b: NativeBinding = binding();
  const one = Tensor.fromArray(new Float32Array([1, 2, 3]), [1, 3], 'float32');
  const wide = one.expand0(4);
  t.deepEqual(wide.shape, [4, 3]);
  t.is(wide.dataAddress(), one.dataAddress(), 'a view over the same memory');
  t.deepEqual(Array.from(wide.contiguous().data() as Float32Array), [1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3]);
  t.throws(() => wide.expand0(2), { code: 'SHAPE_MISMATCH' });
  t.throws(() => one.expand0(0), { code: 'INVALID_ARGUMENT', message: /between 1 and 65536 for n but received 0/ });
  const [info] = Tensor.describe([one], [true]);
  t.deepEqual({ dtype: info!.dtype, shape: info!.shape, data: Array.from(info!.data as Float32Array) }, { dtype: 'float32', shape: [1, 3], data: [1, 2, 3] });
  t.is(Tensor.describe([one], [false])[0]!.data, undefined);
  t.throws(() => b.tensorsInfo([one.native, {} as never], [false, false]), { code: 'INVALID_ARGUMENT', message: /index 1 of tensorsInfo/ });
  t.throws(() => b.tensorsInfo([one.native], []), { code: 'INVALID_ARGUMENT' });
  Tensor.disposeAll([one, wide, one]);
  t.true(one.disposed && wide.disposed);
  t.throws(() => Tensor.describe([one], [false]), { code: 'DISPOSED' });
});
