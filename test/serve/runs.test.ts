// The run monitor's routes on run folders laid out as `dove train --out` writes them: log from an
// offset (half-written lines wait), summary, files, and every way out of the folder refused.
import test from 'ava';
import { appendFileSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fixtureExists, pngOf, tempDir, TINY_DOVE } from '../api/helpers';
import { rawRequest, startServer, type Running } from './helpers';

const ready = fixtureExists(TINY_DOVE);
const serial = ready ? test.serial : test.skip;
const title = (t: string): string => (ready ? t : `${t} (skipped: no fixtures in test/fixtures/generated; run scripts/setup)`);

const SECRET = 'top secret outside the run folder';
let s: Running;
let outside: string;
let runDir: string;
let cleanup: () => void;

function step(n: number): string {
  return `${JSON.stringify({ type: 'step', epoch: 0, step: n, totalSteps: 100, loss: 1 / n, parts: { loss: 1 / n, rec: 0.5 / n }, time: new Date().toISOString() })}\n`;
}

test.before(async () => {
  if (!ready) return;
  const tmp = tempDir('runs');
  cleanup = tmp.cleanup;
  runDir = join(tmp.dir, 'run-a');
  outside = join(tmp.dir, 'secret.txt');
  writeFileSync(outside, SECRET);
  mkdirSync(join(runDir, 'checkpoints', 'step-00000004'), { recursive: true });
  writeFileSync(join(runDir, 'checkpoints', 'step-00000004', 'trainer.json'), '{"step":4}');
  writeFileSync(join(runDir, 'reconstructions-epoch-001.png'), await pngOf(32, 16));
  writeFileSync(join(runDir, 'log.jsonl'), step(1) + step(2));
  symlinkSync(outside, join(runDir, 'link-out.txt'));
  mkdirSync(join(tmp.dir, 'run-b'));
  s = await startServer(TINY_DOVE, { runs: [runDir, join(tmp.dir, 'run-b')] });
});
test.after.always(async () => {
  if (!ready) return;
  await s.close();
  cleanup();
});

async function json<T>(path: string): Promise<{ status: number; body: T }> {
  const r = await fetch(`${s.url}${path}`);
  return { status: r.status, body: (await r.json()) as T };
}

serial(title('GET /v1/runs lists the folders; /v1/runs/:id summarises one'), async (t) => {
  const list = await json<{ runs: { id: string; name: string }[] }>('/v1/runs');
  t.deepEqual(list.body.runs, [{ id: '0', name: 'run-a' }, { id: '1', name: 'run-b' }]);
  const summary = await json<{ finished: boolean; grids: { name: string }[]; checkpoints: { step: number; files: { name: string }[] }[] }>('/v1/runs/0');
  t.is(summary.status, 200);
  t.false(summary.body.finished);
  t.deepEqual(summary.body.grids.map((g) => g.name), ['reconstructions-epoch-001.png']);
  t.is(summary.body.checkpoints[0]!.step, 4);
  t.deepEqual(summary.body.checkpoints[0]!.files.map((f) => f.name), ['checkpoints/step-00000004/trainer.json']);
  const empty = await json<{ logBytes: number; checkpoints: unknown[] }>('/v1/runs/1');
  t.is(empty.body.logBytes, 0);
  t.deepEqual(empty.body.checkpoints, []);
  const missing = await json<{ code: string }>('/v1/runs/7');
  t.is(missing.status, 404);
  t.is(missing.body.code, 'NOT_FOUND');
});

