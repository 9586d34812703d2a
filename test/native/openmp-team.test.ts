// A module thread that parks gives back its OpenMP team (native/openmp_team.h): libgomp lets teams
// spin between parallel regions only while the process has no more OpenMP threads than CPUs, so
// the workers of an idle module must not stay behind and slow down every other module.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { CORE_MODEL, ROOT } from './helpers';

const script = `
const { readdirSync, readFileSync } = require('node:fs');
const { loadModule } = require(${JSON.stringify(join(ROOT, 'dist', 'lib', 'core', 'module.js'))});
const { Tensor } = require(${JSON.stringify(join(ROOT, 'dist', 'lib', 'core', 'tensor.js'))});
const runtime = require(${JSON.stringify(join(ROOT, 'dist', 'lib', 'core', 'runtime.js'))});
// Threads inherit their creator's name: libgomp's workers of a module thread are 'dove-module' too.
const moduleThreads = () => readdirSync('/proc/self/task')
  .map((id) => { try { return readFileSync('/proc/self/task/' + id + '/comm', 'utf8').trim(); } catch { return ''; } })
  .filter((name) => name === 'dove-module').length;
const idle = () => new Promise((r) => setTimeout(r, 300));
(async () => {
  runtime.setNumThreads(2);
  const module = await loadModule(${JSON.stringify(CORE_MODEL)});
  // 4M elements: libtorch splits the multiplication over both threads (one parallel region).
  const x = Tensor.fromArray(new Float32Array(1 << 22).fill(1.5));
  const sums = [];
  for (let i = 0; i < 2; i++) {
    const out = await module.run('scale', [x, 2]);
    const data = out.data();
    sums.push(data[0] + data[data.length - 1]);
    out.dispose();
    await idle();
  }
  console.log(JSON.stringify({ threads: runtime.getNumThreads(), afterIdle: moduleThreads(), sums }));
  module.dispose();
})();
`;

function run(env: NodeJS.ProcessEnv): { threads: number; afterIdle: number; sums: number[] } {
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 60_000 });
  if (r.status !== 0) throw new Error(`child failed (${String(r.status)}): ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop() ?? '') as { threads: number; afterIdle: number; sums: number[] };
}

// /proc/self/task and libgomp are Linux's; elsewhere the release is a no-op by design.
const linuxTest = process.platform === 'linux' ? test : test.skip;

linuxTest('a parked module thread keeps no OpenMP workers, and its next call starts a team again', (t) => {
  const kept = run({ DOVE_OMP_RELEASE: '0' });
  const released = run({});
  t.is(kept.threads, 2);
  // The control: with the release off the module thread's worker is still there while it is idle,
  // so the count below sees the workers it is about.
  t.is(kept.afterIdle, 2);
  t.is(released.afterIdle, 1);
  // Calls after a release compute the same (the second call ran on a new team).
  t.deepEqual(released.sums, [6, 6]);
  t.deepEqual(kept.sums, [6, 6]);
});

// Alternates calls on two modules; with OVERSUBSCRIBE set, a busy thread per core holds the cores meanwhile.
const alternating = `
const { availableParallelism } = require('node:os');
const { Worker } = require('node:worker_threads');
const { readdirSync, readFileSync } = require('node:fs');
const { loadModule } = require(${JSON.stringify(join(ROOT, 'dist', 'lib', 'core', 'module.js'))});
const { Tensor } = require(${JSON.stringify(join(ROOT, 'dist', 'lib', 'core', 'tensor.js'))});
const runtime = require(${JSON.stringify(join(ROOT, 'dist', 'lib', 'core', 'runtime.js'))});
const moduleThreads = () => readdirSync('/proc/self/task')
  .map((id) => { try { return readFileSync('/proc/self/task/' + id + '/comm', 'utf8').trim(); } catch { return ''; } })
  .filter((name) => name === 'dove-module').length;
(async () => {
  runtime.setNumThreads(2);
  const cores = process.env.OVERSUBSCRIBE ? availableParallelism() : 0;
  const busy = Array.from({ length: cores }, () => new Worker('for (;;) {}', { eval: true }));
  const a = await loadModule(${JSON.stringify(CORE_MODEL)});
  const b = await loadModule(${JSON.stringify(CORE_MODEL)});
  const x = Tensor.fromArray(new Float32Array(1 << 22).fill(1.5));
  // Per round: the module threads after b's calls have run for 30 ms, right after a's call.
  const counts = [];
  for (let i = 0; i < Number(process.env.ROUNDS ?? 5); i++) {
    (await a.run('scale', [x, 2])).dispose();
    // a's thread now waits for its next call with its team (up to 100 ms here); b's first call
    // starts right after it and ends that team.
    const started = Date.now();
    while (Date.now() - started < 30) (await b.run('scale', [x, 2])).dispose();
    counts.push(moduleThreads());
  }
  console.log(JSON.stringify({ counts }));
  a.dispose();
  b.dispose();
  await Promise.all(busy.map((w) => w.terminate()));
})();
`;

function alternate(env: NodeJS.ProcessEnv): number[] {
  const r = spawnSync(process.execPath, ['-e', alternating], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 60_000 });
  if (r.status !== 0) throw new Error(`child failed (${String(r.status)}): ${r.stderr}`);
  return (JSON.parse(r.stdout.trim().split('\n').pop() ?? '') as { counts: number[] }).counts;
}

linuxTest("a call on one module ends another module's idle team before it runs", (t) => {
  const most = (env: NodeJS.ProcessEnv): number => Math.min(...alternate(env));
  // The module threads wait up to 100 ms for their next call (DOVE_RUN_SPIN_US) with their team.
  // a's thread, its idle worker, b's thread and b's worker would be 4; b's calls end a's team: 3
  // (the fewest over 5 rounds: on a loaded machine a's thread may see b's call late in one).
  // DOVE_OMP_KEEP_MS=0: releases that a loaded machine makes slow must not switch them off here.
  t.is(most({ DOVE_RUN_SPIN_US: '100000', DOVE_OMP_KEEP_MS: '0' }), 3);
  // The control: with the release off, a's worker stays and the count sees it.
  t.is(most({ DOVE_RUN_SPIN_US: '100000', DOVE_OMP_RELEASE: '0' }), 4);
});

linuxTest('on an oversubscribed machine idle teams are kept instead of ended at every call', (t) => {
  // A busy thread per core holds every core: a release waits for a worker that has no core, so after two
  // slow releases in a row the teams are kept for DOVE_OMP_KEEP_MS and a's worker stays (4 threads).
  const env = { DOVE_RUN_SPIN_US: '100000', OVERSUBSCRIBE: '1', ROUNDS: '12' };
  const kept = alternate(env).slice(4);
  t.true(kept.filter((c) => c === 4).length >= kept.length - 1, `module threads per round: ${kept.join(' ')}`);
  // The control: never kept, so b's calls still end a's team in most rounds (3 threads).
  const released = alternate({ ...env, DOVE_OMP_KEEP_MS: '0' }).slice(4);
  t.true(released.filter((c) => c === 3).length >= released.length / 2, `module threads per round: ${released.join(' ')}`);
});
