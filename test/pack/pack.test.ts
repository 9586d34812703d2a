// The npm tarball works on a machine with no compiler: `npm pack`, install it into an empty project
// with a PATH holding only `node` (no g++, cc, make, cmake, python), without install scripts, and run
// `dove reconstruct` and a Tokenizer script from it. The addon must come from prebuilds/ (there is no
// build/ folder in the package) and the model from the package's models/dove-tiny.pt.
import test from 'ava';
import { execFile, execFileSync, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import sharp from 'sharp';

const ROOT = resolve(__dirname, '..', '..', '..');
const PKG = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { name: string; version: string; scripts?: Record<string, string> };
const PREBUILD = join('prebuilds', `${process.platform}-${process.arch}`, 'node.napi.glibc.node');
const COMPILERS = ['g++', 'gcc', 'cc', 'c++', 'clang', 'clang++', 'make', 'cmake', 'ninja', 'python3', 'python'];

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command with exactly `env` (nothing inherited), collecting its output. */
function run(file: string, args: string[], cwd: string, env: NodeJS.ProcessEnv, timeoutMs = 120_000): Promise<Run> {
  return new Promise((done) => {
    execFile(file, args, { cwd, env, timeout: timeoutMs, maxBuffer: 32 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : 1;
      done({ code, stdout: String(stdout), stderr: String(stderr) });
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

interface Installed {
  work: string;
  project: string;
  pkgDir: string;
  env: NodeJS.ProcessEnv;
  tarballFiles: string[];
}

let installed: Installed | undefined;
let setupError: unknown;

test.before(async () => {
  try {
    if (!existsSync(join(ROOT, 'models', 'dove-tiny.pt'))) {
      throw new Error('models/dove-tiny.pt is missing: the package ships the embedded model (bash scripts/train-embedded rebuilds it)');
    }
    // The tarball must carry the addon built from this tree.
    execFileSync('bash', ['scripts/prebuild'], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    const work = mkdtempSync(join(tmpdir(), 'dove-pack-'));
    const packed = execFileSync('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', work], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    const info = (JSON.parse(packed) as { filename: string; files: { path: string }[] }[])[0]!;
    const tarball = join(work, info.filename);

    // A bin folder with node alone: no compiler, no cmake, no python can be found through PATH.
    const bin = join(work, 'bin');
    mkdirSync(bin);
    symlinkSync(process.execPath, join(bin, 'node'));
    const env: NodeJS.ProcessEnv = { PATH: bin, HOME: process.env.HOME, TMPDIR: tmpdir(), LANG: 'C.UTF-8', npm_config_update_notifier: 'false' };

    const project = join(work, 'consumer');
    mkdirSync(project);
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'dove-consumer', version: '1.0.0', private: true }));
    // --offline: dependencies (sharp, node-gyp-build) come from the npm cache `npm ci` filled.
    const npm = await run(process.execPath, [npmCli(), 'install', tarball, '--offline', '--no-audit', '--no-fund', '--ignore-scripts', '--loglevel=error'], project, env, 180_000);
    if (npm.code !== 0) throw new Error(`npm install ${info.filename} failed (${npm.code}):\n${npm.stderr}`);
    installed = { work, project, pkgDir: join(project, 'node_modules', PKG.name), env, tarballFiles: info.files.map((f) => f.path) };
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

test('the tarball carries the prebuilt addon, the embedded model and the compiled API, and no tests', (t) => {
  const { tarballFiles, pkgDir } = ready();
  for (const f of [PREBUILD, 'models/dove-tiny.pt', 'models/README.md', 'dist/lib/index.js', 'dist/lib/index.d.ts', 'dist/lib/cli/main.js', 'assets/sample.jpg', 'binding.d.ts', 'README.md']) {
    t.true(tarballFiles.includes(f), `${f} missing from the tarball`);
  }
  t.false(tarballFiles.some((f) => f.startsWith('dist/test/') || f.startsWith('test/')), 'tests leaked into the tarball');
  t.false(existsSync(join(pkgDir, 'build')), 'the installed package must not have a build/ folder');
  const scripts = (JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')) as { scripts?: Record<string, string> }).scripts ?? {};
  for (const hook of ['preinstall', 'install', 'postinstall']) t.false(hook in scripts, `package.json must not rely on a ${hook} script`);
});

test('no compiler, cmake or python is reachable from the PATH the installed package runs with', (t) => {
  const { env } = ready();
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    for (const tool of COMPILERS) t.false(existsSync(join(dir, tool)), `${tool} found in ${dir}`);
  }
});

test('dove reconstruct runs from the installed package with the embedded model', async (t) => {
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
  const { project, env, tarballFiles } = ready();
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

test('a Tokenizer script runs against the installed package (CommonJS require)', async (t) => {
  const { project, pkgDir, env } = ready();
  const script = join(project, 'tokens.js');
  writeFileSync(
    script,
    `const path = require('node:path');
const { Tokenizer, Reconstructor } = require('${PKG.name}');
(async () => {
  const tokenizer = await Tokenizer.load();
  const image = path.join(path.dirname(require.resolve('${PKG.name}/package.json')), 'assets', 'sample.jpg');
  const auto = await tokenizer.tokenize(image);
  const fixed = await tokenizer.tokenize(image, { mode: 'fixed', maxTokens: 8 });
  const back = await new Reconstructor(tokenizer.model).reconstruct(fixed);
  console.log(JSON.stringify({ model: tokenizer.model.path, length: auto.length, dim: auto.dim, floats: auto.tokens.length,
    finite: auto.tokens.every(Number.isFinite), fixed: fixed.length, width: back.width, bytes: back.data.length }));
  tokenizer.dispose();
})().catch((e) => { console.error(e); process.exit(1); });
`,
  );
  const r = await run(process.execPath, [script], project, env);
  t.is(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { model: string; length: number; dim: number; floats: number; finite: boolean; fixed: number; width: number; bytes: number };
  t.is(out.model, join(pkgDir, 'models', 'dove-tiny.pt'));
  t.true(out.length >= 1 && out.length <= 64, `auto length ${out.length}`);
  t.is(out.floats, out.length * out.dim);
  t.true(out.finite);
  t.is(out.fixed, 8);
  t.is(out.width, 64);
  t.is(out.bytes, 64 * 64 * 3);
});

test('the installed package type-checks in a strict TypeScript consumer', async (t) => {
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
  const r = await run(process.execPath, [tsc, '--noEmit', '--strict', '--module', 'commonjs', '--target', 'es2022', '--moduleResolution', 'node', '--esModuleInterop', '--types', 'node', '--typeRoots', join(ROOT, 'node_modules', '@types'), 'consumer.ts'], project, env);
  t.is(r.code, 0, r.stdout + r.stderr);
});

test('a prebuilt addon whose RUNPATH misses libtorch finds it through the setup cache or LIBTORCH, else fails with one actionable message', async (t) => {
  const { project, pkgDir, env } = ready();
  // A copy of the installed package whose binary was "built elsewhere": its RUNPATH libtorch folder
  // is overwritten (same length, so the ELF stays valid) with one that does not exist.
  const copy = join(project, 'node_modules', 'dove-elsewhere');
  cpSync(pkgDir, copy, { recursive: true });
  const info = JSON.parse(readFileSync(join(copy, 'prebuilds', `${process.platform}-${process.arch}`, 'libtorch.json'), 'utf8')) as { runpath: string; libtorchPath: string };
  const libDir = dirname(info.libtorchPath);
  t.true(info.runpath.split(':').includes(libDir), 'the prebuild records the libtorch it was linked against in its RUNPATH');
  const binary = join(copy, PREBUILD);
  const fake = Buffer.from(`/nonexistent-libtorch/${'x'.repeat(Math.max(0, libDir.length - 22))}`.slice(0, libDir.length));
  const bytes = readFileSync(binary);
  let patched = 0;
  for (let at = bytes.indexOf(libDir); at >= 0; at = bytes.indexOf(libDir, at + 1)) {
    fake.copy(bytes, at);
    patched++;
  }
  t.true(patched > 0);
  writeFileSync(binary, bytes);
  const probe = `try { const v = require(${JSON.stringify(join(copy, 'dist', 'lib', 'index.js'))}).versions(); console.log('ok ' + v.libtorchPath); } catch (e) { console.log('fail ' + e.code); console.log(e.message); }`;
  const torchRoot = dirname(libDir); // site-packages/torch of the setup's virtualenv

  const fromCache = await run(process.execPath, ['-e', probe], project, env);
  t.regex(fromCache.stdout, /^ok .*libtorch_cpu\.so/, fromCache.stdout + fromCache.stderr);

  const nowhere = await run(process.execPath, ['-e', probe], project, { ...env, DOVE_CACHE: join(project, 'no-cache') });
  t.regex(nowhere.stdout, /^fail ADDON_LOAD_FAILED/);
  t.regex(nowhere.stdout, /LIBTORCH=/, 'the message says how to point at a libtorch');

  const fromEnv = await run(process.execPath, ['-e', probe], project, { ...env, DOVE_CACHE: join(project, 'no-cache'), LIBTORCH: torchRoot });
  t.regex(fromEnv.stdout, /^ok .*libtorch_cpu\.so/, fromEnv.stdout + fromEnv.stderr);
});
