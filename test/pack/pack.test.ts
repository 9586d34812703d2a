// What `npm install dove-encoder` gives a Node user: `npm run pack:all` packs every tarball a release
// publishes (the main package and the libtorch platform package) from this tree, without touching
// its tracked prebuilds/. They are installed, with sharp and node-gyp-build packed from this
// checkout's node_modules, into an empty project: `--prefer-offline` with an empty npm cache and HOME
// (a dependency needed at two versions, e.g. fast-uri 3 under ajv and 4 beside it, can only be given
// once as a tarball: npm fetches the other from the registry, which every machine of this project reaches), and
// a PATH holding only `node` (no compiler, cmake or python). Everything then runs with the setup's
// cache hidden (a tmpfs mounted over it in a private mount namespace): `dove reconstruct`, a
// Tokenizer script (libtorch from the platform package, no CUDA library mapped), two Trainer steps
// on the CPU, `dove doctor`, a strict TypeScript consumer. Then the other places libtorch comes from
// (LIBTORCH, the setup's cache), the message when there is none, and loading libtorch's CUDA half
// into the installed package when a CUDA device is asked for.
import test from 'ava';
import { execFile, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, createReadStream, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { basename, delimiter, dirname, join } from 'node:path';
import sharp from 'sharp';
import { CUDA_LIBRARY_FILE } from '../../lib/core/cuda-libtorch';
import { libtorchCandidates } from '../../lib/core/libtorch-preload';
import { ROOT } from '../support';

const PKG = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { name: string; version: string };
const PLATFORM = `${process.platform}-${process.arch}`;
const PLATFORM_PKG = JSON.parse(readFileSync(join(ROOT, 'npm', `libtorch-${PLATFORM}`, 'package.json'), 'utf8')) as { name: string; version: string };
const PREBUILD = join('prebuilds', PLATFORM, 'node.napi.glibc.node');
const COMPILERS = ['g++', 'gcc', 'cc', 'c++', 'clang', 'clang++', 'make', 'cmake', 'ninja', 'python3', 'python'];
const SETUP_CACHE = process.env.DOVE_CACHE ?? join(homedir(), '.cache', 'dove-encoder');

/** `unshare -m` (as root; `-r` maps an unprivileged user to root in a user namespace) and mount, or why they cannot hide the cache. */
function namespaceSupport(): { prefix: string[] } | { why: string } {
  if (process.platform !== 'linux') return { why: 'mount namespaces are Linux only' };
  const unshare = ['/usr/bin/unshare', '/bin/unshare'].find((p) => existsSync(p));
  const mount = ['/usr/bin/mount', '/bin/mount'].find((p) => existsSync(p));
  if (unshare === undefined || mount === undefined) return { why: 'util-linux unshare/mount not installed' };
  if (!existsSync(SETUP_CACHE)) return { prefix: [] }; // nothing to hide
  const prefix = [unshare, '-m', ...(process.getuid?.() === 0 ? [] : ['-r']), '/bin/sh', '-c', `${mount} -t tmpfs tmpfs "$0" && exec "$@"`, SETUP_CACHE];
  const probe = spawnSync(prefix[0]!, [...prefix.slice(1), '/bin/true'], { encoding: 'utf8' });
  return probe.status === 0 ? { prefix } : { why: `unshare -m cannot mount over ${SETUP_CACHE} here: ${(probe.stderr || probe.error?.message || '').trim()}` };
}
const NAMESPACE = namespaceSupport();
// The setup's torch wheel (its lib/ folder), for the LIBTORCH and setup-cache cases.
const CACHE_TORCH_LIB = libtorchCandidates(ROOT, { DOVE_CACHE: SETUP_CACHE }).find((c) => c.from.startsWith("the setup's cache"))?.dir;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs a command with exactly `env` (nothing inherited). `hidden` (the default): inside a mount
 * namespace where the setup's cache is an empty tmpfs, with DOVE_CACHE pointing at it, so the loader
 * does look there and finds nothing.
 */
function run(file: string, args: string[], cwd: string, env: NodeJS.ProcessEnv, options: { hidden?: boolean; timeoutMs?: number } = {}): Promise<Run> {
  const hidden = options.hidden !== false && 'prefix' in NAMESPACE;
  const argv = [...(hidden && 'prefix' in NAMESPACE ? NAMESPACE.prefix : []), file, ...args];
  return new Promise((done) => {
    execFile(argv[0]!, argv.slice(1), { cwd, env: hidden ? { DOVE_CACHE: SETUP_CACHE, ...env } : env, timeout: options.timeoutMs ?? 300_000, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : 1;
      done({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

/** Runs a command with the test runner's own environment; resolves with its stdout. */
function exec(file: string, args: string[], cwd: string): Promise<string> {
  return new Promise((done, fail) => {
    execFile(file, args, { cwd, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error !== null) fail(new Error(`${file} ${args.join(' ')} failed: ${error.message}\n${String(stderr)}`));
      else done(String(stdout));
    });
  });
}

/** npm's own CLI script, so it can run under the bare PATH through `node` itself. */
function npmCli(): string {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const candidate = join(dir, 'npm');
    if (!dir || !existsSync(candidate)) continue;
    const real = realpathSync(candidate);
    if (real.endsWith('.js')) return real;
    const beside = join(dirname(real), '..', 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js');
    if (existsSync(beside)) return beside;
  }
  throw new Error('npm not found on PATH');
}

function sha256(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

/** sha256 of a large file, streamed. */
function sha256Stream(path: string): Promise<string> {
  return new Promise((done, fail) => {
    const hash = createHash('sha256');
    createReadStream(path).on('error', fail).on('data', (chunk) => hash.update(chunk)).on('end', () => done(hash.digest('hex')));
  });
}

/** sha256 of every file under `dir`, by relative path (the tracked prebuilds/ before and after packing). */
function tree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string): void => {
    for (const name of readdirSync(d)) {
      const path = join(d, name);
      if (statSync(path).isDirectory()) walk(path);
      else out[path.slice(dir.length + 1)] = sha256(path);
    }
  };
  if (existsSync(dir)) walk(dir);
  return out;
}

interface Packed {
  name: string;
  version: string;
  filename: string;
  size: number;
  unpackedSize: number;
  files: { path: string }[];
}

interface Installed {
  work: string;
  project: string;
  pkgDir: string;
  platformDir: string;
  env: NodeJS.ProcessEnv;
  main: Packed;
  platform: Packed;
  prebuildsBefore: Record<string, string>;
  prebuildsAfter: Record<string, string>;
  seconds: { pack: number; install: number };
}

let installed: Installed | undefined;
let setupError: unknown;

// Packing and installing take minutes on a loaded 2-core machine (the platform package is 450 MB
// to compress): this tells AVA's inactivity timeout to wait for the hook.
const SLOW = 30 * 60_000;

test.before(async (t) => {
  t.timeout(SLOW);
  try {
    if (!existsSync(join(ROOT, 'models', 'dove-tiny.pt'))) {
      throw new Error('models/dove-tiny.pt is missing: the package ships the embedded model (bash scripts/train-embedded rebuilds it)');
    }
    const work = mkdtempSync(join(tmpdir(), 'dove-pack-'));
    const tarballs = join(work, 'tarballs');
    const prebuildsBefore = tree(join(ROOT, 'prebuilds'));
    let started = Date.now();
    const packedJson = await exec('bash', ['scripts/pack-all', tarballs], ROOT);
    const pack = (Date.now() - started) / 1000;
    const prebuildsAfter = tree(join(ROOT, 'prebuilds'));
    const packed = JSON.parse(packedJson) as Packed[];
    const main = packed.find((p) => p.name === PKG.name);
    const platform = packed.find((p) => p.name === PLATFORM_PKG.name);
    if (main === undefined || platform === undefined) throw new Error(`pack:all wrote ${packed.map((p) => p.filename).join(', ')}`);

    // The runtime dependencies (sharp, fastify and theirs, node-gyp-build), packed from node_modules, so
    // the install needs no filled npm cache and the registry only for a second version of a package.
    const deps = join(work, 'deps');
    mkdirSync(deps);
    const depDirs = (await exec('npm', ['ls', '--omit=dev', '--all', '--parseable'], ROOT)).trim().split('\n').slice(1);
    await exec('npm', ['pack', '--ignore-scripts', '--silent', '--pack-destination', deps, ...depDirs], ROOT);

    // A bin folder with node alone: no compiler, no cmake, no python can be found through PATH.
    const bin = join(work, 'bin');
    mkdirSync(bin);
    symlinkSync(process.execPath, join(bin, 'node'));
    const home = join(work, 'home');
    mkdirSync(home);
    const env: NodeJS.ProcessEnv = { PATH: bin, HOME: home, TMPDIR: tmpdir(), LANG: 'C.UTF-8', npm_config_cache: join(work, 'npm-cache'), npm_config_update_notifier: 'false' };

    const project = join(work, 'consumer');
    mkdirSync(project);
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'dove-consumer', version: '1.0.0', private: true }));
    started = Date.now();
    const specs = [join(tarballs, main.filename), join(tarballs, platform.filename), ...readdirSync(deps).map((f) => join(deps, f))];
    const npm = await run(process.execPath, [npmCli(), 'install', ...specs, '--prefer-offline', '--no-audit', '--no-fund', '--ignore-scripts', '--loglevel=error'], project, env, { hidden: false, timeoutMs: 600_000 });
    if (npm.code !== 0) throw new Error(`npm install failed (${npm.code}):\n${npm.stderr}`);
    const install = (Date.now() - started) / 1000;
    installed = {
      work, project, env, main, platform, prebuildsBefore, prebuildsAfter, seconds: { pack, install },
      pkgDir: join(project, 'node_modules', PKG.name),
      platformDir: join(project, 'node_modules', PLATFORM_PKG.name),
    };
  } catch (error) {
    setupError = error;
  }
});

test.after.always(() => {
  if (installed) rmSync(installed.work, { recursive: true, force: true });
});

function ready(): Installed {
  if (installed === undefined) throw setupError instanceof Error ? setupError : new Error(String(setupError));
  return installed;
}

test('pack:all writes the main and the platform package from the tree, and leaves the tracked prebuilds/ as they were', (t) => {
  const { main, platform, prebuildsBefore, prebuildsAfter, seconds } = ready();
  t.log(`pack:all ${seconds.pack.toFixed(0)} s, npm install ${seconds.install.toFixed(0)} s`);
  for (const p of [main, platform]) t.log(`${p.filename}: ${(p.size / 1e6).toFixed(1)} MB packed, ${(p.unpackedSize / 1e6).toFixed(1)} MB unpacked`);
  t.is(main.filename, `${PKG.name}-${PKG.version}.tgz`);
  t.is(platform.version, PKG.version, 'the platform package is released with the main package, same version');
  t.true(platform.size < 150e6, `platform package ${platform.size} bytes packed`);
  t.deepEqual(prebuildsAfter, prebuildsBefore);
});

test('the main package carries the prebuilt addon, the embedded model and the compiled API, no tests, and pins the platform package', (t) => {
  const { main, pkgDir } = ready();
  const files = main.files.map((f) => f.path);
  for (const f of [PREBUILD, join('prebuilds', PLATFORM, 'prebuild.json'), 'models/dove-tiny.pt', 'models/README.md', 'dist/lib/index.js', 'dist/lib/index.d.ts', 'dist/lib/cli/main.js', 'assets/sample.jpg', 'binding.d.ts', 'README.md']) {
    t.true(files.includes(f), `${f} missing from the tarball`);
  }
  t.false(files.some((f) => f.startsWith('dist/test/') || f.startsWith('test/')), 'tests leaked into the tarball');
  t.false(existsSync(join(pkgDir, 'build')), 'the installed package must not have a build/ folder');
  const manifest = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')) as { scripts?: Record<string, string>; optionalDependencies?: Record<string, string> };
  for (const hook of ['preinstall', 'install', 'postinstall']) t.false(hook in (manifest.scripts ?? {}), `package.json must not rely on a ${hook} script`);
  t.deepEqual(manifest.optionalDependencies, { [PLATFORM_PKG.name]: PKG.version });
  const record = JSON.parse(readFileSync(join(pkgDir, 'prebuilds', PLATFORM, 'prebuild.json'), 'utf8')) as { sha256: string; libtorch: string; baseline: { glibc: string; glibcxx: string; cxxabi: string } };
  t.is(record.sha256, sha256(join(pkgDir, PREBUILD)));
  t.is(record.libtorch, '2.11.0');
  // scripts/prebuild refuses a binary above this baseline (objdump -T), so its record states it.
  t.deepEqual([record.baseline.glibc, record.baseline.glibcxx, record.baseline.cxxabi], ['2.28', '3.4.22', '1.3.11']);
});

test('the platform package holds the wheel libtorch CPU libraries byte for byte, the CUDA stand-ins and the licences', async (t) => {
  const { platform, platformDir } = ready();
  const files = platform.files.map((f) => f.path).sort();
  t.deepEqual(files.filter((f) => f.startsWith('lib/')), ['lib/cuda-stubs/libcudart.so.13', 'lib/cuda-stubs/libcupti.so.13', 'lib/libc10.so', 'lib/libgomp.so.1', 'lib/libtorch_cpu.so']);
  for (const licence of ['PyTorch-LICENSE.txt', 'PyTorch-NOTICE.txt', 'MKL-Intel-Simplified-Software-License.txt', 'MKL-third-party-programs.txt', 'libgomp-GPL-3.0.txt', 'libgomp-GCC-Runtime-Library-Exception-3.1.txt', 'dove-encoder-MIT.txt']) {
    t.true(files.includes(`licenses/${licence}`), `licenses/${licence} missing`);
  }
  const manifest = JSON.parse(readFileSync(join(platformDir, 'package.json'), 'utf8')) as { os: string[]; cpu: string[]; libc: string[]; scripts?: unknown };
  t.deepEqual([manifest.os, manifest.cpu, manifest.libc], [['linux'], ['x64'], ['glibc']]);
  t.is(manifest.scripts, undefined);
  const versions = JSON.parse(readFileSync(join(platformDir, 'versions.json'), 'utf8')) as { libtorch: string; git: string; sha256: Record<string, string> };
  t.is(versions.libtorch, '2.11.0');
  t.regex(versions.git, /^[0-9a-f]{40}$/);
  for (const [file, hash] of Object.entries(versions.sha256)) t.is(await sha256Stream(join(platformDir, 'lib', file)), hash, `${file} differs from the wheel's RECORD`);
  t.deepEqual(Object.keys(versions.sha256).sort(), ['libc10.so', 'libgomp.so.1', 'libtorch_cpu.so']);
});

test('no compiler, cmake or python is reachable from the PATH the installed package runs with', (t) => {
  const { env } = ready();
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    for (const tool of COMPILERS) t.false(existsSync(join(dir, tool)), `${tool} found in ${dir}`);
  }
});

const isolated = 'prefix' in NAMESPACE ? test : test.skip;
const hiddenNote = 'prefix' in NAMESPACE ? 'with the setup cache hidden' : `(skipped: ${'why' in NAMESPACE ? NAMESPACE.why : ''})`;

isolated(`dove reconstruct runs from the installed package with the embedded model, ${hiddenNote}`, async (t) => {
  t.timeout(SLOW);
  const { project, pkgDir, env } = ready();
  const grid = join(project, 'out', 'grid.png');
  const r = await run(join(project, 'node_modules', '.bin', 'dove'), ['reconstruct', join(pkgDir, 'assets', 'sample.jpg'), '--lengths', '4,16,64', '-o', grid], project, env);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /grid\.png: input \+ lengths 4,16,64 \+ EOS length \d+ \(of 64\)/);
  const meta = await sharp(grid).metadata();
  t.is(meta.format, 'png');
  t.true((meta.width ?? 0) > 5 * 64 && (meta.height ?? 0) >= 64, `unexpected grid size ${meta.width}x${meta.height}`);
});

test('dove serve runs from the installed package: pages and bundles come from the package itself', async (t) => {
  const { project, env, main } = ready();
  const tarballFiles = main.files.map((f) => f.path);
  for (const f of ['dist/web/explorer.html', 'dist/web/explorer.js', 'dist/web/runs.html', 'dist/web/runs.js', 'dist/web/style.css']) t.true(tarballFiles.includes(f), `${f} missing from the tarball`);
  const child = spawn(join(project, 'node_modules', '.bin', 'dove'), ['serve', '--host', '127.0.0.1', '--port', '0'], { cwd: project, env, stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  const url = await new Promise<string>((resolveUrl, reject) => {
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /dove serve: (http:\/\/127\.0\.0\.1:\d+)\//.exec(out);
      if (m !== null) resolveUrl(m[1]!);
    });
    child.stderr.on('data', (c: Buffer) => {
      err += c.toString();
    });
    child.once('exit', (code) => reject(new Error(`dove serve exited with ${code}: ${err}`)));
  });
  const page = await fetch(`${url}/`);
  t.is(page.status, 200);
  const html = await page.text();
  t.regex(html, /DOVE explorer/);
  const bundle = await fetch(`${url}/assets/explorer.js`);
  t.is(bundle.status, 200);
  t.true((await bundle.text()).length > 1000);
  const model = (await (await fetch(`${url}/v1/model`)).json()) as { name: string };
  t.is(model.name, 'dove-tiny.pt');
});

isolated(`a Tokenizer script loads libtorch from the platform package and maps no CUDA library, ${hiddenNote}`, async (t) => {
  t.timeout(SLOW);
  const { project, pkgDir, platformDir, env } = ready();
  const script = join(project, 'tokens.js');
  writeFileSync(
    script,
    `const fs = require('node:fs');
const path = require('node:path');
const { Tokenizer, Reconstructor, versions } = require('${PKG.name}');
const rss = () => Number(/VmRSS:\\s+(\\d+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'))[1]) / 1024;
(async () => {
  const tokenizer = await Tokenizer.load();
  const afterLoad = rss();
  const image = path.join(path.dirname(require.resolve('${PKG.name}/package.json')), 'assets', 'sample.jpg');
  const auto = await tokenizer.tokenize(image);
  const fixed = await tokenizer.tokenize(image, { mode: 'fixed', maxTokens: 8 });
  const back = await new Reconstructor(tokenizer.model).reconstruct(fixed);
  const maps = [...new Set(fs.readFileSync('/proc/self/maps', 'utf8').split('\\n').map((l) => l.split(/\\s+/)[5]).filter((p) => p && p.startsWith('/')))];
  console.log(JSON.stringify({ model: tokenizer.model.path, length: auto.length, dim: auto.dim, floats: auto.tokens.length,
    finite: auto.tokens.every(Number.isFinite), fixed: fixed.length, width: back.width, bytes: back.data.length,
    libtorchPath: versions().libtorchPath, cuda: versions().cuda, rssAfterLoadMiB: afterLoad, maps }));
  tokenizer.dispose();
})().catch((e) => { console.error(e); process.exit(1); });
`,
  );
  const r = await run(process.execPath, [script], project, env);
  t.is(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { model: string; length: number; dim: number; floats: number; finite: boolean; fixed: number; width: number; bytes: number; libtorchPath: string; cuda: boolean; rssAfterLoadMiB: number; maps: string[] };
  t.is(out.model, join(pkgDir, 'models', 'dove-tiny.pt'));
  t.true(out.length >= 1 && out.length <= 64, `auto length ${out.length}`);
  t.is(out.floats, out.length * out.dim);
  t.true(out.finite);
  t.is(out.fixed, 8);
  t.is(out.width, 64);
  t.is(out.bytes, 64 * 64 * 3);
  t.is(out.libtorchPath, join(platformDir, 'lib', 'libtorch_cpu.so'));
  t.false(out.cuda);
  const cudaMapped = out.maps.filter((p) => CUDA_LIBRARY_FILE.test(p));
  const standIns = join(platformDir, 'lib', 'cuda-stubs');
  t.deepEqual(cudaMapped.filter((p) => dirname(p) !== standIns), [], 'only the CUDA stand-ins may be mapped');
  t.deepEqual(cudaMapped.map((p) => basename(p)).sort(), ['libcudart.so.13', 'libcupti.so.13']);
  for (const p of cudaMapped) t.true(statSync(p).size < 100_000, `${p} is not a stand-in`);
  t.deepEqual(out.maps.filter((p) => p.startsWith(SETUP_CACHE + '/') || p.startsWith(ROOT + '/')), [], 'nothing from the setup cache or this checkout');
  t.log(`RSS after Tokenizer.load(): ${out.rssAfterLoadMiB.toFixed(0)} MiB; mapped CUDA-named files: ${cudaMapped.map((p) => basename(p)).join(', ')} (stand-ins)`);
});

isolated(`two Trainer steps run on the CPU from the installed package, ${hiddenNote}`, async (t) => {
  t.timeout(SLOW);
  const { project, pkgDir, env } = ready();
  const images = join(project, 'train-images');
  mkdirSync(images, { recursive: true });
  for (let k = 0; k < 4; k++) {
    const data = Buffer.alloc(64 * 64 * 3);
    for (let i = 0; i < 64 * 64; i++) data.set([(k * 53) % 256, (i % 64) * 4, (i >> 6) * 4], i * 3);
    await sharp(data, { raw: { width: 64, height: 64, channels: 3 } }).png().toFile(join(images, `img${k}.png`));
  }
  const script = join(project, 'train.js');
  writeFileSync(
    script,
    `const path = require('node:path');
const { Trainer } = require('${PKG.name}');
(async () => {
  const model = path.join(path.dirname(require.resolve('${PKG.name}/package.json')), 'models', 'dove-tiny.pt');
  const trainer = new Trainer({ model, images: ${JSON.stringify(images)}, outDir: ${JSON.stringify(join(project, 'train-out'))},
    device: 'cpu', batchSize: 2, epochs: 1, maxSteps: 2, warmupSteps: 1, augment: false, sampleImages: 0, plots: false, seed: 7 });
  const losses = [];
  const events = (async () => { for await (const e of trainer.events()) if (e.type === 'step') losses.push(e.loss); })();
  const done = await trainer.fit();
  await events;
  console.log(JSON.stringify({ step: done.step, losses, checkpoint: done.checkpoint }));
})().catch((e) => { console.error(e); process.exit(1); });
`,
  );
  const r = await run(process.execPath, [script], project, env);
  t.is(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { step: number; losses: number[]; checkpoint?: string };
  t.is(out.step, 2);
  t.is(out.losses.length, 2);
  t.true(out.losses.every((l) => Number.isFinite(l) && l > 0), `losses ${out.losses.join(', ')}`);
  t.true(out.checkpoint !== undefined && existsSync(join(out.checkpoint, 'model.pt')), `checkpoint ${out.checkpoint}`);
  t.log(`trainer losses ${out.losses.map((l) => l.toFixed(4)).join(', ')} (model ${join(pkgDir, 'models', 'dove-tiny.pt')})`);
});

isolated(`dove doctor names the platform package as libtorch's source and says where CUDA libtorch was looked for, ${hiddenNote}`, async (t) => {
  t.timeout(SLOW);
  const { project, platformDir, env } = ready();
  const r = await run(join(project, 'node_modules', '.bin', 'dove'), ['doctor', '--json'], project, env);
  t.is(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout) as { prebuilt: boolean; libtorchFrom: string; cudaStandIns: string[]; cudaLibtorch: { loaded: boolean; tried: string[] }; devices: string[] };
  t.true(report.prebuilt);
  t.is(report.libtorchFrom, `${join(platformDir, 'lib')} (the platform package ${PLATFORM_PKG.name}@${PKG.version})`);
  t.deepEqual(report.cudaStandIns.map((p) => basename(p)).sort(), ['libcudart.so.13', 'libcupti.so.13']);
  t.false(report.cudaLibtorch.loaded);
  t.true(report.cudaLibtorch.tried.some((l) => l.startsWith(join(platformDir, 'lib')) && /no libc10_cuda\.so, libtorch_cuda\.so/.test(l)), report.cudaLibtorch.tried.join('\n'));
  t.deepEqual(report.devices, ['cpu']);
  t.false(report.cudaLibtorch.tried.some((l) => l.includes(SETUP_CACHE)), 'the hidden setup cache offered a libtorch');
});

isolated(`--device cuda without a CUDA libtorch says what is missing, ${hiddenNote}`, async (t) => {
  t.timeout(SLOW);
  const { project, pkgDir, env } = ready();
  const r = await run(join(project, 'node_modules', '.bin', 'dove'), ['reconstruct', join(pkgDir, 'assets', 'sample.jpg'), '--device', 'cuda', '-o', join(project, 'cuda.png')], project, env);
  t.is(r.code, 1);
  t.regex(r.stderr, /Device 'cuda' was requested but libtorch's CUDA libraries \(libtorch_cuda\.so, libc10_cuda\.so of libtorch 2\.11\.0\) could not be loaded/);
  t.regex(r.stderr, /no libc10_cuda\.so, libtorch_cuda\.so \(a CPU-only libtorch\)/);
  t.regex(r.stderr, /pip install torch==2\.11\.0/);
  t.regex(r.stderr, /\[DEVICE_UNAVAILABLE\]/);
  t.false(existsSync(join(project, 'cuda.png')));
});

test('the installed package type-checks in a strict TypeScript consumer', async (t) => {
  t.timeout(SLOW);
  const { project, env } = ready();
  writeFileSync(
    join(project, 'consumer.ts'),
    `import { Tokenizer, type ImageTokens, type TokenizeOptions } from '${PKG.name}';
const options: TokenizeOptions = { mode: 'capped', maxTokens: 16 };
export async function lengthOf(path: string): Promise<number> {
  const tokenizer = await Tokenizer.load();
  const tokens: ImageTokens = await tokenizer.tokenize(path, options);
  tokenizer.dispose();
  return tokens.length;
}
`,
  );
  const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  const r = await run(process.execPath, [tsc, '--noEmit', '--strict', '--module', 'commonjs', '--target', 'es2022', '--moduleResolution', 'node', '--esModuleInterop', '--types', 'node', '--typeRoots', join(ROOT, 'node_modules', '@types'), 'consumer.ts'], project, env, { hidden: false });
  t.is(r.code, 0, r.stdout + r.stderr);
});

const torchLib = CACHE_TORCH_LIB ?? '';
const withCache = CACHE_TORCH_LIB !== undefined && 'prefix' in NAMESPACE ? test : test.skip;
const cacheNote = CACHE_TORCH_LIB !== undefined ? '' : ` (skipped: no torch 2.11.0 virtualenv in ${SETUP_CACHE}; bash scripts/setup makes one)`;

withCache(`without the platform package, libtorch comes from LIBTORCH or the setup cache, else one actionable message${cacheNote}`, async (t) => {
  t.timeout(SLOW);
  const { work, project, pkgDir, env } = ready();
  // A second project (beside the first: Node looks for packages in every parent's node_modules)
  // with dove-encoder and its dependencies but no platform package.
  const bare = join(work, 'bare');
  const modules = join(bare, 'node_modules');
  mkdirSync(modules, { recursive: true });
  cpSync(pkgDir, join(modules, PKG.name), { recursive: true });
  // Every dependency the first project installed, except the platform package (and this package, copied above).
  const platformScope = PLATFORM_PKG.name.split('/')[0]!;
  for (const dep of readdirSync(join(project, 'node_modules'))) {
    if (dep.startsWith('.') || dep === PKG.name || dep === platformScope) continue;
    symlinkSync(join(project, 'node_modules', dep), join(modules, dep));
  }
  t.false(existsSync(join(modules, PLATFORM_PKG.name)), 'the bare project must not see the platform package');
  const probe = `try { const v = require(${JSON.stringify(PKG.name)}).versions(); console.log('ok ' + v.libtorchPath); } catch (e) { console.log('fail ' + e.code); console.log(e.message); }`;
  const torchRoot = dirname(torchLib); // site-packages/torch of the setup's virtualenv

  const nowhere = await run(process.execPath, ['-e', probe], bare, env);
  t.regex(nowhere.stdout, /^fail ADDON_LOAD_FAILED/);
  t.regex(nowhere.stdout, new RegExp(`npm install ${PLATFORM_PKG.name.replace('/', '\\/')}@${PKG.version}`));
  t.regex(nowhere.stdout, /LIBTORCH=/, 'the message says how to point at a libtorch');

  const fromEnv = await run(process.execPath, ['-e', probe], bare, { ...env, LIBTORCH: torchRoot, DOVE_CACHE: join(bare, 'no-cache') }, { hidden: false });
  t.is(fromEnv.stdout.trim(), `ok ${join(torchLib, 'libtorch_cpu.so')}`, fromEnv.stdout + fromEnv.stderr);

  const fromCache = await run(process.execPath, ['-e', probe], bare, { ...env, DOVE_CACHE: SETUP_CACHE }, { hidden: false });
  t.is(fromCache.stdout.trim(), `ok ${join(torchLib, 'libtorch_cpu.so')}`, fromCache.stdout + fromCache.stderr);
});

withCache(`asking for CUDA loads libtorch_cuda.so of the same libtorch into the installed package (LIBTORCH = a torch 2.11.0 wheel)${cacheNote}`, async (t) => {
  t.timeout(SLOW);
  const { project, platformDir, env } = ready();
  const torchRoot = dirname(torchLib);
  const script = join(project, 'cuda.js');
  writeFileSync(
    script,
    `const fs = require('node:fs');
const { devices, versions, Tokenizer } = require('${PKG.name}');
(async () => {
  const list = devices(); // asks for CUDA: loads libtorch's CUDA libraries when a CUDA libtorch is found
  const maps = [...new Set(fs.readFileSync('/proc/self/maps', 'utf8').split('\\n').map((l) => l.split(/\\s+/)[5]).filter((p) => p && p.startsWith('/')))];
  let gpu = null;
  if (list.includes('cuda:0')) {
    const tokenizer = await Tokenizer.load(undefined, { device: 'cuda:0' });
    const tokens = await tokenizer.tokenize({ data: new Uint8Array(64 * 64 * 3).fill(100), width: 64, height: 64, channels: 3 }, { mode: 'fixed', maxTokens: 4 });
    gpu = { device: tokenizer.model.device, length: tokens.length, finite: tokens.tokens.every(Number.isFinite) };
    tokenizer.dispose();
  } else {
    try { await Tokenizer.load(undefined, { device: 'cuda' }); } catch (e) { gpu = { code: e.code, message: e.message }; }
  }
  console.log(JSON.stringify({ devices: list, versions: versions(), maps, gpu }));
})().catch((e) => { console.error(e); process.exit(1); });
`,
  );
  const r = await run(process.execPath, [script], project, { ...env, LIBTORCH: torchRoot, DOVE_CACHE: join(project, 'no-cache') }, { hidden: false });
  t.is(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { devices: string[]; versions: { cuda: boolean; cudaVersion: string | null; libtorchPath: string }; maps: string[]; gpu: { code?: string; message?: string; device?: string; length?: number; finite?: boolean } };
  t.is(out.versions.libtorchPath, join(platformDir, 'lib', 'libtorch_cpu.so'), 'the CPU half stays the platform package');
  t.true(out.versions.cuda, 'libtorch reports its CUDA half after the load');
  t.regex(out.versions.cudaVersion ?? '', /^13\.\d$/);
  t.true(out.maps.includes(join(torchLib, 'libtorch_cuda.so')), 'libtorch_cuda.so comes from LIBTORCH');
  if (out.devices.includes('cuda:0')) {
    t.deepEqual(out.gpu, { device: 'cuda:0', length: 4, finite: true });
  } else {
    t.is(out.gpu.code, 'DEVICE_UNAVAILABLE');
    t.regex(out.gpu.message ?? '', /no CUDA GPU is available/);
  }
  t.log(`devices with LIBTORCH's CUDA half: ${out.devices.join(', ')}`);
});
