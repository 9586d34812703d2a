// How this checkout's addon meets libtorch: the ELF facts the loader reads, a CPU process that maps
// no CUDA library (the CUDA stand-ins take the names libtorch_cpu.so asks for), libtorch's CUDA half
// loaded only when a CUDA device is asked for, and the refusal, with its reason, when libtorch had
// already settled on "no CUDA" in the process. Each case runs in a fresh node process: loading
// libraries cannot be undone.
import test from 'ava';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { CUDA_LIBRARY_FILE } from '../../lib/core/cuda-libtorch';
import { readElfDynamic } from '../../lib/core/elf';
import { LIBTORCH_VERSION, STAND_IN_FOLDER, libtorchBuild, runpathLibtorch } from '../../lib/core/libtorch-preload';
import { ROOT } from './helpers';

const ADDON = process.env.DOVE_ADDON ?? join(ROOT, 'build', 'Release', 'dove.node');
const PREBUILD_LINK = join(ROOT, 'build', 'Release', 'prebuild', 'dove.node');
const LIBTORCH_DIR = runpathLibtorch(ADDON);
const CUDA_LIBTORCH = LIBTORCH_DIR !== null && existsSync(join(LIBTORCH_DIR, 'libtorch_cuda.so'));

interface Probe {
  maps: string[];
  [key: string]: unknown;
}

/** Runs `body` (JS with `dove` = dist/lib/index.js and an async context) in a fresh node; returns its JSON plus the mapped files. */
function probe(body: string): Promise<Probe> {
  const dir = mkdtempSync(join(tmpdir(), 'dove-load-'));
  const script = join(dir, 'probe.js');
  writeFileSync(
    script,
    `const fs = require('node:fs');
const dove = require(${JSON.stringify(join(ROOT, 'dist', 'lib', 'index.js'))});
const cuda = require(${JSON.stringify(join(ROOT, 'dist', 'lib', 'core', 'cuda-libtorch.js'))});
const native = require(${JSON.stringify(join(ROOT, 'dist', 'lib', 'core', 'native.js'))});
const maps = () => [...new Set(fs.readFileSync('/proc/self/maps', 'utf8').split('\\n').map((l) => l.split(/\\s+/)[5]).filter((p) => p && p.startsWith('/')))];
(async () => { const out = await (async () => { ${body} })(); console.log(JSON.stringify(out)); })()
  .catch((e) => { console.error(e); process.exit(1); });
`,
  );
  return new Promise((done, fail) => {
    execFile(process.execPath, [script], { timeout: 240_000, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      rmSync(dir, { recursive: true, force: true });
      if (error !== null) return fail(new Error(`${error.message}\n${stderr}`));
      done(JSON.parse(stdout) as Probe);
    });
  });
}

test('the ELF reader sees the local build RUNPATH libtorch, no RUNPATH in the prebuild link, and the stand-in SONAMEs', (t) => {
  const own = readElfDynamic(ADDON);
  t.true(own.needed.includes('libtorch_cpu.so') && own.needed.includes('libc10.so'), own.needed.join(', '));
  t.false(own.needed.some((n) => /cuda|libtorch\.so$/.test(n)), `the addon links no CUDA library and not libtorch.so: ${own.needed.join(', ')}`);
  t.not(LIBTORCH_DIR, null);
  t.true(own.searchPath.includes(LIBTORCH_DIR ?? ''));
  if (existsSync(PREBUILD_LINK)) t.deepEqual(readElfDynamic(PREBUILD_LINK).searchPath, []);
  for (const stub of ['libcudart.so.13', 'libcupti.so.13']) t.is(readElfDynamic(join(dirname(ADDON), STAND_IN_FOLDER, stub)).soname, stub);
  t.throws(() => readElfDynamic(join(ROOT, 'package.json')), { message: /not an ELF file/ });
  const build = libtorchBuild(LIBTORCH_DIR ?? '');
  t.is(build.version, LIBTORCH_VERSION);
});

test('loading the addon and a model on the CPU maps no CUDA library; only the stand-ins carry CUDA names', async (t) => {
  const out = await probe(`
    const rss = () => Number(/VmRSS:\\s+(\\d+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'))[1]) / 1024;
    const tokenizer = await dove.Tokenizer.load();
    const afterLoad = rss();
    const tokens = await tokenizer.tokenize({ data: new Uint8Array(64 * 64 * 3).fill(90), width: 64, height: 64, channels: 3 }, { mode: 'fixed', maxTokens: 4 });
    tokenizer.dispose();
    return { maps: maps(), standIns: native.addonLoad().standIns, cuda: dove.versions().cuda, length: tokens.length, rssMiB: afterLoad };`);
  const standIns = out.standIns as string[];
  t.is(out.length, 4);
  t.false(out.cuda);
  const cudaNamed = out.maps.filter((p) => CUDA_LIBRARY_FILE.test(p));
  t.deepEqual(cudaNamed.filter((p) => !standIns.includes(p)), [], 'a real CUDA library was mapped');
  for (const p of standIns) t.is(basename(dirname(p)), STAND_IN_FOLDER);
  t.log(`RSS after Tokenizer.load(): ${(out.rssMiB as number).toFixed(0)} MiB; CUDA-named files mapped: ${cudaNamed.map((p) => basename(p)).join(', ') || 'none'} (stand-ins)`);
});

const withCuda = CUDA_LIBTORCH ? test : test.skip;
const note = CUDA_LIBTORCH ? '' : ` (skipped: the build's libtorch ${LIBTORCH_DIR ?? '?'} has no libtorch_cuda.so)`;

withCuda(`asking for devices first loads libtorch_cuda.so and the real CUDA runtime from the build's libtorch${note}`, async (t) => {
  const out = await probe(`
    const list = dove.devices();
    const state = cuda.loadCudaLibtorch();
    return { maps: maps(), list, loaded: state.loaded, runtime: state.runtime, versions: dove.versions() };`);
  t.true(out.loaded as boolean);
  t.true(out.maps.includes(join(LIBTORCH_DIR ?? '', 'libtorch_cuda.so')));
  t.true((out.versions as { cuda: boolean }).cuda);
  const runtime = out.runtime as string[];
  t.deepEqual(runtime.map((p) => basename(p)).sort(), ['libcudart.so.13', 'libcupti.so.13']);
  for (const p of runtime) t.true(out.maps.includes(p), `${p} not mapped`);
  t.is((out.list as string[])[0], 'cpu');
});

withCuda(`a CUDA device asked for after libtorch ran a CPU convolution is refused with the reason${note}`, async (t) => {
  const out = await probe(`
    const tokenizer = await dove.Tokenizer.load();
    await tokenizer.tokenize({ data: new Uint8Array(64 * 64 * 3).fill(90), width: 64, height: 64, channels: 3 }, { mode: 'fixed', maxTokens: 4 });
    tokenizer.dispose();
    try { await dove.Tokenizer.load(undefined, { device: 'cuda' }); return { maps: maps(), code: null }; }
    catch (e) { return { maps: maps(), code: e.code, message: e.message }; }`);
  t.is(out.code, 'DEVICE_UNAVAILABLE');
  t.regex(out.message as string, /libtorch had already looked up its CUDA support in this process/);
  t.regex(out.message as string, /ask for the CUDA device before other libtorch work/);
});
