// Runtime facts and settings: devices, threads, seeds, versions, build info, and the loader's
// actionable message when the addon is missing.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DoveError } from '../../lib/base/errors';
import { loadModule } from '../../lib/core/module';
import { buildInfo, devices, getNumThreads, manualSeed, setNumThreads, versions } from '../../lib/core/runtime';
import { Tensor } from '../../lib/core/tensor';
import { CORE_MODEL, maxAbsDiff, parityMeta, ROOT } from './helpers';

test('devices lists cpu first, then cuda:N', (t) => {
  const list = devices();
  t.is(list[0], 'cpu');
  list.slice(1).forEach((d, i) => t.is(d, `cuda:${i}`));
});

test('versions name libtorch 2.11 and the library that was loaded', (t) => {
  const v = versions();
  t.true(v.libtorch.startsWith('2.11'), v.libtorch);
  t.true(v.napi >= 8);
  t.regex(v.libtorchPath, /libtorch_cpu\.so$/);
  t.regex(v.addon, /^\d+\.\d+\.\d+/);
  if (v.cuda) t.regex(v.cudaVersion ?? '', /^\d+\.\d+$/);
  t.regex(buildInfo(), /ATen\/Parallel/);
});

test('setNumThreads applies to work on worker threads and is validated', async (t) => {
  const original = getNumThreads();
  setNumThreads(1);
  t.is(getNumThreads(), 1);
  const module = await loadModule(CORE_MODEL);
  const out = (await module.run('scale', [Tensor.fromArray(new Float32Array([2])), 3])) as Tensor;
  t.is(out.item(), 6);
  setNumThreads(original);
  t.is(getNumThreads(), original);
  for (const bad of [0, -1, 1.5, 5000, Number.NaN]) {
    const error = t.throws(() => setNumThreads(bad), { instanceOf: DoveError });
    t.is(error?.code, 'INVALID_ARGUMENT');
    t.regex(error?.message ?? '', /Expected integer between 1 and 1024 for numThreads/);
  }
  module.dispose();
});

test('manualSeed makes libtorch randomness repeatable and equal to Python\'s', async (t) => {
  const module = await loadModule(CORE_MODEL);
  const draw = async (): Promise<number[]> => [...(((await module.run('noise', [4])) as Tensor).data() as Float32Array)];
  manualSeed(7);
  const first = await draw();
  manualSeed(7);
  t.deepEqual(await draw(), first);
  const python = parityMeta().seed7Rand4;
  t.true(maxAbsDiff(first, python) < 1e-7, `torch.manual_seed(7); torch.rand(4) = ${python.join(', ')}`);
  manualSeed(8);
  t.notDeepEqual(await draw(), first);
  t.is(t.throws(() => manualSeed(-1), { instanceOf: DoveError })?.code, 'INVALID_ARGUMENT');
  module.dispose();
});

test('without a built addon the loader says what it looked for and how to fix it', (t) => {
  // A copy of the compiled lib/ in a package with no build/ and no prebuilds/.
  const dir = mkdtempSync(join(tmpdir(), 'dove-loader-'));
  try {
    mkdirSync(join(dir, 'dist'), { recursive: true });
    cpSync(join(ROOT, 'dist', 'lib'), join(dir, 'dist', 'lib'), { recursive: true });
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'dove-encoder', version: '0.0.0' }));
    cpSync(join(ROOT, 'node_modules', 'node-gyp-build'), join(dir, 'node_modules', 'node-gyp-build'), { recursive: true });
    const script = "try { require('./dist/lib/core/native').binding(); } catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message, dove: e.constructor.name })); }";
    const out = JSON.parse(execFileSync(process.execPath, ['-e', script], { cwd: dir, encoding: 'utf8', env: { ...process.env, DOVE_ADDON: '' } })) as { code: string; message: string; dove: string };
    t.is(out.dove, 'DoveError');
    t.is(out.code, 'ADDON_LOAD_FAILED');
    t.regex(out.message, /looked for: .*build\/Release\/\*\.node -> none/);
    t.regex(out.message, /prebuilds\/linux-x64\/\*\.node -> none|prebuilds\/.*-.*\/\*\.node -> none/);
    t.regex(out.message, /fix: run `npm run setup`/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
