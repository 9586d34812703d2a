// A full disk while saving (issue 15, row 4): ScriptModule.save and the trainer's optimizer state
// must fail with IO_ERROR and leave the target as it was (libtorch's zip writer used to throw from
// its destructor: SIGABRT). Disks fill up two ways here: a file-size limit (ulimit -f; the write
// fails with EFBIG, Node ignores SIGXFSZ) in every environment, and, where this process may mount
// one in a private mount namespace, a 7 MB tmpfs (ENOSPC), as in the report.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultModelPath } from '../../lib/model/model-file';
import { CORE_MODEL, describeExit, ROOT, runChild } from './helpers';

const TRAIN = join(ROOT, 'test', 'fixtures', 'generated', 'train');

function scratch(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'dove-full-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

test('ScriptModule.save past a file-size limit: IO_ERROR, the old file intact, no temp file left', (t) => {
  const { dir, cleanup } = scratch();
  t.teardown(cleanup);
  writeFileSync(join(dir, 'model.pt'), 'the previous model');
  const r = runChild(`
const m = await lib.loadModule(${JSON.stringify(CORE_MODEL)});
let error = null;
try { await m.save(${JSON.stringify(join(dir, 'model.pt'))}); } catch (e) { error = { code: e.code, message: e.message }; }
report(error);
`, { shellPrefix: 'ulimit -f 64;' });
  t.is(r.signal, null, describeExit(r));
  t.is(r.status, 0, describeExit(r));
  const error = r.result as { code: string; message: string } | null;
  t.is(error?.code, 'IO_ERROR');
  t.regex(error?.message ?? '', /file size limit|File too large/);
  t.is(readFileSync(join(dir, 'model.pt'), 'utf8'), 'the previous model');
  t.deepEqual(readdirSync(dir), ['model.pt']);
});

test('the optimizer state (trainer checkpoint) past a file-size limit: IO_ERROR, nothing left behind', (t) => {
  const { dir, cleanup } = scratch();
  t.teardown(cleanup);
  const r = runChild(`
const b = binding();
const m = await b.loadModule(${JSON.stringify(join(TRAIN, 'train-mini.pt'))}, 'cpu', []);
const engine = b.createTrainEngine(m, { lr: 1e-3, betas: [0.9, 0.95], eps: 1e-8, groups: [], weightDecay: 0, warmupSteps: 0,
  totalSteps: 10, minLrRatio: 0, clipGradNorm: 0, accumulate: 1, autocastBf16: false, seed: 0 });
let error = null;
try { await engine.saveState(${JSON.stringify(join(dir, 'optimizer.pt'))}); } catch (e) { error = e.code; }
report(error);
`, { shellPrefix: 'ulimit -f 1;' });
  t.is(r.signal, null, describeExit(r));
  t.is(r.result, 'IO_ERROR');
  t.deepEqual(readdirSync(dir), []);
});

// A private mount namespace lets the test mount a small tmpfs without touching the machine's mounts.
const tmpfsReady = ((): boolean => {
  const probe = spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', 'mount -t tmpfs -o size=1m tmpfs /mnt && echo ok'], { encoding: 'utf8' });
  return probe.status === 0 && probe.stdout.includes('ok');
})();
const onTmpfs = tmpfsReady ? test : test.skip;

onTmpfs('dove train --out on a 7 MB tmpfs: a one-line IO_ERROR, exit 1, no partial checkpoint (needs unshare + mount: root)', (t) => {
  const { dir, cleanup } = scratch();
  t.teardown(cleanup);
  const cli = join(ROOT, 'dist', 'lib', 'cli', 'main.js');
  const out = join(dir, 'mnt', 'out');
  const script = [
    `mkdir -p ${JSON.stringify(join(dir, 'mnt'))}`,
    `mount -t tmpfs -o size=7m tmpfs ${JSON.stringify(join(dir, 'mnt'))}`,
    `${JSON.stringify(process.execPath)} ${JSON.stringify(cli)} train --init-from ${JSON.stringify(defaultModelPath())} --images ${JSON.stringify(join(TRAIN, 'images'))} --epochs 1 --max-steps 1 --batch-size 2 --no-plots --no-augment --threads 1 --out ${JSON.stringify(out)}`,
    'status=$?',
    `echo "LISTING"; find ${JSON.stringify(out)} -type f -printf '%P %s\\n' 2>/dev/null`,
    'exit $status',
  ].join('; ');
  const r = spawnSync('unshare', ['-m', '--propagation', 'private', 'bash', '-c', script], { encoding: 'utf8', timeout: 300_000, killSignal: 'SIGKILL' });
  t.is(r.signal, null, r.stderr);
  t.is(r.status, 1, r.stderr);
  const lines = r.stderr.trim().split('\n').filter((l) => l.startsWith('dove'));
  t.is(lines.length, 1, r.stderr);
  t.regex(lines[0]!, /^dove: .*(disk is full|No space left).*\[IO_ERROR\]$/);
  const files = r.stdout.slice(r.stdout.indexOf('LISTING') + 'LISTING'.length).trim().split('\n').filter(Boolean);
  t.false(files.some((f) => f.includes('model.pt') || f.includes('.partial') || f.includes('.tmp-')), `left behind: ${files.join(', ')}`);
});
