// A small workload for leak checkers (scripts/asan: LeakSanitizer, or valgrind --leak-check): every
// native path a user reaches, several rounds, success and failure alike, then everything disposed.
// It talks to the raw binding at DOVE_ADDON (the sanitizer build) so the checked code is exactly
// native/*.cpp.   node dist/bench/memory/leak-driver.js <tiny.pt> [rounds]
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { IValue, NativeBinding } from '../../binding';
import { disposeAll, loadBinding, seededFloats, tensorAt } from '../lib/addon';

// Neither is in the TypeScript lib this project compiles against (ES2022, no DOM): typed here.
const ResizableArrayBuffer = ArrayBuffer as unknown as new (length: number, options: { maxByteLength: number }) => ArrayBuffer;
interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
const WasmMemory = (globalThis as unknown as { WebAssembly: { Memory: new (d: { initial: number; maximum: number }) => WasmMemory } }).WebAssembly.Memory;

const HOSTILE = resolve(__dirname, '..', '..', '..', 'test', 'fixtures', 'generated', 'hostile');

async function expectReject(what: string, p: () => Promise<unknown> | unknown): Promise<void> {
  try {
    await p();
  } catch {
    return; // failures are part of the workload: their error paths must not leak either
  }
  throw new Error(`Expected ${what} to fail`);
}

async function round(b: NativeBinding, pt: string, dir: string, r: number): Promise<void> {
  // Tensors: wrap JS memory, views out, conversions, failures.
  const data = seededFloats(2 * 3 * 64 * 64, r);
  const images = b.tensorFromArray(data, [2, 3, 64, 64], 'float32');
  const view = b.tensorData(images);
  if (view.length !== data.length) throw new Error('data() length mismatch');
  const half = b.tensorTo(images, null, 'float64');
  const c = b.tensorClone(images);
  const s = b.tensorContiguous(b.tensorSlice0(images, 0, 1));
  const z = b.zeros([4, 4], 'int64', 'cpu');
  const st = b.stack([z, z]);
  [half, c, s, z, st].forEach((t) => b.tensorDispose(t));
  await expectReject('a shape that does not match the data', () => b.tensorFromArray(data, [3, 3], 'float32'));
  await expectReject('an unknown device', () => b.zeros([1], 'float32', 'cuda:7'));
  await expectReject('a shape that overflows', () => b.tensorFromArray(new Float32Array(4), [4, 5, 5581, 8681, 49477, 384773], 'float32'));
  await expectReject('a shared buffer', () => b.tensorFromArray(new Float32Array(new SharedArrayBuffer(16)), [4], 'float32'));
  await expectReject('a resizable buffer', () => b.tensorFromArray(new Float32Array(new ResizableArrayBuffer(16, { maxByteLength: 32 })), [4], 'float32'));

  // Module: load, run every method, errors, save.
  const mod = await b.loadModule(pt, 'cpu', ['dove.json']);
  const k = 16;
  const enc = await mod.run('encode', [images, k]);
  const lengths = await mod.run('select_lengths', [tensorAt(enc, 1, 'encode'), 'capped', 8, 0.5]);
  const rec = await mod.run('decode', [tensorAt(enc, 0, 'encode'), lengths as IValue]);
  disposeAll(rec);
  disposeAll(lengths);
  disposeAll(enc);
  const px = b.tensorFromArray(new Uint8Array(2 * 64 * 64 * 3).fill(r % 255), [2, 64, 64, 3], 'uint8');
  const ep = await mod.run('encode_pixels', [px, 'auto', 32, 0.5]);
  const dp = await mod.run('decode_pixels', [tensorAt(ep, 0, 'encode_pixels'), tensorAt(ep, 2, 'encode_pixels')]);
  disposeAll(dp);
  disposeAll(ep);
  b.tensorDispose(px);
  // An input detached while its call is queued (WebAssembly memory that grows): the call rejects.
  const memory = new WasmMemory({ initial: 1, maximum: 2 });
  const logits = b.tensorFromArray(new Float32Array(memory.buffer, 0, 16), [1, 16], 'float32');
  const detachedCall = mod.run('select_lengths', [logits, 'auto', 8, 0.5]);
  memory.grow(1);
  await expectReject('a call whose input was detached', () => detachedCall);
  await expectReject('a tensor over a detached buffer', () => b.tensorClone(logits));
  b.tensorDispose(logits);
  await expectReject('a missing method', () => mod.run('no_such_method', []));
  await expectReject('a wrong shape', () => mod.run('encode', [b.zeros([1, 2, 3], 'float32', 'cpu'), k]));
  await expectReject('a wrong argument type', () => mod.run('encode', ['not a tensor', k]));
  mod.namedParameters();
  if (r === 0) await mod.save(join(dir, 'saved.pt'), { 'dove.json': mod.extraFiles['dove.json'] ?? '{}' });

  // Training engine: a few steps, state save/load.
  mod.train(true);
  const engine = b.createTrainEngine(mod, {
    lr: 1e-4, betas: [0.9, 0.95], eps: 1e-8, groups: [{ prefixes: ['vqgan.'], lrScale: 0.1, weightDecay: 0.01 }],
    weightDecay: 0.01, warmupSteps: 1, totalSteps: 10, minLrRatio: 0.1, clipGradNorm: 1, accumulate: 1, autocastBf16: false, seed: r,
  });
  await engine.trainStep([images]);
  await engine.trainStep([images]);
  if (r === 0) {
    await engine.saveState(join(dir, 'state.bin'));
    await engine.loadState(join(dir, 'state.bin'));
  }
  engine.dispose();
  mod.dispose();
  b.tensorDispose(images);

  // Hostile model files (python/dove_fixtures/hostile.py): refused before and after libtorch reads
  // them, and one unsafe file loaded as trusted.
  if (existsSync(HOSTILE)) {
    const manifest = JSON.parse(readFileSync(join(HOSTILE, 'hostile.json'), 'utf8')) as Record<string, { code: string }>;
    for (const [name, { code }] of Object.entries(manifest)) {
      if (code !== '') await expectReject(`${name} (${code})`, () => b.loadModule(join(HOSTILE, name), 'cpu', [], r % 2 === 0));
    }
    const trusted = await b.loadModule(join(HOSTILE, 'manual-seed.pt'), 'cpu', [], false, true);
    trusted.dispose();
  }

  // Loading failures: missing file, not TorchScript.
  await expectReject('a missing file', () => b.loadModule(join(dir, 'missing.pt'), 'cpu', []));
  writeFileSync(join(dir, 'junk.pt'), 'not a zip archive');
  await expectReject('a file that is not TorchScript', () => b.loadModule(join(dir, 'junk.pt'), 'cpu', []));
}

async function main(): Promise<void> {
  const pt = process.argv[2];
  const rounds = Number(process.argv[3] ?? '3');
  if (!pt) throw new Error('usage: leak-driver.js <tiny.pt> [rounds]');
  const b = loadBinding();
  b.setNumThreads(1);
  const dir = mkdtempSync(join(tmpdir(), 'dove-leak-'));
  try {
    for (let r = 0; r < rounds; r++) await round(b, pt, dir, r);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  // Let finalizers of JS-owned tensors run, so anything still held at exit is a real leak.
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc) for (let i = 0; i < 3; i++) { gc(); await new Promise((r) => setImmediate(r)); }
  console.log(`leak-driver: ${rounds} rounds done`);
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? (e.stack ?? e.message) : String(e));
  process.exitCode = 1;
});
