// Multi-process training on libtorch's c10d (TCPStore + ProcessGroupGloo on loopback): 2 worker
// processes with half the batch each reach the weights of 1 process with the whole batch, and a
// worker that dies ends the job with an error instead of a hang.
import test from 'ava';
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { launchWorkers } from '../../lib/trainer/launcher';
import { listCheckpoints } from '../../lib/trainer/checkpoint';
import { CLI, fixturesReady, IMAGES, MINI, MINI_DET, maxWeightDifference, tempDir } from './helpers';

function runCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stderr: string; stdout: string; seconds: number }> {
  const start = Date.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('exit', (code) => resolve({ code, stderr, stdout, seconds: (Date.now() - start) / 1000 }));
  });
}

// train-mini-det trains every sample at its predicted length with no EOS term: its loss is a plain
// mean over samples, so averaging the two halves' gradients is exactly the whole batch's gradient.
const COMMON = ['train', '--init-from', MINI_DET, '--images', IMAGES, '--epochs', '1', '--lr', '2e-3', '--no-augment', '--no-plots', '--threads', '1', '--warmup-steps', '1', '--seed', '3'];

test('2 Gloo processes with batch 4 each match 1 process with batch 8', async (t) => {
  if (!fixturesReady()) return t.fail('training fixtures missing: run scripts/setup');
  const { dir, cleanup } = tempDir('dist');
  t.teardown(cleanup);
  const [single, pair] = await Promise.all([
    runCli([...COMMON, '--batch-size', '8', '--out', join(dir, 'single')]),
    runCli([...COMMON, '--batch-size', '4', '--nproc-per-node', '2', '--out', join(dir, 'pair')]),
  ]);
  t.is(single.code, 0, single.stderr);
  t.is(pair.code, 0, pair.stderr);
  const [a] = (await listCheckpoints(join(dir, 'single'))).slice(-1);
  const [b] = (await listCheckpoints(join(dir, 'pair'))).slice(-1);
  t.truthy(a);
  t.truthy(b);
  t.regex(a!, /step-00000002$/);
  t.regex(b!, /step-00000002$/);
  const diff = await maxWeightDifference(join(a!, 'model.pt'), join(b!, 'model.pt'));
  t.log(`max |w_1proc - w_2proc| = ${diff.max}`);
  t.true(diff.max < 1e-4, `max weight difference ${diff.max}`);
  const moved = await maxWeightDifference(MINI_DET, join(b!, 'model.pt'));
  t.true(moved.max > 1e-3);
  // Rank 0 alone writes the log: one line per step, not two.
  const log = (await fs.readFile(join(dir, 'pair', 'log.jsonl'), 'utf8')).trim().split('\n').filter((l) => l.includes('"type":"step"'));
  t.is(log.length, 2);
});

test('a worker killed mid-training ends the other with DISTRIBUTED_ERROR, not a hang', async (t) => {
  if (!fixturesReady()) return t.fail('training fixtures missing: run scripts/setup');
  const { dir, cleanup } = tempDir('dist-kill');
  t.teardown(cleanup);
  // torchrun-style workers started by hand, so the test can kill exactly one of them.
  const port = 20000 + (process.pid % 20000);
  const env = (rank: number): NodeJS.ProcessEnv => ({ ...process.env, RANK: String(rank), WORLD_SIZE: '2', MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port), DOVE_DIST_TIMEOUT_MS: '15000' });
  const args = [CLI, 'train', '--init-from', MINI, '--images', IMAGES, '--out', join(dir, 'out'), '--epochs', '1000', '--batch-size', '2', '--no-plots', '--threads', '1'];
  const rank0 = spawn(process.execPath, args, { env: env(0), stdio: ['ignore', 'ignore', 'pipe'] });
  const rank1 = spawn(process.execPath, args, { env: env(1), stdio: ['ignore', 'ignore', 'ignore'] });
  let stderr = '';
  rank0.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  // Wait until training is under way (rank 0 logs steps), then kill rank 1 outright.
  const logFile = join(dir, 'out', 'log.jsonl');
  for (let i = 0; i < 600; i++) {
    const text = await fs.readFile(logFile, 'utf8').catch(() => '');
    if (text.split('\n').filter((l) => l.includes('"type":"step"')).length >= 2) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const killedAt = Date.now();
  rank1.kill('SIGKILL');
  const code = await new Promise<number | null>((resolve) => rank0.once('exit', (c) => resolve(c)));
  const seconds = (Date.now() - killedAt) / 1000;
  t.log(`rank 0 exited ${String(code)} ${seconds.toFixed(1)} s after the kill: ${stderr.trim().split('\n').pop() ?? ''}`);
  t.not(code, 0);
  t.regex(stderr, /DISTRIBUTED_ERROR/);
  t.true(seconds < 30, `took ${seconds} s`);
});

test('the launcher stops the remaining workers when one fails and names it', async (t) => {
  const { dir, cleanup } = tempDir('launch');
  t.teardown(cleanup);
  const script = join(dir, 'worker.js');
  // Rank 1 fails at once; rank 0 would run forever if nobody stopped it.
  await fs.writeFile(script, "if (process.env.RANK === '1') process.exit(3); setInterval(() => {}, 1000);\n");
  const exits: string[] = [];
  const start = Date.now();
  const result = await launchWorkers({ script, args: [], nprocPerNode: 2, killGraceMs: 500, onWorkerExit: (rank, code, signal) => exits.push(`${rank}:${String(code)}:${String(signal)}`) });
  t.is(result.exitCode, 1);
  t.is(result.error, 'worker rank 1 exited with code 3');
  t.true(exits.includes('0:null:SIGTERM'), exits.join(' '));
  t.true(Date.now() - start < 10000);
});
