// The compiled inference path through the public API: the Tokenizer and Reconstructor use the
// AOTInductor package beside a model when it was compiled from that model's weights, give the
// TorchScript results within float32 rounding, and fall back to TorchScript otherwise.
// Fixtures: python/dove_fixtures/compiled.py (test/fixtures/generated/compiled).
import test, { type ExecutionContext } from 'ava';
import { copyFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DoveError } from '../../lib/base/errors';
import { Reconstructor } from '../../lib/model/reconstructor';
import type { NativeCompiledPackage } from '../../binding';
import { Tensor } from '../../lib/core/tensor';
import { Tokenizer, type ResolvedTokenizeOptions, type TokenBatch } from '../../lib/model/tokenizer';
import { FIXTURES, tempDir } from '../api/helpers';
import { maxAbsDiff } from '../native/helpers';

const DIR = join(FIXTURES, 'compiled');
const MICRO = join(DIR, 'micro.pt');

function checkFixtures(): void {
  const file = join(DIR, 'compiled.json');
  if (!existsSync(file)) throw new Error(`${file} is missing: run scripts/setup (its fixture step compiles the package)`);
  const error = (JSON.parse(readFileSync(file, 'utf8')) as { error: string | null }).error;
  if (error !== null) throw new Error(`the fixture step could not compile the micro package:\n${error}`);
}

/** Seeded model-sized pixels for `count` images. */
function pixels(size: number, count: number): Uint8Array {
  let s = 12345;
  return Uint8Array.from({ length: count * size * size * 3 }, () => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return s >>> 24;
  });
}

/** A threshold in the widest gap between the model's own EOS probabilities, so lengths cannot flip on rounding. */
function safeThreshold(batch: TokenBatch): number {
  const p = [...(batch.eosProbabilities.data() as Float32Array)].sort((a, b) => a - b);
  let best = 0;
  let at = 0.5;
  for (let i = Math.floor(p.length / 2); i + 1 < p.length; i++) {
    if (p[i + 1]! - p[i]! > best) {
      best = p[i + 1]! - p[i]!;
      at = (p[i + 1]! + p[i]!) / 2;
    }
  }
  return at;
}

// One model loaded both ways for the tests below (a load costs seconds: weights hashed, package opened).
let compiled: Tokenizer;
let scripted: Tokenizer;
test.before(async () => {
  checkFixtures();
  compiled = await Tokenizer.load(MICRO, { trustModel: true });
  scripted = await Tokenizer.load(MICRO, { compiled: false, trustModel: true });
});
test.after.always(() => {
  compiled?.dispose();
  scripted?.dispose();
});

test.serial('the package beside a model compiled from its weights is used; TorchScript only when asked', async (t) => {
  t.not(compiled.model.compiled, null, compiled.model.compiledNote);
  t.regex(compiled.model.compiledNote, /^in use: .*micro\.aoti\.pt2$/);
  t.is(scripted.model.compiled, null);
  t.regex(scripted.model.compiledNote, /compiled: false/);
  await t.throwsAsync(Tokenizer.load(MICRO, { compiled: 'yes' as never }), { instanceOf: DoveError, message: /Expected boolean or 'always' for compiled but received 'yes'/ });
});

test.serial('an untrusted model runs TorchScript: its package (native code) is not opened', async (t) => {
  const untrusted = await Tokenizer.load(MICRO);
  try {
    t.is(untrusted.model.compiled, null);
    t.regex(untrusted.model.compiledNote, /micro\.aoti\.pt2 not used: a compiled package is native code; load with trustModel: true/);
    t.is(untrusted.model.module.weightsHash, null, 'the weights are not even hashed for a package that will not be opened');
  } finally {
    untrusted.dispose();
  }
});

