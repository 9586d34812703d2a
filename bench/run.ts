// `npm run bench`: one run that joins every area's numbers and adds the peers, on one machine.
//   node dist/bench/run.js [--quick] [--full] [--only throughput,boundary,areas,memory,eventloop]
//                          [--configs tiny,official-70m] [--batches 1,16] [--threads 2] [--device cuda:0]
//                          [--omp-wait passive|active|default] [--runtimes python-eager,node-addon,...]
// Writes bench/results/<date>.json and .md (bench/README.md explains how to read them).
import { appendAll } from '../lib/base/arrays';
import { binding } from '../lib/core/native';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { boundaryArea, boundaryBenchArea, tokenizeArea, trainBenchArea, type AreaResult } from './lib/areas';
import { runSection, threadEnv } from './lib/child';
import { ensureExport } from './lib/exports';
import { runInterleaved, type WorkerSpec } from './lib/interleave';
import { machineInfo } from './lib/machine';
import { pythonPath, repoRoot, resultsDir, tmpDir } from './lib/paths';
import { casesFor, isBig, type PlanOptions } from './lib/plan';
import { renderMarkdown } from './lib/report';
import type { BenchResult, FlopsInfo, GemmPeak, SectionLog } from './lib/result';
import { RUNTIMES, TRAINING_RUNTIMES, type LagResult, type MemoryResult, type ModelFiles, type Runtime } from './lib/schema';
import { judgeTargets } from './lib/targets';

const execFileP = promisify(execFile);
const SECTIONS = ['throughput', 'boundary', 'areas', 'memory', 'eventloop'] as const;
type Section = (typeof SECTIONS)[number];

interface Options extends PlanOptions {
  only: Set<Section>;
  device: string;
  ompWait: 'passive' | 'active' | 'default';
  configs: string[];
  threads: number;
  /** The throughput section's runtimes (default: all that run on the device). */
  runtimes: Set<Runtime>;
}

function parseArgs(argv: string[]): Options {
  const value = (flag: string): string | undefined => {
    const i = argv.indexOf(flag);
    if (i < 0) return undefined;
    const v = argv[i + 1];
    if (v === undefined || v.startsWith('--')) throw new Error(`Expected a value after ${flag}`);
    return v;
  };
  const known = new Set(['--quick', '--full', '--only', '--configs', '--batches', '--threads', '--device', '--omp-wait', '--runtimes']);
  argv.forEach((a, i) => {
    if (a.startsWith('--') && !known.has(a)) throw new Error(`Unknown option ${a}; expected one of ${[...known].join(', ')}`);
    if (!a.startsWith('--') && (i === 0 || !known.has(argv[i - 1]))) throw new Error(`Unexpected argument ${a}`);
  });
  const quick = argv.includes('--quick');
  const only = new Set<Section>();
  for (const s of (value('--only') ?? SECTIONS.join(',')).split(',')) {
    if (!(SECTIONS as readonly string[]).includes(s)) throw new Error(`Expected --only from ${SECTIONS.join(', ')} but received '${s}'`);
    only.add(s as Section);
  }
  const threads = Number(value('--threads') ?? '2');
  if (!Number.isInteger(threads) || threads < 1 || threads > 256) {
    throw new Error(`Expected integer between 1 and 256 for --threads but received ${value('--threads')}`);
  }
  const batches = (value('--batches') ?? '1,16').split(',').map(Number);
  for (const b of batches) {
    if (!Number.isInteger(b) || b < 1 || b > 256) throw new Error(`Expected integers between 1 and 256 for --batches but received ${value('--batches')}`);
  }
  const configs = (value('--configs') ?? (quick ? 'tiny' : 'tiny,official-70m')).split(',');
  for (const c of configs) {
    if (!existsSync(join(repoRoot(), 'python', 'dove', 'configs', `${c}.json`))) throw new Error(`Unknown config '${c}' (python/dove/configs/${c}.json not found)`);
  }
  const device = value('--device') ?? 'cpu';
  if (!/^(cpu|cuda(:\d+)?)$/.test(device)) throw new Error(`Expected --device cpu or cuda:N but received '${device}'`);
  const ompWait = value('--omp-wait') ?? 'default';
  if (ompWait !== 'passive' && ompWait !== 'active' && ompWait !== 'default') {
    throw new Error(`Expected --omp-wait passive, active or default but received '${ompWait}'`);
  }
  const runtimes = new Set<Runtime>();
  for (const rt of (value('--runtimes') ?? RUNTIMES.join(',')).split(',')) {
    if (!(RUNTIMES as readonly string[]).includes(rt)) throw new Error(`Expected --runtimes from ${RUNTIMES.join(', ')} but received '${rt}'`);
    runtimes.add(rt as Runtime);
  }
  return { quick, full: argv.includes('--full'), only, configs, threads, batches, device, ompWait, runtimes };
}

