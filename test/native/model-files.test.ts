// Model files an attacker could hand a user (issue 15, rows 3 and 5; python/dove_fixtures/hostile.py):
// corrupt archives must be refused before libtorch trusts them (NOT_TORCHSCRIPT), TorchScript that
// touches files or the process must be refused unless the caller trusts the file (UNSAFE_MODEL), and
// every legitimate export must still load. Loads run in child processes (a crash is a signal).
import test from 'ava';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { binding } from '../../lib/core/native';
import { defaultModelPath } from '../../lib/model/model-file';
import { describeExit, HOSTILE, ROOT, runChild } from './helpers';

const GENERATED = join(ROOT, 'test', 'fixtures', 'generated');
const manifest = JSON.parse(readFileSync(join(HOSTILE, 'hostile.json'), 'utf8')) as Record<string, { code: string; what: string }>;
const refused = Object.entries(manifest).filter(([, m]) => m.code !== '');

for (const [name, { code, what }] of refused) {
  test(`${name} (${what}) is refused with ${code} by loadModule, optimized or not, and by DoveModel.load`, (t) => {
    const file = join(HOSTILE, name);
    const r = runChild(`
const { loadModule, DoveModel } = lib;
const out = {};
for (const optimize of [false, true]) {
  out['optimize ' + optimize] = await codeOfAsync(loadModule(${JSON.stringify(file)}, { optimize }).then(async (m) => {
    // On a loader that let it through: use it the way an application would.
    for (const p of m.parameters()) p.data();
    if (m.hasMethod('forward')) await m.run('forward', [lib.Tensor.fromArray(new Float32Array(123), [123])]).catch(() => {});
    m.dispose();
  }));
}
out.dove = await codeOfAsync(DoveModel.load(${JSON.stringify(file)}));
report(out);
`, { cwd: mkdtempSync(join(tmpdir(), 'dove-hostile-')) });
    t.is(r.signal, null, describeExit(r));
    t.is(r.status, 0, describeExit(r));
    t.deepEqual(r.result, { 'optimize false': code, 'optimize true': code, dove: code });
  });
}

test('UNSAFE_MODEL names the operator and the method, and says how to trust the file', (t) => {
  const r = runChild(`
const messages = {};
for (const name of ['poisoned-dove.pt', 'save-in-function.pt', 'from-file-in-submodule.pt', 'from-file-in-setstate.pt']) {
  try { await lib.loadModule(${JSON.stringify(HOSTILE)} + '/' + name); messages[name] = 'loaded'; } catch (e) { messages[name] = e.message; }
}
report(messages);
`);
  t.is(r.signal, null, describeExit(r));
  const m = r.result as Record<string, string>;
  t.regex(m['poisoned-dove.pt']!, /aten::from_file .* in method encode_pixels of __torch__\..*Poisoned/);
  t.regex(m['poisoned-dove.pt']!, /trustModel: true.*--trust-model/);
  t.regex(m['save-in-function.pt']!, /aten::save .* in method forward of __torch__\..*SaveInFunction/);
  t.regex(m['from-file-in-submodule.pt']!, /aten::from_file .* in method (touch of __torch__\..*Inner|forward of __torch__\..*FromFileInSubmodule)/);
  t.regex(m['from-file-in-setstate.pt']!, /aten::from_file .* in method __setstate__ of /);
});