/** Tokenize and reconstruct through `compiled`'s package equal `scripted`'s TorchScript results within float32 rounding. */
async function checkParity(t: ExecutionContext, compiled: Tokenizer, scripted: Tokenizer): Promise<string[]> {
  const encodes: number[] = [];
  const decodes: number[] = [];
  const ran: string[] = [];
  const c = compiled.model.compiled!;
  // Count the calls that reach the compiled models, so the test fails if everything silently ran TorchScript.
  const encode = c.encode.bind(c);
  const decode = c.decode.bind(c);
  c.encode = async (px: Tensor) => (encodes.push(px.shape[0]!), encode(px));
  c.decode = async (tk: Tensor, l: Tensor) => (decodes.push(tk.shape[1]!), decode(tk, l));
  // And which of the package's models each call ran (a batch-1 model for batches of one where the package has it).
  const holder = c as unknown as { loaded: NativeCompiledPackage };
  const loaded = holder.loaded;
  holder.loaded = new Proxy(loaded, {
    get: (target, key) => {
      if (key === 'run') return async (model: string, inputs: Parameters<NativeCompiledPackage['run']>[1]) => (ran.push(model), target.run(model, inputs));
      const value: unknown = Reflect.get(target, key);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  try {
    const size = compiled.imageSize;
    const k = compiled.maxTokens;
    const px = pixels(size, 3);
    const base: ResolvedTokenizeOptions = { mode: 'fixed', budget: k, threshold: 0.5, queries: undefined };
    const probe = await scripted.tokenizePixels(px, 3, base);
    const threshold = safeThreshold(probe);
    probe.dispose();
    const budget = Math.max(1, Math.floor(k / 3));
    for (const options of [
      { ...base, mode: 'auto', threshold },
      { ...base, mode: 'fixed', budget, threshold },
      { ...base, mode: 'capped', budget, threshold },
    ] as ResolvedTokenizeOptions[]) {
      const a = await compiled.tokenizePixels(px, 3, options);
      const b = await scripted.tokenizePixels(px, 3, options);
      const what = `${options.mode} ${options.budget}`;
      t.deepEqual(a.tokens.shape, b.tokens.shape, what);
      t.true(maxAbsDiff(a.tokens.data() as Float32Array, b.tokens.data() as Float32Array) < 1e-4, `${what}: tokens`);
      t.true(maxAbsDiff(a.eosProbabilities.data() as Float32Array, b.eosProbabilities.data() as Float32Array) < 1e-5, `${what}: p(EOS)`);
      t.deepEqual(a.lengthsArray, b.lengthsArray, `${what}: lengths`);
      const ra = await new Reconstructor(compiled.model).reconstruct(a);
      const rb = await new Reconstructor(scripted.model).reconstruct(b);
      for (let i = 0; i < ra.length; i++) t.true(maxAbsDiff(ra[i]!.data, rb[i]!.data) <= 1, `${what}: image ${i} within one level`);
      a.dispose();
      b.dispose();
    }
    // One image: a batch other than the one the package was traced and its weights packed with (2).
    const one = pixels(size, 1);
    const a = await compiled.tokenizePixels(one, 1, base);
    const b = await scripted.tokenizePixels(one, 1, base);
    t.true(maxAbsDiff(a.tokens.data() as Float32Array, b.tokens.data() as Float32Array) < 1e-4, 'batch 1: tokens');
    const [ra] = await new Reconstructor(compiled.model).reconstruct(a);
    const [rb] = await new Reconstructor(scripted.model).reconstruct(b);
    t.true(maxAbsDiff(ra!.data, rb!.data) <= 1, 'batch 1: image within one level');
    a.dispose();
    b.dispose();
    t.deepEqual(encodes, [3, 3, 3, 1]);
    t.deepEqual(decodes, [k, budget, budget, k], 'the decoder took full and shorter slot counts');
    return ran;
  } finally {
    c.encode = encode;
    c.decode = decode;
    holder.loaded = loaded;
  }
}

test.serial('tokenize and reconstruct through the package equal TorchScript within float32 rounding', async (t) => {
  t.deepEqual(compiled.model.compiled!.models, ['encode', 'decode'], 'micro was compiled without batch-1 models');
  t.deepEqual(await checkParity(t, compiled, scripted), ['encode', 'decode', 'encode', 'decode', 'encode', 'decode', 'encode', 'decode']);
});

test.serial("a VQGAN model's package, whose GroupNorms run through aten, linears and convolutions through oneDNN prepacked, and batch-1 linears through dove::linear, equals TorchScript within float32 rounding", async (t) => {
  const file = join(DIR, 'micro-vqgan.pt');
  const info = JSON.parse(readFileSync(join(DIR, 'compiled.json'), 'utf8')) as {
    atenGroupNorms?: Record<string, number>;
    prepackedLinears?: Record<string, Record<string, number>>;
    packedConvolutions?: Record<string, Record<string, number>>;
    smallLinears?: Record<string, Record<string, number>>;
  };
  const counts = info.atenGroupNorms;
  t.true((counts?.encode ?? 0) > 0 && (counts?.decode ?? 0) > 0, `GroupNorm calls through aten per model: ${JSON.stringify(counts)}`);
  // micro (the parity test above) runs aten's addmm, this one oneDNN's prepacked linears: the runtime runs both kinds.
  const linears = info.prepackedLinears;
  t.true((linears?.['micro-vqgan.pt']?.encode ?? 0) > 0 && (linears?.['micro-vqgan.pt']?.decode ?? 0) > 0, `prepacked linears: ${JSON.stringify(linears)}`);
  t.deepEqual(linears?.['micro.pt'], { encode: 0, decode: 0 });
  // Its convolutions' weights were packed at compile time although the batch is dynamic
  // (aoti_export.py, _conv_weights_packed_for_every_batch), and still give TorchScript's results below.
  const convs = info.packedConvolutions;
  t.true((convs?.['micro-vqgan.pt']?.encode ?? 0) > 0 && (convs?.['micro-vqgan.pt']?.decode ?? 0) > 0, `packed convolutions: ${JSON.stringify(convs)}`);
  t.deepEqual(convs?.['micro.pt'], { encode: 0, decode: 0 });
  // Its batch-1 models call dove::linear (the addon's operator, through the proxy executor); the dynamic-batch ones do not.
  const small = info.smallLinears;
  t.true((small?.['micro-vqgan.pt']?.batch1_encode ?? 0) > 0 && (small?.['micro-vqgan.pt']?.batch1_decode ?? 0) > 0, `dove::linear calls: ${JSON.stringify(small)}`);
  t.is(small?.['micro-vqgan.pt']?.encode, 0);
  t.deepEqual(small?.['micro.pt'], { encode: 0, decode: 0 });
  const viaPackage = await Tokenizer.load(file, { trustModel: true });
  const viaScript = await Tokenizer.load(file, { compiled: false, trustModel: true });
  try {
    t.regex(viaPackage.model.compiledNote, /^in use: .*micro-vqgan\.aoti\.pt2$/);
    t.deepEqual(viaPackage.model.compiled!.models, ['encode', 'decode', 'batch1_encode', 'batch1_decode']);
    const ran = await checkParity(t, viaPackage, viaScript);
    t.deepEqual(ran, ['encode', 'decode', 'encode', 'decode', 'encode', 'decode', 'batch1_encode', 'batch1_decode']);
  } finally {
    viaPackage.dispose();
    viaScript.dispose();
  }
});

test.serial('arguments the compiled decoder cannot check go to TorchScript and fail the same way', async (t) => {
  const k = compiled.maxTokens;
  const d = compiled.tokenDim;
  const tokens = Tensor.fromArray(new Float32Array(2 * k * d), [2, k, d]);
  for (const bad of [[1n, BigInt(k + 1)], [-1n, 1n]]) {
    const lengths = Tensor.fromArray(new BigInt64Array(bad), [2], 'int64');
    t.false(compiled.model.compiled!.decodes(tokens, lengths));
    // DoveModel level: the Reconstructor refuses such lengths itself before either path runs (below).
    const a = await t.throwsAsync(compiled.model.decodePixels(tokens, lengths), { instanceOf: DoveError });
    const b = await t.throwsAsync(scripted.model.decodePixels(tokens, lengths), { instanceOf: DoveError });
    t.is(a?.code, b?.code);
    t.is(a?.message, b?.message);
    t.regex(a?.message ?? '', /Expected lengths between 0 and/);
    const viaApi = await t.throwsAsync(new Reconstructor(compiled.model).decode(tokens, lengths), { instanceOf: DoveError });
    t.is(viaApi?.code, 'SHAPE_MISMATCH');
    t.regex(viaApi?.message ?? '', /decode: length -?\d+ for image \d, expected 0\.\./);
  }
  // float64 tokens (DoveModel level; the Reconstructor takes float32 only): TorchScript converts them;
  // the compiled graph takes float32 only, so they go there.
  const wide = Tensor.fromArray(new Float64Array(2 * k * d), [2, k, d], 'float64');
  const lengths = Tensor.fromArray(new BigInt64Array([1n, 2n]), [2], 'int64');
  t.false(compiled.model.compiled!.decodes(wide, lengths));
  const out = await compiled.model.decodePixels(wide, lengths);
  t.deepEqual(out.shape, [2, compiled.imageSize, compiled.imageSize, 3]);
  out.dispose();
});

test.serial('a package measured slower than TorchScript where it was compiled runs only with compiled: always', async (t) => {
  const slower = join(DIR, 'slower.pt');
  const preferred = await Tokenizer.load(slower, { trustModel: true });
  try {
    t.is(preferred.model.compiled, null);
    t.regex(preferred.model.compiledNote, /slower\.aoti\.pt2 not used: slower than the TorchScript methods where it was compiled \(batch-1 encode: compiled 9\.0 ms, torchscript 6\.0 ms;.*\); compiled: 'always' runs it anyway/);
    const out = await preferred.tokenizePixels(pixels(preferred.imageSize, 1), 1, { mode: 'auto', budget: preferred.maxTokens, threshold: 0.5, queries: undefined });
    t.is(out.size, 1, 'TorchScript serves the model');
    out.dispose();
  } finally {
    preferred.dispose();
  }
  const forced = await Tokenizer.load(slower, { trustModel: true, compiled: 'always' });
  try {
    t.not(forced.model.compiled, null, forced.model.compiledNote);
    t.regex(forced.model.compiledNote, /^in use: .*slower\.aoti\.pt2$/);
  } finally {
    forced.dispose();
  }
});

test.serial("a package whose dove.batch_one names another method, or a batch-1 model it lacks, is not used", async (t) => {
  for (const [stem, why] of [
    ['bad-batch-one', /bad-batch-one\.aoti\.pt2 not used: its dove\.batch_one names methods other than encode and decode/],
    ['missing-batch-one', /missing-batch-one\.aoti\.pt2 not used: .*batch1_decode/],
  ] as const) {
    const tok = await Tokenizer.load(join(DIR, `${stem}.pt`), { trustModel: true });
    try {
      t.is(tok.model.compiled, null, stem);
      t.regex(tok.model.compiledNote, why);
    } finally {
      tok.dispose();
    }
  }
});

test.serial('a package compiled from other weights, or for another device, is not used', async (t) => {
  const other = await Tokenizer.load(join(DIR, 'other-weights.pt'), { trustModel: true });
  try {
    t.is(other.model.compiled, null);
    t.regex(other.model.compiledNote, /compiled from other weights/);
    const out = await other.tokenizePixels(pixels(other.imageSize, 1), 1, { mode: 'auto', budget: other.maxTokens, threshold: 0.5, queries: undefined });
    t.is(out.size, 1, 'TorchScript still serves the model');
    out.dispose();
  } finally {
    other.dispose();
  }
  const { dir, cleanup } = tempDir('compiled');
  try {
    copyFileSync(MICRO, join(dir, 'm.pt'));
    copyFileSync(join(DIR, 'wrong-device.aoti.pt2'), join(dir, 'm.aoti.pt2'));
    const m = await Tokenizer.load(join(dir, 'm.pt'), { trustModel: true });
    t.is(m.model.compiled, null);
    t.regex(m.model.compiledNote, /not used: .*compiled for cuda/);
    m.dispose();
    copyFileSync(MICRO, join(dir, 'alone.pt'));
    const alone = await Tokenizer.load(join(dir, 'alone.pt'), { trustModel: true });
    t.is(alone.model.compiled, null);
    t.regex(alone.model.compiledNote, /^no compiled package/);
    alone.dispose();
  } finally {
    cleanup();
  }
});
