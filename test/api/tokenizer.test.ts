import test from 'ava';
import { join } from 'node:path';
import sharp from 'sharp';
import { DoveError } from '../../lib/base/errors';
import { loadImage } from '../../lib/io/images';
import { DoveModel } from '../../lib/model/model-file';
import { Reconstructor } from '../../lib/model/reconstructor';
import { Tokenizer, TokenBatch } from '../../lib/model/tokenizer';
import { API_FIXTURES, maxAbsDiff, pngOf, tempDir, testPattern, TINY_CONFIG, TINY_DOVE, TINY_QDOVE } from './helpers';

let tokenizer: Tokenizer;
let reconstructor: Reconstructor;
const images: Buffer[] = [];

test.before(async () => {
  tokenizer = await Tokenizer.load(TINY_DOVE);
  reconstructor = new Reconstructor(tokenizer.model);
  for (let i = 0; i < 3; i++) images.push(await pngOf(80 + 16 * i, 64 + 8 * i, i));
});
test.after.always(() => tokenizer?.dispose());

test('model metadata comes from dove.json', (t) => {
  t.is(tokenizer.imageSize, TINY_CONFIG.imageSize);
  t.is(tokenizer.maxTokens, TINY_CONFIG.maxTokens);
  t.is(tokenizer.tokenDim, TINY_CONFIG.tokenDim);
  t.false(tokenizer.model.isQDove);
});

test('fixed mode gives exactly K tokens, capped at most K, auto within [1, max]', async (t) => {
  for (const k of [1, 8, 17]) {
    const fixed = await tokenizer.tokenize(images[0]!, { mode: 'fixed', maxTokens: k });
    t.is(fixed.length, k);
    t.is(fixed.tokens.length, k * tokenizer.tokenDim);
    t.is(fixed.eosProbabilities.length, k, 'one EOS probability per slot run');
    const capped = await tokenizer.tokenize(images[0]!, { mode: 'capped', maxTokens: k });
    t.true(capped.length >= 1 && capped.length <= k);
  }
  const auto = await tokenizer.tokenize(images[1]!);
  t.true(auto.length >= 1 && auto.length <= 64);
  t.is(auto.eosProbabilities.length, 64);
  for (const p of auto.eosProbabilities) t.true(p >= 0 && p <= 1);
  // Any p(EOS) beats a tiny threshold: auto stops at the first slot.
  const low = await tokenizer.tokenize(images[1]!, { threshold: 1e-6 });
  t.is(low.length, 1, 'with a tiny threshold the first slot already ends the sequence');
  const capped = await tokenizer.tokenize(images[1]!, { mode: 'capped', maxTokens: 5, threshold: 1e-6 });
  t.is(capped.length, 1);
});

test('a batch equals the same images one by one', async (t) => {
  const batch = await tokenizer.tokenize(images, { mode: 'fixed', maxTokens: 12 });
  t.true(batch instanceof TokenBatch);
  t.deepEqual(batch.tokens.shape, [3, 12, TINY_CONFIG.tokenDim]);
  t.deepEqual(batch.lengthsArray, [12, 12, 12]);
  for (const [i, img] of images.entries()) {
    const one = await tokenizer.tokenize(img, { mode: 'fixed', maxTokens: 12 });
    t.is(batch.items[i]!.length, one.length);
    t.true(maxAbsDiff(batch.items[i]!.tokens, one.tokens) < 1e-4, `image ${i}`);
  }
  const recon = await reconstructor.reconstruct(batch);
  t.is(recon.length, 3);
  for (const [i, item] of batch.items.entries()) {
    const one = await reconstructor.reconstruct(item);
    t.is(one.width, 64);
    t.true(maxAbsDiff(recon[i]!.data, one.data) <= 1, `reconstruction ${i}`);
  }
  batch.dispose();
});

test('item tokens are views over the batch tensor, not copies', async (t) => {
  const batch = await tokenizer.tokenize(images.slice(0, 2), { mode: 'fixed', maxTokens: 4 });
  const all = batch.tokens.data() as Float32Array;
  // A write through the tensor's memory shows in the item's view, and the other way round.
  all[4 * TINY_CONFIG.tokenDim + 5] = 1234.5;
  t.is(batch.items[1]!.tokens[5], 1234.5);
  batch.items[0]!.tokens[7] = -42;
  t.is((batch.tokens.data() as Float32Array)[7], -42);
  batch.dispose();
});

