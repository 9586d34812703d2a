// The throughput section, interleaved: one long-lived worker process per runtime (bench/lib/worker.ts),
// driven round by round. For each case every runtime is prepared (inputs, warm-up), then measures for
// its share of a round, in the order A B C D E, then E D C B A, and so on. Whatever else the machine
// does during a round lands on all runtimes of that round, so a ratio taken within a round compares
// work done in the same minutes; the report gives the median of the per-round ratios and their spread.
import { spawn, type ChildProcess } from 'node:child_process';
import { appendAll, medianOf } from '../../lib/base/arrays';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { errorText, toRow, type CaseSpec, type ModelFiles, type Op, type RowError, type Runtime, type ThroughputRow } from './schema';
import { summarize } from './timing';
import type { WorkerCommand } from './worker';

export interface WorkerSpec {
  runtime: Runtime;
  command: string;
  args: string[];
  /** Which ops it runs (ORT and the compiled package: inference only). */
  ops: readonly Op[];
  /** Why it sits out for a model (no ONNX graphs, no package), or null. */
  unavailable: (m: ModelFiles) => string | null;
}

interface Reply {
  error?: string;
  samplesMs?: number[];
  versions?: Record<string, string>;
  threads?: number;
}

/** A running worker: one command at a time, each answered by one line on its fd 3. */
class Worker {
  private readonly child: ChildProcess;
  private readonly lines: AsyncIterator<string>;
  private exited: string | null = null;

  constructor(readonly spec: WorkerSpec, env: NodeJS.ProcessEnv, cwd: string, log: (s: string) => void) {
    this.child = spawn(spec.command, spec.args, { env, cwd, stdio: ['pipe', 'pipe', 'pipe', 'pipe'] });
    const prefix = (chunk: Buffer): void => {
      for (const l of chunk.toString('utf8').split('\n')) if (l.trim().length > 0) log(`  [${spec.runtime}] ${l}`);
    };
    this.child.stdout!.on('data', prefix);
    this.child.stderr!.on('data', prefix);
    this.child.on('exit', (code, signal) => {
      this.exited ??= `exited with ${code ?? signal}`;
    });
    this.child.on('error', (e) => {
      this.exited = `could not start ${spec.command}: ${e.message}`;
    });
    this.lines = createInterface({ input: this.child.stdio[3] as Readable, crlfDelay: Infinity })[Symbol.asyncIterator]();
  }

  /** Sends a command and waits for its reply (or for the worker to die). */
  async ask(command: WorkerCommand, timeoutMs: number): Promise<Reply> {
    if (this.exited !== null) throw new Error(`${this.spec.runtime} worker ${this.exited}`);
    this.child.stdin!.write(`${JSON.stringify(command)}\n`);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        // A late reply would be read as the answer to the next command: this worker is done.
        this.exited = `killed after no reply to '${command.cmd}' within ${Math.round(timeoutMs / 1000)} s`;
        this.child.kill('SIGKILL');
        reject(new Error(`${this.spec.runtime} worker: ${this.exited}`));
      }, timeoutMs);
    });
    try {
      const next = await Promise.race([this.lines.next(), timeout]);
      if (next.done) throw new Error(`${this.spec.runtime} worker ${this.exited ?? 'closed its reply pipe'}`);
      const reply = JSON.parse(next.value) as Reply;
      if (reply.error !== undefined) throw new Error(reply.error);
      return reply;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Asks it to exit; kills it (only this process, which we started) if it does not within 30 s. */
  async stop(): Promise<void> {
    if (this.exited !== null || this.child.exitCode !== null) return;
    const gone = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.stdin!.write('{"cmd": "exit"}\n');
    this.child.stdin!.end();
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 30_000);
    await gone;
    clearTimeout(timer);
  }
}

export interface InterleavedResult {
  rows: ThroughputRow[];
  errors: RowError[];
  versions: Partial<Record<Runtime, Record<string, string>>>;
}

/**
 * Measures every case of one model with every worker that runs it. `timeoutMs` bounds each command
 * (a warm-up or a round share); a worker that fails a case sits that case out, one that dies sits out
 * the rest of the model.
 */
export async function runInterleaved(
  model: ModelFiles,
  cases: CaseSpec[],
  specs: WorkerSpec[],
  options: { env: NodeJS.ProcessEnv; cwd: string; timeoutMs: number; log: (s: string) => void },
): Promise<InterleavedResult> {
  const out: InterleavedResult = { rows: [], errors: [], versions: {} };
  const workers: Worker[] = [];
  for (const spec of specs) {
    const why = spec.unavailable(model);
    if (why !== null) {
      for (const c of cases) for (const op of c.ops) if (spec.ops.includes(op)) out.errors.push({ runtime: spec.runtime, config: model.config, batch: c.batch, op, error: why });
      continue;
    }
    const w = new Worker(spec, options.env, options.cwd, options.log);
    try {
      const info = await w.ask({ cmd: 'info' }, 5 * 60_000);
      out.versions[spec.runtime] = { ...info.versions, threads: String(info.threads) };
      workers.push(w);
    } catch (e) {
      options.log(`${spec.runtime}: ${errorText(e)}`);
      await w.stop();
    }
  }
  try {
    for (const c of cases) {
      for (const op of c.ops) {
        const label = `${model.config} b${c.batch} ${op}`;
        const active: Worker[] = [];
        for (const w of workers.filter((x) => x.spec.ops.includes(op))) {
          try {
            await w.ask({ cmd: 'prepare', case: c, op }, options.timeoutMs * (c.loop.warmup + 1));
            active.push(w);
          } catch (e) {
            out.errors.push({ runtime: w.spec.runtime, config: model.config, batch: c.batch, op, error: errorText(e) });
            options.log(`${label} ${w.spec.runtime}: ${errorText(e)}`);
          }
        }
        const samples = new Map<Worker, number[]>(active.map((w) => [w, []]));
        const roundMs = new Map<Worker, number[]>(active.map((w) => [w, []]));
        for (let r = 0; r < c.rounds; r++) {
          const order = r % 2 === 0 ? active : [...active].reverse();
          for (const w of order) {
            if (!samples.has(w)) continue;
            try {
              const reply = await w.ask({ cmd: 'measure', loop: c.loop }, options.timeoutMs);
              const ms = reply.samplesMs ?? [];
              if (ms.length === 0) throw new Error('measure returned no samples');
              appendAll(samples.get(w)!, ms);
              roundMs.get(w)!.push(medianOf(ms));
            } catch (e) {
              out.errors.push({ runtime: w.spec.runtime, config: model.config, batch: c.batch, op, error: errorText(e) });
              options.log(`${label} ${w.spec.runtime}: ${errorText(e)}`);
              samples.delete(w);
            }
          }
          const line = active.filter((w) => samples.has(w)).map((w) => `${w.spec.runtime} ${roundMs.get(w)!.at(-1)!.toFixed(1)} ms`).join(', ');
          options.log(`${label} round ${r + 1}/${c.rounds}: ${line}`);
        }
        for (const w of active) {
          const s = samples.get(w);
          if (s !== undefined) out.rows.push(toRow(w.spec.runtime, c, op, summarize(s), roundMs.get(w)!));
          try {
            await w.ask({ cmd: 'release' }, options.timeoutMs);
          } catch (e) {
            options.log(`${label} ${w.spec.runtime} release: ${errorText(e)}`);
          }
        }
      }
    }
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
  }
  return out;
}