test('a DOVE-shaped export that overwrites a file from encode_pixels: Tokenizer.load refuses it and the file stays as it was', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dove-victim-'));
  try {
    writeFileSync(join(dir, 'victim.bin'), 'precious data!!!');
    const r = runChild(`
let code = 'loaded';
try {
  const tokenizer = await lib.Tokenizer.load(${JSON.stringify(join(HOSTILE, 'poisoned-dove.pt'))});
  const s = tokenizer.imageSize;
  await tokenizer.tokenize({ data: new Uint8Array(s * s * 3), width: s, height: s, channels: 3 });
} catch (e) { code = e.code; }
report(code);
`, { cwd: dir });
    t.is(r.signal, null, describeExit(r));
    t.is(r.result, 'UNSAFE_MODEL');
    t.is(readFileSync(join(dir, 'victim.bin'), 'utf8'), 'precious data!!!');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('trustModel: true loads a file the check refuses (it then runs with the process rights, as documented)', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dove-trusted-'));
  try {
    writeFileSync(join(dir, 'victim.bin'), Buffer.alloc(16));
    const r = runChild(`
const tokenizer = await lib.Tokenizer.load(${JSON.stringify(join(HOSTILE, 'poisoned-dove.pt'))}, { trustModel: true });
const s = tokenizer.imageSize;
const t = await tokenizer.tokenize({ data: new Uint8Array(s * s * 3), width: s, height: s, channels: 3 });
report({ length: t.length, bad: await codeOfAsync(lib.Tokenizer.load(${JSON.stringify(join(HOSTILE, 'poisoned-dove.pt'))}, { trustModel: 'yes' })) });
`, { cwd: dir });
    t.is(r.signal, null, describeExit(r));
    const out = r.result as { length: number; bad: string };
    t.true(out.length >= 1);
    t.is(out.bad, 'INVALID_ARGUMENT');
    t.is(readFileSync(join(dir, 'victim.bin')).toString('latin1'), 'X'.repeat(16), 'the trusted model did what its code says');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('corrupt files stay refused with trustModel: true (a trusted file can still be corrupt)', (t) => {
  const r = runChild(`
report(await codeOfAsync(lib.loadModule(${JSON.stringify(join(HOSTILE, 'oob-size.pt'))}, { trustModel: true })));
`);
  t.is(r.signal, null, describeExit(r));
  t.is(r.result, 'NOT_TORCHSCRIPT');
});

test('the CLI refuses an unsafe model with a one-line error and exit 1, and --trust-model loads it', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dove-cli-unsafe-'));
  try {
    writeFileSync(join(dir, 'victim.bin'), 'precious data!!!');
    copyFileSync(join(ROOT, 'assets', 'sample.jpg'), join(dir, 'a.jpg'));
    const cli = join(ROOT, 'dist', 'lib', 'cli', 'main.js');
    const model = join(HOSTILE, 'poisoned-dove.pt');
    const r = runChild(`
const { spawnSync } = require('node:child_process');
const run = (extra) => spawnSync(process.execPath, [${JSON.stringify(cli)}, 'tokenize', 'a.jpg', '--model', ${JSON.stringify(model)}, '-o', 'out.safetensors', ...extra], { encoding: 'utf8' });
const refused = run([]);
const before = require('node:fs').readFileSync('victim.bin', 'utf8');
const trusted = run(['--trust-model']);
report({ status: refused.status, stderr: refused.stderr, before, trustedStatus: trusted.status, trustedErr: trusted.stderr });
`, { cwd: dir });
    t.is(r.signal, null, describeExit(r));
    const out = r.result as { status: number; stderr: string; before: string; trustedStatus: number; trustedErr: string };
    t.is(out.status, 1);
    t.regex(out.stderr.trim(), /^dove: .*aten::from_file.*\[UNSAFE_MODEL\]$/);
    t.is(out.stderr.trim().split('\n').length, 1, out.stderr);
    t.is(out.before, 'precious data!!!');
    t.is(out.trustedStatus, 0, out.trustedErr);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Every .pt the fixture generators write, except the hostile ones. */
function exportFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return entry.name === 'hostile' ? [] : exportFiles(path);
    return entry.name.endsWith('.pt') ? [path] : [];
  });
}

test('every legitimate export loads: the fixtures, the embedded model, Q-DOVE and the official-14m config', (t) => {
  // Deliberately broken fixtures of the loader's own tests: not TorchScript at all.
  const notTorchScript = new Set(['not-torchscript.pt', 'not_a_model.pt', 'state_dict.pt']);
  const files = [defaultModelPath(), join(HOSTILE, 'plain.pt'), join(HOSTILE, 'with-constant.pt'), join(HOSTILE, 'hang.pt'), ...exportFiles(GENERATED)];
  for (const must of ['tiny-dove.pt', 'tiny-qdove.pt', 'official-14m.pt', 'train-mini-qdove.pt', 'inception-random.pt']) {
    t.true(files.some((f) => f.endsWith(`/${must}`)), `${must} is among them`);
  }
  const r = runChild(`
const out = {};
for (const file of ${JSON.stringify(files)}) {
  out[file] = await codeOfAsync(lib.loadModule(file, { optimize: true }).then((m) => m.dispose()));
}
report(out);
`, { timeoutMs: 600_000 });
  t.is(r.signal, null, describeExit(r));
  const out = r.result as Record<string, string>;
  const wrong = Object.entries(out).filter(([file, code]) => {
    const name = file.slice(file.lastIndexOf('/') + 1);
    return notTorchScript.has(name) ? code !== 'NOT_TORCHSCRIPT' : code !== 'no error';
  });
  t.deepEqual(wrong, [], 'every export loads; only the non-TorchScript fixtures are refused');
  t.log(`${Object.keys(out).length} files: ${Object.values(out).filter((c) => c === 'no error').length} loaded`);
});

test('the operator rules cover what a query of the libtorch operator registry flags', (t) => {
  const audit = binding().operatorAudit();
  const reviewed = new Set(audit.reviewedSafe.map((r) => r.name));
  t.true(audit.registrySize > 2000, `registry of ${audit.registrySize} operators`);
  const uncovered = audit.registry.filter((op) => !op.unsafe && !reviewed.has(op.name));
  t.deepEqual(uncovered, [], 'every flagged operator is refused or reviewed as safe');
  for (const op of ['aten::from_file', 'aten::save', 'aten::manual_seed', 'c10d::broadcast_']) {
    t.true(audit.registry.some((r) => r.name === op && r.unsafe), `${op} is flagged and refused`);
  }
  const stale = audit.reviewedSafe.filter((r) => !audit.registry.some((op) => op.name === r.name));
  t.log(`registry: ${audit.registrySize} operators, ${audit.registry.length} flagged, ${audit.registry.filter((r) => r.unsafe).length} refused; reviewed safe not in this registry: ${stale.map((r) => r.name).join(', ') || 'none'}`);
});