test('inputs: path, Buffer, sharp instance and raw pixels give the same tokens', async (t) => {
  const { dir, cleanup } = tempDir('tokin');
  t.teardown(cleanup);
  const raw = testPattern(64, 64, 5);
  const png = await sharp(raw, { raw: { width: 64, height: 64, channels: 3 } }).png().toBuffer();
  const path = join(dir, 'x.png');
  await sharp(png).toFile(path);
  const opts = { mode: 'fixed' as const, maxTokens: 6 };
  const ref = await tokenizer.tokenize({ data: raw, width: 64, height: 64, channels: 3 }, opts);
  for (const input of [path, png, sharp(png)]) {
    const got = await tokenizer.tokenize(input, opts);
    t.true(maxAbsDiff(got.tokens, ref.tokens) < 1e-5);
  }
});

test('sweep reconstructs at each length plus the EOS choice, from one encode', async (t) => {
  const result = await reconstructor.sweep(images[2]!, [1, 4, 64]);
  t.deepEqual(result.reconstructions.map((r) => r.length), [1, 4, 64]);
  t.true(result.auto.length >= 1 && result.auto.length <= 64);
  t.is(result.eosProbabilities.length, 64);
  t.deepEqual(Buffer.from(result.input.data), await loadImage(images[2]!, { size: 64 }));
  // Each column equals reconstructing the tokens of that length directly (causal prefix property),
  // and the EOS column equals reconstructing what auto mode returns for the same image.
  for (const [i, length] of [1, 4, 64].entries()) {
    const direct = await reconstructor.reconstruct(await tokenizer.tokenize(images[2]!, { mode: 'fixed', maxTokens: length }));
    t.true(maxAbsDiff(direct.data, result.reconstructions[i]!.image.data) <= 1, `${length} tokens`);
  }
  const auto = await tokenizer.tokenize(images[2]!);
  t.is(result.auto.length, auto.length);
  t.true(maxAbsDiff((await reconstructor.reconstruct(auto)).data, result.auto.image.data) <= 1, 'EOS column');
  const png = await result.auto.image.toPng();
  t.is((await sharp(png).metadata()).width, 64);
  await t.throwsAsync(reconstructor.sweep(images[0]!, [0]), { message: 'Expected integer between 1 and 64 for lengths but received 0' });
});

test('image helpers write PNG, JPEG and WebP', async (t) => {
  const { dir, cleanup } = tempDir('imgout');
  t.teardown(cleanup);
  const img = await reconstructor.reconstruct(await tokenizer.tokenize(images[0]!, { mode: 'fixed', maxTokens: 2 }));
  for (const ext of ['png', 'jpg', 'webp']) {
    await img.toFile(join(dir, `o.${ext}`));
    const meta = await sharp(join(dir, `o.${ext}`)).metadata();
    t.is(meta.format as string, ext === 'jpg' ? 'jpeg' : ext);
    t.is(meta.width, 64);
  }
  await t.throwsAsync(img.toFile(join(dir, 'o.bmp')), { instanceOf: DoveError, message: /Expected a \.png, \.jpg, \.jpeg or \.webp output path/ });
});

test('bad options and inputs are DoveErrors naming the problem', async (t) => {
  await t.throwsAsync(tokenizer.tokenize(images[0]!, { mode: 'fixed', maxTokens: 0 }), { instanceOf: DoveError, message: 'Expected integer between 1 and 64 for maxTokens but received 0' });
  await t.throwsAsync(tokenizer.tokenize(images[0]!, { maxTokens: 65 }), { message: 'Expected integer between 1 and 64 for maxTokens but received 65' });
  await t.throwsAsync(tokenizer.tokenize(images[0]!, { threshold: 1 }), { message: /Expected number between 0 and 1 \(exclusive\) for threshold but received 1/ });
  await t.throwsAsync(tokenizer.tokenize(images[0]!, { mode: 'sometimes' as 'auto' }), { message: 'Expected one of auto, fixed, capped for mode but received sometimes' });
  await t.throwsAsync(tokenizer.tokenize(images[0]!, { query: 'a cat' }), { instanceOf: DoveError, message: /the query option needs a Q-DOVE model; .* is a DOVE export/ });
  await t.throwsAsync(tokenizer.tokenize([]), { message: 'Expected at least one image but received an empty list' });
  const err = await t.throwsAsync(tokenizer.tokenize(['/nonexistent/x.png']), { instanceOf: DoveError });
  t.is(err?.code, 'FILE_NOT_FOUND');
  t.regex(err?.message ?? '', /\/nonexistent\/x\.png: file not found/);
  await t.throwsAsync(reconstructor.reconstruct({ length: 3, dim: TINY_CONFIG.tokenDim * 2, tokens: new Float32Array(10), eosProbabilities: new Float32Array(3) }), { instanceOf: DoveError, message: new RegExp(`Expected ${TINY_CONFIG.tokenDim} floats per token`) });
});

