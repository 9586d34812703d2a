// `dove train` end to end: progress on stderr, SIGINT finishes the step, checkpoints and exits 0,
// and --checkpoint resumes from where it stopped.
import test from 'ava';
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { readState, resolveCheckpoint } from '../../lib/trainer/checkpoint';
import { CLI, fixturesReady, IMAGES, MINI, tempDir } from './helpers';

function steps(text: string): number {
  return text.split('\n').filter((l) => l.includes('"type":"step"')).length;
}

test('SIGINT finishes the step, checkpoints and exits 0; --checkpoint resumes', async (t) => {
  if (!fixturesReady()) return t.fail('training fixtures missing: run scripts/setup');
  const { dir, cleanup } = tempDir('cli');
  t.teardown(cleanup);
  const out = join(dir, 'out');
  const args = [CLI, 'train', '--init-from', MINI, '--images', IMAGES, '--out', out, '--epochs', '1000', '--batch-size', '4', '--threads', '1', '--no-plots'];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  for (let i = 0; i < 600 && steps(await fs.readFile(join(out, 'log.jsonl'), 'utf8').catch(() => '')) < 2; i++) await new Promise((r) => setTimeout(r, 100));
  child.kill('SIGINT');
  t.is(await exited, 0, stderr);
  t.regex(stdout, /stopped at step (\d+); checkpoint /);
  t.regex(stderr, /SIGINT: finishing the step and checkpointing/);
  t.regex(stderr, /loss \d+\.\d+ tokens\/image \d+(\.\d)? [\d.]+ images\/s ETA/);
  const stoppedAt = Number(/stopped at step (\d+)/.exec(stdout)![1]);
  const state = await readState(await resolveCheckpoint(out));
  t.is(state.step, stoppedAt);

  const resumed = spawn(process.execPath, [...args, '--checkpoint', out, '--max-steps', String(stoppedAt + 1)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out2 = '';
  let err2 = '';
  resumed.stdout.on('data', (d: Buffer) => (out2 += d.toString()));
  resumed.stderr.on('data', (d: Buffer) => (err2 += d.toString()));
  t.is(await new Promise<number | null>((resolve) => resumed.once('exit', (code) => resolve(code))), 0, err2);
  t.regex(out2, new RegExp(`finished at step ${stoppedAt + 1};`));
});

test('usage errors name the flag and exit 2', async (t) => {
  const run = (args: string[]): Promise<{ code: number | null; stderr: string }> =>
    new Promise((resolve) => {
      const child = spawn(process.execPath, [CLI, 'train', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.once('exit', (code) => resolve({ code, stderr }));
    });
  const a = await run(['--images', IMAGES]);
  t.is(a.code, 2);
  t.regex(a.stderr, /Missing --out <dir>/);
  const b = await run(['--images', IMAGES, '--out', '/tmp/x', '--batch-size', '0']);
  t.is(b.code, 2);
  t.regex(b.stderr, /Expected integer between 1 and 65536 for --batch-size but received 0/);
  const c = await run(['--images', IMAGES, '--out', '/tmp/x', '--qdove']);
  t.is(c.code, 2);
  t.regex(c.stderr, /--qdove needs --annotations/);
});