serial(title('the log is read from an offset: new complete lines only, a half line waits'), async (t) => {
  const first = await json<{ offset: number; records: { step: number }[]; reset: boolean }>('/v1/runs/0/log?offset=0');
  t.deepEqual(first.body.records.map((r) => r.step), [1, 2]);
  const none = await json<{ offset: number; records: unknown[] }>(`/v1/runs/0/log?offset=${first.body.offset}`);
  t.deepEqual(none.body.records, []);
  t.is(none.body.offset, first.body.offset);
  const line = step(3);
  appendFileSync(join(runDir, 'log.jsonl'), line.slice(0, 10));
  const half = await json<{ offset: number; records: unknown[] }>(`/v1/runs/0/log?offset=${first.body.offset}`);
  t.deepEqual(half.body.records, [], 'a line still being written is not returned');
  appendFileSync(join(runDir, 'log.jsonl'), line.slice(10) + 'not json\n' + step(4));
  const next = await json<{ offset: number; records: { step: number }[] }>(`/v1/runs/0/log?offset=${first.body.offset}`);
  t.deepEqual(next.body.records.map((r) => r.step), [3, 4], 'a broken line is skipped');
  const beyond = await json<{ reset: boolean; records: unknown[] }>('/v1/runs/0/log?offset=99999999');
  t.true(beyond.body.reset);
  t.is(beyond.body.records.length, 4);
  const bad = await json<{ code: string }>('/v1/runs/0/log?offset=-1');
  t.is(bad.status, 400);
  t.is(bad.body.code, 'INVALID_ARGUMENT');
  t.is((await json<{ code: string }>('/v1/runs/0/log?offset=abc')).status, 400);
  t.is((await json<{ code: string }>('/v1/runs/0/log?from=0')).status, 400);
});

serial(title('files inside a run are served with their type'), async (t) => {
  const png = await fetch(`${s.url}/v1/runs/0/files/reconstructions-epoch-001.png`);
  t.is(png.status, 200);
  t.is(png.headers.get('content-type'), 'image/png');
  t.is(Buffer.from(await png.arrayBuffer()).subarray(1, 4).toString(), 'PNG');
  const nested = await fetch(`${s.url}/v1/runs/0/files/checkpoints/step-00000004/trainer.json`);
  t.is(nested.status, 200);
  t.deepEqual(await nested.json(), { step: 4 });
  t.is((await fetch(`${s.url}/v1/runs/0/files/nothing.png`)).status, 404);
  t.is((await fetch(`${s.url}/v1/runs/0/files/checkpoints`)).status, 404, 'a folder is not a file');
});

serial(title('path traversal: .., encoded dots and slashes, absolute paths, NUL and symlinks are refused'), async (t) => {
  const attempts = [
    '/v1/runs/0/files/../secret.txt',
    '/v1/runs/0/files/../../secret.txt',
    '/v1/runs/0/files/%2e%2e/secret.txt',
    '/v1/runs/0/files/..%2fsecret.txt',
    '/v1/runs/0/files/%2e%2e%2fsecret.txt',
    '/v1/runs/0/files/checkpoints/..%2f..%2fsecret.txt',
    `/v1/runs/0/files/${encodeURIComponent(outside)}`,
    `/v1/runs/0/files//${outside.slice(1)}`,
    '/v1/runs/0/files/..%5csecret.txt',
    '/v1/runs/0/files/secret.txt%00.png',
    '/v1/runs/0/files/link-out.txt',
    '/v1/runs/1/files/../run-a/../secret.txt',
  ];
  for (const path of attempts) {
    const r = await rawRequest(s.url, 'GET', path);
    t.true([400, 403, 404].includes(r.status), `${path}: ${r.status}`);
    t.false(r.body.toString().includes(SECRET), `${path} leaked the file`);
    if (r.status !== 400) t.regex(r.body.toString(), /"code":"(FORBIDDEN|NOT_FOUND)"/, path);
  }
  const link = await rawRequest(s.url, 'GET', '/v1/runs/0/files/link-out.txt');
  t.is(link.status, 403, 'a symlink that leaves the folder is forbidden');
  const dots = await rawRequest(s.url, 'GET', '/v1/runs/0/files/..%2fsecret.txt');
  t.is(dots.status, 403);
});
