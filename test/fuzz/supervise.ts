// Runs a fuzz target in a child process (child.ts) and watches it: a child that stops sending beats
// for `hangMs` is killed and reported as a hang, one that dies by a signal or exits without a result
// as a crash, one whose target broke the property as a finding. Used by the short run in npm test
// (fuzz.test.ts) and by the long run (scripts/fuzz -> main.ts).
import { spawn } from 'node:child_process';
import { join } from 'node:path';

export type Outcome = 'ok' | 'finding' | 'hang' | 'crash';

export interface SupervisedRun {
  target: string;
  seed: number;
  runs: number;
  ms: number;
  outcome: Outcome;
  /** The failing input (base64) and the error, for a finding. */
  finding?: { input: string; message: string; stack?: string };
  /** Exit code or signal of a crash, silence of a hang, and the child's last stderr. */
  detail?: string;
}

export interface SuperviseOptions {
  seed: number;
  ms: number;
  /** Silence after which the child counts as hung (default 120 s: inputs take milliseconds, but a loaded machine stretches them). */
  hangMs?: number;
  perInputMs?: number;
  replayFile?: string;
  module?: string;
  /** Prefix for the child command, e.g. ['nice', '-n', '10']. */
  wrapper?: string[];
}

const CHILD = join(__dirname, 'child.js');

export function superviseTarget(target: string, options: SuperviseOptions): Promise<SupervisedRun> {
  return new Promise((resolvePromise) => {
    const started = Date.now();
    const args = JSON.stringify({ target, seed: options.seed, ms: options.ms, perInputMs: options.perInputMs, replayFile: options.replayFile, module: options.module });
    const command = [...(options.wrapper ?? []), process.execPath, CHILD, args];
    const child = spawn(command[0]!, command.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    let runs = 0;
    let lastSign = Date.now();
    let done: SupervisedRun | undefined;
    let hung = false;
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      lastSign = Date.now();
      stdout += chunk;
      let nl;
      while ((nl = stdout.indexOf('\n')) >= 0) {
        const line = stdout.slice(0, nl);
        stdout = stdout.slice(nl + 1);
        let event: { event?: string; runs?: number; ms?: number; finding?: SupervisedRun['finding'] };
        try {
          event = JSON.parse(line) as typeof event;
        } catch {
          continue;
        }
        if (typeof event.runs === 'number') runs = event.runs;
        if (event.event === 'done') {
          done = { target, seed: options.seed, runs, ms: event.ms ?? Date.now() - started, outcome: event.finding ? 'finding' : 'ok', finding: event.finding ?? undefined };
        }
      }
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      stderr = (stderr + chunk).slice(-4000);
    });
    const hangMs = options.hangMs ?? 120_000;
    const watchdog = setInterval(() => {
      if (Date.now() - lastSign > hangMs) {
        hung = true;
        child.kill('SIGKILL');
      }
    }, 250);
    child.on('close', (code, signal) => {
      clearInterval(watchdog);
      if (done !== undefined && code === 0) return resolvePromise(done);
      const ms = Date.now() - started;
      if (hung) return resolvePromise({ target, seed: options.seed, runs, ms, outcome: 'hang', detail: `no sign of life for ${hangMs} ms after ${runs} inputs; ${stderr.trim()}` });
      resolvePromise({ target, seed: options.seed, runs, ms, outcome: 'crash', detail: `exit ${signal ?? code} after ${runs} inputs; ${stderr.trim()}` });
    });
  });
}