test('checkTokens refuses what reconstruct would, without running the model, and accepts good tokens', async (t) => {
  const dim = tokenizer.tokenDim;
  const max = tokenizer.maxTokens;
  const good = await tokenizer.tokenize(images[0]!, { mode: 'fixed', maxTokens: 3 });
  t.notThrows(() => reconstructor.checkTokens([good, good]));
  const cases = [
    { length: 3, dim, tokens: new Float32Array(10), eosProbabilities: new Float32Array(3) },
    { length: 0, dim, tokens: new Float32Array(0), eosProbabilities: new Float32Array(0) },
    { length: max + 1, dim, tokens: new Float32Array((max + 1) * dim), eosProbabilities: new Float32Array(0) },
  ];
  for (const bad of cases) {
    const checked = t.throws(() => reconstructor.checkTokens([good, bad]), { instanceOf: DoveError });
    const ran = await t.throwsAsync(reconstructor.reconstruct([good, bad]), { instanceOf: DoveError });
    t.is(checked?.code, 'SHAPE_MISMATCH');
    t.is(checked?.message, ran?.message, 'the same error reconstruct gives');
    t.regex(checked?.message ?? '', /at index 1/);
  }
  t.is(t.throws(() => reconstructor.checkTokens([{} as never]), { instanceOf: DoveError })?.code, 'INVALID_ARGUMENT');
});

test('model files that are not DOVE exports are rejected with the reason', async (t) => {
  const cases: [string, string, RegExp][] = [
    ['not_dove_no_json.pt', 'NOT_DOVE_EXPORT', /missing extra file dove\.json/],
    ['not_dove_version.pt', 'FORMAT_VERSION', /formatVersion 2, this runtime reads version 1/],
    ['not_dove_methods.pt', 'NOT_DOVE_EXPORT', /missing methods decode, select_lengths, encode_pixels, decode_pixels/],
  ];
  for (const [file, code, message] of cases) {
    const err = await t.throwsAsync(DoveModel.load(join(API_FIXTURES, file)), { instanceOf: DoveError });
    t.is(err?.code, code, file);
    t.regex(err?.message ?? '', message);
    t.true(err?.message.includes(file));
  }
  const missing = await t.throwsAsync(Tokenizer.load(join(API_FIXTURES, 'nope.pt')), { instanceOf: DoveError });
  t.is(missing?.code, 'FILE_NOT_FOUND');
  const notTs = await t.throwsAsync(Tokenizer.load(join(API_FIXTURES, 'bpe_neox.json')), { instanceOf: DoveError });
  t.is(notTs?.code, 'NOT_TORCHSCRIPT');
});

test('Q-DOVE: queries are tokenised with the embedded tokenizer and change the tokens', async (t) => {
  const q = await Tokenizer.load(TINY_QDOVE);
  t.teardown(() => q.dispose());
  t.true(q.model.isQDove);
  t.not(q.model.queryTokenizer, null);
  const opts = { mode: 'fixed' as const, maxTokens: 4 };
  const a = await q.tokenize(images[0]!, { ...opts, query: 'what colour is the cat?' });
  const b = await q.tokenize(images[0]!, { ...opts, query: 'how many people are there' });
  t.is(a.length, 4);
  t.true(maxAbsDiff(a.tokens, b.tokens) > 1e-6, 'a different query gives different tokens');
  const batch = await q.tokenize([images[0]!, images[0]!], { ...opts, query: ['what colour is the cat?', 'how many people are there'] });
  t.true(maxAbsDiff(batch.items[0]!.tokens, a.tokens) < 1e-4);
  t.true(maxAbsDiff(batch.items[1]!.tokens, b.tokens) < 1e-4, 'queries of different token counts equal their one-by-one result');
  t.not(q.model.queryIds('what colour is the cat?').length, q.model.queryIds('how many people are there').length);
  const ids = q.model.encodeQueries(['hello world', '']);
  t.deepEqual(ids.ids.shape[0], 2);
  t.deepEqual(Array.from(ids.mask.data() as BigInt64Array).slice(ids.ids.shape[1]!), new Array(ids.ids.shape[1]!).fill(0n));
  await t.throwsAsync(q.tokenize(images.slice(0, 2), { query: ['only one'] }), { message: 'Expected a string or 2 strings for query but received 1 values' });
});
