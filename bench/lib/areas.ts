// The per-area benchmarks other parts of the project own (bench/tokenize, bench/train, bench/model,
// bench/boundary), run through the same per-cell commands their own scripts use, with shorter
// durations so the joined run fits its budget. Each adapter returns rows for the report as is.
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { medianOf } from '../../lib/base/arrays';
import { runSection } from './child';
import { roundRatio } from './ratios';
import { pythonPath, repoRoot, tmpDir } from './paths';

const run = promisify(execFile);

export interface AreaRow {
  [column: string]: string | number | null;
}

export interface AreaResult {
  area: string;
  title: string;
  /** Column order for the markdown table. */
  columns: string[];
  rows: AreaRow[];
  notes: string[];
  seconds: number;
}

async function lastJsonLine(cmd: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<Record<string, unknown>> {
  const { stdout } = await run(cmd, args, { cwd: repoRoot(), env, timeout: timeoutMs, maxBuffer: 64 * 2 ** 20 });
  const line = stdout.trim().split('\n').filter((l) => l.startsWith('{')).pop();
  if (line === undefined) throw new Error(`${cmd} ${args.join(' ')} printed no JSON line`);
  return JSON.parse(line) as Record<string, unknown>;
}

function num(v: unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

function errText(e: unknown): string {
  const err = e as { stderr?: string; message?: string };
  return (err.stderr || err.message || String(e)).trim().split('\n').slice(-2).join(' | ');
}

function medianOrNull(values: number[]): number | null {
  return values.length === 0 ? null : medianOf(values);
}

/**
 * bench/tokenize: images/s of tokenize + reconstruct from JPEG files (decode included), Node API vs
 * PIL + PyTorch, on the shared exports, in rounds (node, python, then python, node, ...; `seconds`
 * each). official-70m at batch 16 is left to bench/tokenize/run.sh (two warm-up and two timed
 * batches there cost several minutes per side).
 */
export async function tokenizeArea(
  models: { config: string; pt: string }[],
  batches: number[],
  seconds: number,
  rounds: number,
  full: boolean,
  env: NodeJS.ProcessEnv,
): Promise<AreaResult | null> {
  const root = repoRoot();
  const nodeBench = join(root, 'dist', 'bench', 'tokenize', 'bench.js');
  const pyBench = join(root, 'bench', 'tokenize', 'bench_python.py');
  const maker = join(root, 'dist', 'bench', 'tokenize', 'make-images.js');
  if (!existsSync(nodeBench) || !existsSync(pyBench) || !existsSync(maker)) return null;
  const started = Date.now();
  const images = join(tmpDir(), 'tokenize-images');
  const notes: string[] = [];
  if (!existsSync(images)) await run(process.execPath, [maker, images, '32'], { cwd: root, env });
  const rows: AreaRow[] = [];
  for (const m of models) {
    for (const b of batches) {
      if (m.config !== 'tiny' && b > 1 && !full) {
        notes.push(`${m.config} batch ${b} skipped (budget); run bench/tokenize/run.sh or npm run bench -- --full`);
        continue;
      }
      const common = ['--model', m.pt, '--images', images, '--batch', String(b), '--seconds', String(seconds)];
      const node: number[] = [];
      const python: number[] = [];
      let path = '';
      const sides = [
        async () => {
          const out = await lastJsonLine(process.execPath, [nodeBench, ...common], env, 15 * 60_000);
          const v = num(out.images_per_s);
          if (v !== null) node.push(v);
          path = typeof out.path === 'string' ? out.path : path;
        },
        async () => {
          const v = num((await lastJsonLine(pythonPath(), [pyBench, ...common], env, 15 * 60_000)).images_per_s);
          if (v !== null) python.push(v);
        },
      ];
      try {
        for (let r = 0; r < rounds; r++) for (const side of r % 2 === 0 ? sides : [...sides].reverse()) await side();
      } catch (e) {
        notes.push(`${m.config} b${b}: ${errText(e)}`);
      }
      const row: AreaRow = {
        model: m.config,
        batch: b,
        'node path': path || null,
        'node img/s': medianOrNull(node),
        'python img/s': medianOrNull(python),
        'node/python': node.length === rounds && python.length === rounds ? roundRatio(node, python) : null,
      };
      rows.push(row);
      console.error(`  [tokenize] ${m.config} b${b}: node ${node.join(', ')} python ${python.join(', ')} img/s`);
    }
  }
  return {
    area: 'tokenize',
    title: `Tokenize + reconstruct from JPEG files (bench/tokenize: decode, resize, encode, EOS, decode; ${rounds} rounds of ${seconds} s per side, alternating)`,
    columns: ['model', 'batch', 'node path', 'node img/s', 'python img/s', 'node/python'],
    rows,
    notes,
    seconds: (Date.now() - started) / 1000,
  };
}

interface OverheadOut {
  nodeUsPerCall: number;
  nodeSyncUsPerCall: number;
  calls: number;
  inGBps: number;
  outGBps: number;
  roundTripGBps: number;
  memcpyGBps: number;
  sameAddressIn: boolean;
  sameAddressOut: boolean;
}

/**
 * The boundary's cost: a scripted identity method called back to back from Node (run() + await) and
 * from Python (same file, same libtorch), and a 256 MiB tensor crossing in, through a call, and out.
 */
export async function boundaryArea(env: NodeJS.ProcessEnv, calls: number, threads: number): Promise<AreaResult> {
  const started = Date.now();
  const noopPt = join(tmpDir(), 'noop.pt');
  const py = await lastJsonLine(pythonPath(), [join(repoRoot(), 'bench', 'peers', 'noop_module.py'), noopPt, String(calls)], env, 10 * 60_000);
  const node = await runSection<OverheadOut>('boundary', process.execPath, [join(repoRoot(), 'dist', 'bench', 'peers', 'call-overhead.js')], { noopPt, calls, threads }, { env, timeoutMs: 10 * 60_000, cwd: repoRoot() });
  if (!node.ok || node.value === null) throw new Error(`call-overhead: ${node.error}`);
  const n = node.value;
  const rows: AreaRow[] = [
    { runtime: 'Node addon, runSync', 'µs per call': n.nodeSyncUsPerCall, 'vs Python': num(py.pythonUsPerCall) === null ? null : n.nodeSyncUsPerCall / (py.pythonUsPerCall as number) },
    { runtime: 'Node addon, await run()', 'µs per call': n.nodeUsPerCall, 'vs Python': num(py.pythonUsPerCall) === null ? null : n.nodeUsPerCall / (py.pythonUsPerCall as number) },
    { runtime: 'Python TorchScript', 'µs per call': num(py.pythonUsPerCall), 'vs Python': 1 },
  ];
  return {
    area: 'boundary',
    title: 'Boundary: per-call overhead of a no-op TorchScript method (best of 5 batches of sequential calls)',
    columns: ['runtime', 'µs per call', 'vs Python'],
    rows,
    notes: [
      `256 MiB float32 tensor: in (tensorFromArray) ${n.inGBps.toFixed(0)} GB/s, out (data() view) ${n.outGBps.toFixed(0)} GB/s, ` +
        `through a noop run() and back ${n.roundTripGBps.toFixed(0)} GB/s; a memcpy of the same buffer runs at ${n.memcpyGBps.toFixed(1)} GB/s, ` +
        `so rates far above it mean no copy. Shared memory proven: write through the tensor visible in JS ${n.sameAddressIn ? 'yes' : 'NO'}, ` +
        `result at the same address ${n.sameAddressOut ? 'yes' : 'NO'}.`,
      `Python: torch.jit.load of the same file, m.noop(x) in a loop (no thread hop). Node runSync: the same call on the JS thread (no hop; blocks the event loop, for small ops). Node await run(): one hop to the module's own worker thread and back per call.`,
    ],
    seconds: (Date.now() - started) / 1000,
  };
}

/**
 * bench/boundary (the native core's own benchmark): no-op call overhead through the raw binding, the
 * public API, 64 calls in flight, and Python direct / thread-pool calls, plus a 256 MiB tensor in,
 * through a call and out, on test/fixtures/generated/core/core.pt.
 */
export async function boundaryBenchArea(env: NodeJS.ProcessEnv, calls: number): Promise<AreaResult | null> {
  const root = repoRoot();
  const nodeScript = join(root, 'dist', 'bench', 'boundary', 'boundary.js');
  const pyScript = join(root, 'bench', 'boundary', 'boundary.py');
  const model = join(root, 'test', 'fixtures', 'generated', 'core', 'core.pt');
  if (!existsSync(nodeScript) || !existsSync(pyScript) || !existsSync(model)) return null;
  const started = Date.now();
  const args = ['--model', model, '--calls', String(calls)];
  const n = await lastJsonLine(process.execPath, ['--expose-gc', nodeScript, ...args], env, 10 * 60_000);
  const p = await lastJsonLine(pythonPath(), [pyScript, ...args], env, 10 * 60_000);
  const us = (o: Record<string, unknown>, k: string): number | null => num(o[k]);
  const sUs = (o: Record<string, unknown>, k: string): number | null => (num(o[k]) === null ? null : (o[k] as number) * 1e6);
  const rows: AreaRow[] = [
    { metric: 'no-op: Node await run() vs Python direct call (µs)', Node: us(n, 'noopUs'), Python: us(p, 'noopUs') },
    { metric: 'no-op: Node public ScriptModule.run vs Python thread pool (µs)', Node: us(n, 'noopPublicUs'), Python: us(p, 'noopPoolUs') },
    { metric: 'no-op: Node, 64 calls in flight (µs per call)', Node: us(n, 'noopPipelinedUs'), Python: null },
    { metric: 'no-op: Node runSync vs Python direct call (µs)', Node: us(n, 'noopSyncUs'), Python: us(p, 'noopUs') },
    { metric: 'no-op: Node public ScriptModule.runSync vs Python direct call (µs)', Node: us(n, 'noopSyncPublicUs'), Python: us(p, 'noopUs') },
    { metric: 'no tensor: Node runSync vs Python direct call (µs)', Node: us(n, 'nothingSyncUs'), Python: us(p, 'nothingUs') },
    { metric: `${num(n.mib) ?? 256} MiB in: array -> tensor (µs)`, Node: sUs(n, 'inS'), Python: sUs(p, 'inS') },
    { metric: `${num(n.mib) ?? 256} MiB through a noop call (µs)`, Node: sUs(n, 'runS'), Python: sUs(p, 'runS') },
    { metric: `${num(n.mib) ?? 256} MiB out: tensor -> array (µs)`, Node: sUs(n, 'outS'), Python: sUs(p, 'outS') },
    { metric: `${num(n.mib) ?? 256} MiB memcpy baseline (µs)`, Node: sUs(n, 'copyS'), Python: sUs(p, 'copyS') },
  ];
  return {
    area: 'boundary-bench',
    title: 'Boundary, as bench/boundary measures it (core.pt fixture; median of 5 rounds)',
    columns: ['metric', 'Node', 'Python'],
    rows,
    notes: ['In/out times in µs for 256 MiB: a few µs means no copy (a memcpy of the same buffer is the baseline row).'],
    seconds: (Date.now() - started) / 1000,
  };
}

interface TrainSpeed {
  stepsPerSecond: number;
  cpuSecondsPerStep: number;
}

/** bench/train (the Trainer's own benchmark): PyTorch loop vs Node engine vs Node Trainer with its data pipeline, in rounds. */
export async function trainBenchArea(env: NodeJS.ProcessEnv, configs: string, batches: string, steps: number, threads: number, rounds: number): Promise<AreaResult | null> {
  const root = repoRoot();
  const script = join(root, 'dist', 'bench', 'train', 'train.js');
  if (!existsSync(script)) return null;
  const started = Date.now();
  await run(process.execPath, [script, '--configs', configs, '--batch', batches, '--steps', String(steps), '--threads', String(threads), '--rounds', String(rounds)], {
    cwd: root,
    env,
    timeout: 60 * 60_000,
    maxBuffer: 16 * 2 ** 20,
  });
  const file = join(root, 'bench', 'results', `train-${new Date().toISOString().slice(0, 10)}.json`);
  type Rounds = { python: TrainSpeed[]; engine: TrainSpeed[]; trainer: TrainSpeed[] };
  const data = JSON.parse(readFileSync(file, 'utf8')) as { rows: { config: string; batch: number; python: TrainSpeed; engine: TrainSpeed; trainer: TrainSpeed; rounds: Rounds }[] };
  const stepsOf = (s: TrainSpeed[]): number[] => s.map((x) => x.stepsPerSecond);
  return {
    area: 'train',
    title: `Training steps/s (bench/train: ${rounds} rounds of ${steps} timed steps per side, alternating, ${threads} threads; medians over rounds; CPU seconds per step in the last column pair)`,
    columns: ['config', 'batch', 'PyTorch loop steps/s', 'Node engine steps/s', 'Node Trainer steps/s', 'engine/PyTorch', 'Trainer/PyTorch', 'PyTorch CPU s/step', 'Node engine CPU s/step'],
    rows: data.rows.map((r) => ({
      config: r.config,
      batch: r.batch,
      'PyTorch loop steps/s': r.python.stepsPerSecond,
      'Node engine steps/s': r.engine.stepsPerSecond,
      'Node Trainer steps/s': r.trainer.stepsPerSecond,
      'engine/PyTorch': roundRatio(stepsOf(r.rounds.engine), stepsOf(r.rounds.python)),
      'Trainer/PyTorch': roundRatio(stepsOf(r.rounds.trainer), stepsOf(r.rounds.python)),
      'PyTorch CPU s/step': r.python.cpuSecondsPerStep,
      'Node engine CPU s/step': r.engine.cpuSecondsPerStep,
    })),
    notes: ['Ratios: median (min–max) over rounds of the per-round ratio of steps/s.'],
    seconds: (Date.now() - started) / 1000,
  };
}