function log(s: string): void {
  process.stderr.write(`[bench] ${s}\n`);
}

async function pythonJson<T>(args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<T> {
  const { stdout } = await execFileP(pythonPath(), args, { cwd: repoRoot(), env, timeout: timeoutMs, maxBuffer: 16 * 2 ** 20 });
  const line = stdout.trim().split('\n').pop() ?? '';
  return JSON.parse(line) as T;
}

/** `--render results.json`: rewrite the markdown of an earlier (possibly interrupted) run. */
function render(file: string): void {
  const r = JSON.parse(readFileSync(file, 'utf8')) as BenchResult;
  const perCall = r.areas.find((a) => a.area === 'boundary')?.rows.find((x) => x.runtime === 'Node addon, runSync')?.['µs per call'];
  r.targets = judgeTargets(r, typeof perCall === 'number' ? perCall : null);
  writeFileSync(file.replace(/\.json$/, '.md'), renderMarkdown(r));
  log(`rendered ${file.replace(/\.json$/, '.md')}`);
}

/** What the API reads from a package to choose its path (lib/model/compiled.ts): dove.prefer, dove.measured. */
async function compiledPreference(aoti: string): Promise<{ prefer: string; measured: string }> {
  const meta = await binding().compiledMetadata(aoti, 'encode');
  return { prefer: meta['dove.prefer'] ?? 'compiled', measured: meta['dove.measured'] ?? 'not measured when compiled' };
}

async function main(): Promise<void> {
  const renderAt = process.argv.indexOf('--render');
  if (renderAt >= 0) {
    const file = process.argv[renderAt + 1];
    if (file === undefined || !file.endsWith('.json')) throw new Error('Expected --render <results.json>');
    render(file);
    return;
  }
  const o = parseArgs(process.argv.slice(2));
  const root = repoRoot();
  const started = Date.now();
  const env = threadEnv(o.threads, o.ompWait);
  const sections: SectionLog[] = [];
  const result: BenchResult = {
    machine: machineInfo(root),
    options: { quick: o.quick, full: o.full, threads: o.threads, configs: o.configs, batches: o.batches, device: o.device, ompWait: o.ompWait, runtimes: [...o.runtimes] },
    versions: {},
    gemm: null,
    flops: {},
    exportNotes: {},
    compiledPreference: {},
    rows: [],
    rowErrors: [],
    areas: [],
    memory: [],
    eventloop: null,
    targets: [],
    sections,
    totalSeconds: 0,
    complete: false,
  };

  // Results are rewritten after every section, so an interrupted run still leaves what it measured.
  const dir = resultsDir();
  mkdirSync(dir, { recursive: true });
  const suffix = `${o.device === 'cpu' ? '' : `-${o.device.replace(':', '')}`}${o.quick ? '-quick' : ''}`;
  const stem = join(dir, `${result.machine.date.slice(0, 10)}${suffix}`);
  const flush = (final: boolean): void => {
    result.machine.loadAtEnd = os.loadavg()[0];
    result.totalSeconds = (Date.now() - started) / 1000;
    const perCall = result.areas.find((a) => a.area === 'boundary')?.rows.find((r) => r.runtime === 'Node addon, runSync')?.['µs per call'];
    result.targets = judgeTargets(result, typeof perCall === 'number' ? perCall : null);
    result.complete = final;
    writeFileSync(`${stem}.json`, `${JSON.stringify(result, null, 2)}\n`);
    writeFileSync(`${stem}.md`, renderMarkdown(result));
  };

  const record = (entry: SectionLog): void => {
    sections.push(entry);
    flush(false);
  };
  const timed = async <T>(name: string, body: () => Promise<T>): Promise<T | null> => {
    const t0 = Date.now();
    log(`${name} ...`);
    try {
      const v = await body();
      record({ name, ok: true, seconds: (Date.now() - t0) / 1000, error: null });
      return v;
    } catch (e) {
      const msg = e instanceof Error ? e.message.split('\n').slice(0, 3).join(' | ') : String(e);
      record({ name, ok: false, seconds: (Date.now() - t0) / 1000, error: msg });
      log(`${name} failed: ${msg}`);
      return null;
    }
  };

  // 1. Models (cached), GEMM peak, FLOPs per image.
  const models: ModelFiles[] = [];
  for (const config of new Set([...o.configs, 'tiny'])) {
    // The ONNX graphs and the AOTInductor package only for the CPU peers that use them.
    const peers = o.device === 'cpu' && (o.runtimes.has('node-aoti') || o.runtimes.has('onnxruntime-node'));
    const ex = await timed(`export ${config}`, async () => ensureExport(config, peers, log));
    if (ex?.files) {
      if (o.configs.includes(config)) models.push(ex.files);
      result.exportNotes[config] = ex.note;
      if (ex.files.aoti !== null) result.compiledPreference![config] = await compiledPreference(ex.files.aoti);
    } else if (ex) {
      result.exportNotes[config] = ex.note;
    }
  }
  const tinyPt = join(tmpDir(), 'models', 'tiny.pt');
  // 2. Throughput: one long-lived worker process per runtime, measured round by round
  //    (bench/lib/interleave.ts), config by config. The large configs run last: on a busy machine an
  //    interrupted run still holds every other section.
  const inference = ['encode', 'decode', 'encode+decode'] as const;
  const workers: WorkerSpec[] = [
    { runtime: 'python-eager', command: pythonPath(), args: ['bench/peers/python_torch.py', '--mode', 'eager'], ops: [...inference, 'train'], unavailable: () => null },
    { runtime: 'python-torchscript', command: pythonPath(), args: ['bench/peers/python_torch.py', '--mode', 'torchscript'], ops: [...inference, 'train'], unavailable: () => null },
    { runtime: 'node-addon', command: process.execPath, args: [join(root, 'dist', 'bench', 'peers', 'node-addon.js'), '--runtime', 'node-addon'], ops: [...inference, 'train'], unavailable: () => null },
    {
      runtime: 'node-aoti',
      command: process.execPath,
      args: [join(root, 'dist', 'bench', 'peers', 'node-addon.js'), '--runtime', 'node-aoti'],
      ops: inference,
      unavailable: (m) => (o.device !== 'cpu' ? 'compiled packages run on the CPU only' : m.aoti === null ? `no AOTInductor package for ${m.config} (${result.exportNotes[m.config] ?? 'not compiled'})` : null),
    },
    {
      runtime: 'onnxruntime-node',
      command: process.execPath,
      args: [join(root, 'dist', 'bench', 'peers', 'onnxruntime.js')],
      ops: inference,
      unavailable: (m) => (o.device !== 'cpu' ? 'CPU execution provider only' : m.onnxEncode === null ? `no ONNX graphs for ${m.config}` : null),
    },
  ];
  if (!workers.every((w) => w.ops.includes('train') === TRAINING_RUNTIMES.includes(w.runtime))) throw new Error('worker ops disagree with TRAINING_RUNTIMES');
  const chosen = workers.filter((w) => o.runtimes.has(w.runtime));
  const throughput = async (m: ModelFiles): Promise<void> => {
    result.flops[m.config] = await timed(`flops ${m.config}`, async () => {
      const cache = `${m.pt}.flops.json`;
      const stamp = `${m.pt}.stamp`;
      const key = existsSync(stamp) ? readFileSync(stamp, 'utf8') : '';
      if (existsSync(cache)) {
        const c = JSON.parse(readFileSync(cache, 'utf8')) as { key: string; value: FlopsInfo };
        if (c.key === key) return c.value;
      }
      const value = await pythonJson<FlopsInfo>(['bench/gemm/flops.py', m.pt], env, 15 * 60_000);
      writeFileSync(cache, JSON.stringify({ key, value }));
      return value;
    });
    const t0 = Date.now();
    const name = `throughput ${m.config} (interleaved)`;
    log(`${name} ...`);
    try {
      const out = await runInterleaved(m, casesFor(m, o), chosen, {
        env: { ...env, DOVE_BENCH_DEVICE: o.device },
        cwd: root,
        timeoutMs: 30 * 60_000,
        log,
      });
      appendAll(result.rows, out.rows);
      appendAll(result.rowErrors, out.errors);
      Object.assign(result.versions, out.versions);
      record({ name, ok: true, seconds: (Date.now() - t0) / 1000, error: out.errors.length > 0 ? `${out.errors.length} row(s) failed (listed under the tables)` : null });
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      record({ name, ok: false, seconds: (Date.now() - t0) / 1000, error: msg });
      log(`${name} failed: ${msg}`);
    }
  };
  if (o.only.has('throughput')) {
    result.gemm = await timed('gemm peak', () => pythonJson<GemmPeak>(['bench/gemm/peak.py', '--threads', String(o.threads), '--device', o.device], env, 5 * 60_000));
    if (o.device !== 'cpu') {
      result.gemmBf16 = await timed('gemm peak bf16', () => pythonJson<GemmPeak>(['bench/gemm/peak.py', '--device', o.device, '--dtype', 'bfloat16'], env, 5 * 60_000));
    }
    for (const m of models.filter((x) => !isBig(x.config))) await throughput(m);
  }

  // 3. The boundary: per-call overhead of a no-op method (Node vs Python, same libtorch, same file) and
  //    a 256 MiB tensor in and out.
  if (o.only.has('boundary') && o.device === 'cpu') {
    const a = await timed('boundary', async () => boundaryArea(env, o.quick ? 5000 : 20000, o.threads));
    if (a) result.areas.push(a);
  }

  // 4. The areas' own benchmarks, joined.
  if (o.only.has('areas')) {
    const area = async (name: string, body: () => Promise<AreaResult | null>): Promise<void> => {
      const a = await timed(`area ${name}`, body);
      if (a) result.areas.push(a);
      else if (a === null && sections[sections.length - 1].ok) sections[sections.length - 1].error = 'not present in this checkout';
    };
    await area('tokenize', () => tokenizeArea(models.filter((x) => !isBig(x.config)), o.batches, o.quick ? 1 : 2, o.quick ? 2 : 3, o.full, env));
    if (o.device === 'cpu') await area('boundary (bench/boundary)', () => boundaryBenchArea(env, o.quick ? 5000 : 20000));
    await area('train (bench/train)', () =>
      trainBenchArea(env, o.full ? 'tiny,official-14m' : 'tiny', o.full ? '4,1' : '4', o.quick ? 3 : 5, o.threads, o.quick ? 2 : 3));
  }

  // 5. Memory and event loop on the tiny model, each in a fresh process.
  // Memory and event loop are properties of the binding and the JS thread, measured on CPU.
  if (o.only.has('memory') && o.device === 'cpu' && existsSync(tinyPt)) {
    const tok = await runSection<MemoryResult>(
      'memory-tokenize',
      process.execPath,
      ['--max-old-space-size=512', join(root, 'dist', 'bench', 'memory', 'tokenize-rss.js')],
      { model: tinyPt, calls: o.quick ? 2000 : 10000, every: 100, warmup: o.quick ? 500 : 1000, threads: o.threads },
      { env, timeoutMs: 15 * 60_000, cwd: root },
    );
    record({ name: 'memory tokenize', ok: tok.ok, seconds: tok.seconds, error: tok.error });
    if (tok.value) result.memory.push(tok.value);
    const trainScript = join(root, 'dist', 'bench', 'memory', 'train-rss.js');
    if (existsSync(trainScript)) {
      // 1000 warm-up steps: the allocator's working set for the step's tensors settles over about that
      // many (a 3000-step run, RSS medians per 300 steps: 501 489 503 511 507 511 512 513 514 520 MiB;
      // docs/TRAINING.md "Memory over a long run"), as the tokenize section's warm-up is 1000 calls.
      const tr = await runSection<MemoryResult>(
        'memory-train',
        process.execPath,
        ['--max-old-space-size=512', trainScript],
        { model: tinyPt, calls: o.quick ? 200 : 2000, every: 10, warmup: o.quick ? 50 : 1000, threads: o.threads },
        { env, timeoutMs: 15 * 60_000, cwd: root },
      );
      record({ name: 'memory train', ok: tr.ok, seconds: tr.seconds, error: tr.error });
      if (tr.value) result.memory.push(tr.value);
    }
  }
  if (o.only.has('eventloop') && o.device === 'cpu' && existsSync(tinyPt)) {
    const lag = await runSection<LagResult>(
      'eventloop',
      process.execPath,
      [join(root, 'dist', 'bench', 'eventloop', 'lag.js')],
      { model: tinyPt, concurrent: 4, rounds: o.quick ? 20 : 100, threads: o.threads },
      { env, timeoutMs: 10 * 60_000, cwd: root },
    );
    record({ name: 'eventloop', ok: lag.ok, seconds: lag.seconds, error: lag.error });
    result.eventloop = lag.value;
  }

  if (o.only.has('throughput')) {
    for (const m of models.filter((x) => isBig(x.config))) await throughput(m);
    // The peak again at the end: on a shared machine the better of two readings is closer to the hardware.
    const again = await timed('gemm peak (again)', () => pythonJson<GemmPeak>(['bench/gemm/peak.py', '--threads', String(o.threads), '--device', o.device], env, 5 * 60_000));
    if (again && (!result.gemm || again.peak_gflops > result.gemm.peak_gflops)) result.gemm = again;
  }
  const big = models.filter((x) => isBig(x.config));
  if (o.only.has('areas') && big.length > 0) {
    const more = await timed('area tokenize (large configs)', () => tokenizeArea(big, o.batches, 4, 3, o.full, env));
    const early = result.areas.find((a) => a.area === 'tokenize');
    if (more && early) {
      appendAll(early.rows, more.rows);
      appendAll(early.notes, more.notes);
      early.seconds += more.seconds;
    } else if (more) result.areas.push(more);
  }

  flush(true);
  log(`wrote ${stem}.md and ${stem}.json in ${(result.totalSeconds / 60).toFixed(1)} min`);
}

main().catch((e: unknown) => {
  process.stderr.write(`[bench] ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
