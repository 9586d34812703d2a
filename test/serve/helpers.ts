// Shared by the serve tests: an in-process server on 127.0.0.1 with a free port, raw HTTP requests (fetch would normalise `..` away), the
// browser, and a real `dove train` run that keeps training while a test watches it.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { DoveServer, type DoveServerOptions } from '../../lib/serve/server';
import { Tokenizer } from '../../lib/model/tokenizer';
import { LOOPBACK } from '../../bench/serve/load';
import { CLI, ROOT } from '../api/helpers';

export const TRAIN_FIXTURES = join(ROOT, 'test', 'fixtures', 'generated', 'train');
export const TRAIN_MINI = join(TRAIN_FIXTURES, 'train-mini.pt');
export const TRAIN_IMAGES = join(TRAIN_FIXTURES, 'images');
export const SAMPLE_JPG = join(ROOT, 'assets', 'sample.jpg');

export interface Running {
  server: DoveServer;
  url: string;
  tokenizer: Tokenizer;
  close: () => Promise<void>;
}

/** Loads `model` (undefined = the embedded model) and serves it on a free loopback port. */
export async function startServer(model: string | undefined, options: Omit<DoveServerOptions, 'tokenizer'> = {}): Promise<Running> {
  const tokenizer = await Tokenizer.load(model);
  const lines: string[] = [];
  const server = await DoveServer.create({ tokenizer, log: (line) => lines.push(line), ...options });
  const url = await server.listen(LOOPBACK, 0);
  return {
    server,
    url,
    tokenizer,
    close: async () => {
      await server.close();
      tokenizer.dispose();
    },
  };
}

export interface RawResponse {
  status: number;
  headers: { [name: string]: string | string[] | undefined };
  body: Buffer;
}

/** One request with the path sent exactly as given (no URL normalisation). */
export function rawRequest(url: string, method: string, path: string, body?: Buffer, headers: { [name: string]: string } = {}): Promise<RawResponse> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: hostname, port: Number(port), method, path, headers: { ...headers, ...(body ? { 'content-length': String(body.length) } : {}) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Debian's chromium, or one named by CHROMIUM; undefined when none is installed. */
export function chromiumPath(): string | undefined {
  const candidates = [process.env.CHROMIUM, '/usr/bin/chromium', '/usr/bin/chromium-browser'].filter((p): p is string => p !== undefined && p !== '');
  return candidates.find((p) => existsSync(p));
}

export interface TrainingRun {
  child: ChildProcess;
  /** The last few KiB the trainer wrote to stderr (read continuously so the pipe never fills). */
  stderr: () => string;
  stop: () => Promise<void>;
}

export interface TrainingOptions {
  /** The export to train (default: the training fixtures' small model). */
  model?: string;
  /** Training images (default: the training fixtures' images). */
  images?: string;
  /** Default 100000: a run that is still training whenever the test looks. */
  epochs?: number;
  batchSize?: number;
  threads?: number;
  /** Images in each epoch's reconstruction grid (default 2). */
  sampleImages?: number;
  extra?: readonly string[];
}

/** A real `dove train` on the fixture images that runs until stopped (many epochs). */
export function startTraining(outDir: string, options: TrainingOptions = {}): TrainingRun {
  const threads = String(options.threads ?? 1);
  const args = [
    CLI, 'train', '--images', options.images ?? TRAIN_IMAGES, '--out', outDir, '--init-from', options.model ?? TRAIN_MINI, '--epochs', String(options.epochs ?? 100_000),
    '--batch-size', String(options.batchSize ?? 2), '--threads', threads, '--sample-images', String(options.sampleImages ?? 2), '--keep-last', '2', ...(options.extra ?? []),
  ];
  const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, OMP_NUM_THREADS: threads } });
  let err = '';
  child.stderr!.on('data', (c: Buffer) => {
    err = (err + c.toString()).slice(-4096);
  });
  const stop = (): Promise<void> =>
    new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGKILL');
    });
  return { child, stderr: () => err, stop };
}

/** Polls `check` every `everyMs` until it returns a value or `timeoutMs` passes. */
export async function waitFor<T>(what: string, check: () => T | undefined | Promise<T | undefined>, timeoutMs: number, everyMs = 200): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
