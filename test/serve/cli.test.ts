// `dove serve` as a command: help, flag errors, missing run folders and models, repeated --run,
// loopback by default, and a clean exit on SIGTERM.
import test from 'ava';
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { CLI, fixtureExists, ROOT, runCli, tempDir, TINY_DOVE } from '../api/helpers';

const ready = fixtureExists(TINY_DOVE);
const withModel = ready ? test : test.skip;
const why = ready ? '' : ' (skipped: no fixtures in test/fixtures/generated; run scripts/setup)';

test('dove serve --help names the routes, the limits and the loopback default', async (t) => {
  const r = await runCli(['serve', '--help']);
  t.is(r.code, 0);
  for (const text of ['Usage: dove serve', 'POST /v1/tokenize', 'POST /v1/reconstruct', 'GET  /v1/model', '--max-queue', '--max-batch', '--timeout-ms', 'default 127.0.0.1', 'Examples:']) {
    t.true(r.stdout.includes(text), text);
  }
});

test('dove serve: bad flags exit 2 with the expected-but-received wording', async (t) => {
  const port = await runCli(['serve', '--port', '70000']);
  t.is(port.code, 2);
  t.regex(port.stderr, /Expected integer between 0 and 65535 for --port but received 70000/);
  const batch = await runCli(['serve', '--max-batch', '0']);
  t.is(batch.code, 2);
  t.regex(batch.stderr, /Expected integer between 1 and 1024 for --max-batch but received 0/);
  const run = await runCli(['serve', '--run']);
  t.is(run.code, 2);
  t.regex(run.stderr, /Missing value for --run/);
  const extra = await runCli(['serve', 'photo.jpg']);
  t.is(extra.code, 2);
});

withModel(`dove serve: a missing run folder or model is an error before listening${why}`, async (t) => {
  const { dir, cleanup } = tempDir('serve-cli');
  t.teardown(cleanup);
  const run = await runCli(['serve', '--model', TINY_DOVE, '--port', '0', '--run', join(dir, 'nope')]);
  t.is(run.code, 1);
  t.regex(run.stderr, /nope: run folder not found \[FILE_NOT_FOUND\]/);
  const model = await runCli(['serve', '--model', join(dir, 'missing.pt'), '--port', '0']);
  t.is(model.code, 1);
  t.regex(model.stderr, /FILE_NOT_FOUND/);
});

withModel(`dove serve: listens on 127.0.0.1 unless told, takes --run twice, exits 0 on SIGTERM${why}`, async (t) => {
  const { dir, cleanup } = tempDir('serve-cli2');
  t.teardown(cleanup);
  mkdirSync(join(dir, 'a'));
  mkdirSync(join(dir, 'b'));
  // No --host: the default must be loopback.
  const child = spawn(process.execPath, [CLI, 'serve', '--model', TINY_DOVE, '--port', '0', '--run', join(dir, 'a'), `--run=${join(dir, 'b')}`], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /dove serve: (http:\/\/[^/\s]+)\//.exec(out);
      if (m !== null) resolve(m[1]!);
    });
    void exited.then((code) => reject(new Error(`exited with ${code}`)));
  });
  t.regex(url, /^http:\/\/127\.0\.0\.1:\d+$/);
  const runs = (await (await fetch(`${url}/v1/runs`)).json()) as { runs: { name: string }[] };
  t.deepEqual(runs.runs.map((r) => r.name), ['a', 'b']);
  child.kill('SIGTERM');
  t.is(await exited, 0);
});
