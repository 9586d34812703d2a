// Load on `dove serve` over loopback: a `dove serve` child on 127.0.0.1 (its RSS read from /proc),
// and autocannon keeping N connections busy with POST /v1/tokenize for a fixed time. Used by the
// load test (test/serve/load.test.ts) and the benchmark (bench/serve/serve.ts).
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { repoRoot } from '../lib/paths';

export const LOOPBACK = '127.0.0.1';

/** Resident set size of a process in bytes (Linux /proc). */
export function rssOf(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = /VmRSS:\s+(\d+)\s+kB/.exec(status);
  if (kb === null) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(kb[1]) * 1024;
}

export interface ServeChild {
  child: ChildProcess;
  url: string;
  stop: () => Promise<void>;
}

/** `dove serve --host 127.0.0.1 --port 0 …` as a child process; resolves with its URL once it listens. */
export function spawnServe(args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<ServeChild> {
  const root = repoRoot();
  const child = spawn(process.execPath, [join(root, 'dist', 'lib', 'cli', 'main.js'), 'serve', '--host', LOOPBACK, '--port', '0', ...args], { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const stop = (): Promise<void> =>
    new Promise((done) => {
      if (child.exitCode !== null || child.signalCode !== null) return done();
      child.once('exit', () => done());
      child.kill('SIGTERM');
      setTimeout(() => child.kill('SIGKILL'), 15_000).unref();
    });
  return new Promise((done, fail) => {
    let out = '';
    let err = '';
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /dove serve: (http:\/\/[^/\s]+)\//.exec(out);
      if (m !== null) done({ child, url: m[1]!, stop });
    });
    child.stderr!.on('data', (c: Buffer) => {
      err += c.toString();
    });
    child.once('exit', (code) => fail(new Error(`dove serve exited with ${code} before listening: ${err}`)));
  });
}

/**
 * Waits until the server has nothing queued or running: autocannon ends a run by dropping its
 * connections, and the forward already running for them still finishes.
 */
export async function waitIdle(url: string, timeoutMs = 60_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const { queue } = (await (await fetch(`${url}/healthz`)).json()) as { queue: { waiting: number; running: number } };
    if (queue.waiting === 0 && queue.running === 0) return;
    if (Date.now() > end) throw new Error(`${url} still busy after ${timeoutMs} ms: ${JSON.stringify(queue)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface LoadResult {
  connections: number;
  seconds: number;
  /** Completed requests per second with status 200. */
  okPerSecond: number;
  ok: number;
  /** Status → count, every status seen. */
  statuses: { [status: string]: number };
  /** Connection errors and timeouts (a request that got no answer at all). */
  errors: number;
  timeouts: number;
  /** 503s that lacked a numeric Retry-After header. */
  refusedWithoutRetryAfter: number;
  latencyMs: { p50: number; p90: number; p99: number; max: number };
}

/**
 * `connections` clients each POST `body` to /v1/tokenize back to back for `seconds`, or (with
 * `amount`) until that many requests were answered.
 */
export async function loadRun(url: string, body: Buffer, contentType: string, connections: number, seconds: number, amount?: number): Promise<LoadResult> {
  let refusedWithoutRetryAfter = 0;
  const result = await autocannon({
    url,
    connections,
    ...(amount === undefined ? { duration: seconds } : { amount }),
    timeout: 60,
    requests: [
      {
        method: 'POST',
        path: '/v1/tokenize',
        headers: { 'content-type': contentType, accept: 'application/octet-stream' },
        body,
        onResponse: (status, _body, _context, headers) => {
          if (status === 503 && !/^\d+$/.test(String((headers as { [k: string]: unknown })['retry-after'] ?? ''))) refusedWithoutRetryAfter++;
        },
      },
    ],
  });
  await waitIdle(url);
  const statuses: { [status: string]: number } = {};
  for (const [status, stat] of Object.entries(result.statusCodeStats ?? {})) statuses[status] = stat.count ?? 0;
  const ok = statuses['200'] ?? 0;
  return {
    connections,
    seconds: result.duration,
    okPerSecond: ok / result.duration,
    ok,
    statuses,
    errors: result.errors,
    timeouts: result.timeouts,
    refusedWithoutRetryAfter,
    latencyMs: { p50: result.latency.p50, p90: result.latency.p90, p99: result.latency.p99, max: result.latency.max },
  };
}
