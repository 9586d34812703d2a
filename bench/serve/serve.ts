// `dove serve` under load, with and without batching, side by side on the same machine:
//
//   node dist/bench/serve/serve.js [--model m.pt] [--image file] [--connections 32] [--seconds 10] [--rounds 2]
//                                  [--threads 2] [--omp-wait passive|active|default] [--out name]
//
// Each round starts a fresh `dove serve` on 127.0.0.1 with --max-batch 16, then one with --max-batch 1
// (the only difference), warms each up, records its RSS, keeps `connections` clients busy with
// POST /v1/tokenize for `seconds`, records RSS again. A last row drives 4× more clients than the
// queue holds to show the 503 path. Writes bench/results/<out>.md and .json. Thread settings as in
// every other benchmark here (bench/lib/child.ts threadEnv): OMP_NUM_THREADS and OMP_WAIT_POLICY.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { threadEnv } from '../lib/child';
import { medianOf } from '../../lib/base/arrays';
import { machineInfo } from '../lib/machine';
import { repoRoot, resultsDir } from '../lib/paths';
import { loadRun, rssOf, spawnServe, type LoadResult } from './load';

interface Options {
  model: string | undefined;
  image: string;
  connections: number;
  seconds: number;
  rounds: number;
  threads: number;
  ompWait: 'passive' | 'active' | 'default';
  out: string;
}

interface Row {
  label: string;
  threads: number;
  maxBatch: number;
  maxQueue: number;
  round: number;
  rssBeforeMiB: number;
  rssAfterMiB: number;
  load: LoadResult;
  /** Forwards and images the server ran during the timed run: images/forwards = mean batch. */
  forwards: number;
  images: number;
}

const MiB = 2 ** 20;

function ompWait(raw: string): Options['ompWait'] {
  if (raw !== 'passive' && raw !== 'active' && raw !== 'default') throw new Error(`Expected --omp-wait passive, active or default but received '${raw}'`);
  return raw;
}

function parse(argv: readonly string[]): Options {
  const get = (name: string): string | undefined => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const int = (name: string, fallback: number): number => {
    const raw = get(name);
    const value = raw === undefined ? fallback : Number(raw);
    if (!Number.isInteger(value) || value < 1) throw new Error(`Expected positive integer for --${name} but received ${raw}`);
    return value;
  };
  return {
    model: get('model'),
    image: get('image') ?? join(repoRoot(), 'assets', 'sample.jpg'),
    connections: int('connections', 32),
    seconds: int('seconds', 10),
    rounds: int('rounds', 2),
    threads: int('threads', 2),
    ompWait: ompWait(get('omp-wait') ?? 'passive'),
    out: get('out') ?? `serve-${new Date().toISOString().slice(0, 10)}`,
  };
}

async function queueStats(url: string): Promise<{ batches: number; rows: number }> {
  return ((await (await fetch(`${url}/healthz`)).json()) as { queue: { batches: number; rows: number } }).queue;
}

async function measure(o: Options, label: string, round: number, threads: number, maxBatch: number, maxQueue: number, connections: number, body: Buffer, type: string): Promise<Row> {
  const server = await spawnServe([...(o.model ? ['--model', o.model] : []), '--max-batch', String(maxBatch), '--max-queue', String(maxQueue)], threadEnv(threads, o.ompWait));
  try {
    await loadRun(server.url, body, type, Math.min(connections, maxQueue), 3);
    const pid = server.child.pid!;
    const rssBefore = rssOf(pid);
    const before = await queueStats(server.url);
    const load = await loadRun(server.url, body, type, connections, o.seconds);
    const after = await queueStats(server.url);
    const row: Row = { label, threads, maxBatch, maxQueue, round, rssBeforeMiB: rssBefore / MiB, rssAfterMiB: rssOf(pid) / MiB, load, forwards: after.batches - before.batches, images: after.rows - before.rows };
    process.stderr.write(`${label} (${threads} thread${threads > 1 ? 's' : ''}) round ${round}: ${load.okPerSecond.toFixed(1)} ok/s, p50 ${load.latencyMs.p50} ms, p99 ${load.latencyMs.p99} ms, ${JSON.stringify(load.statuses)}, mean batch ${(row.images / Math.max(1, row.forwards)).toFixed(1)}\n`);
    return row;
  } finally {
    await server.stop();
  }
}

function render(o: Options, rows: Row[], model: unknown, machine: ReturnType<typeof machineInfo>, ratios: number[], bestRatios: number[]): string {
  const table = rows.map((r) => {
    const refused = r.load.statuses['503'] ?? 0;
    return `| ${r.label} | ${r.round} | ${r.threads} | ${r.maxBatch} | ${r.maxQueue} | ${r.load.connections} | ${r.load.okPerSecond.toFixed(1)} | ${(refused / r.load.seconds).toFixed(1)} | ${r.load.latencyMs.p50} | ${r.load.latencyMs.p99} | ${(r.images / Math.max(1, r.forwards)).toFixed(2)} | ${r.load.errors} | ${r.rssBeforeMiB.toFixed(0)} → ${r.rssAfterMiB.toFixed(0)} |`;
  });
  return `# dove serve under load (${machine.date.slice(0, 10)})

Command: \`node dist/bench/serve/serve.js ${process.argv.slice(2).join(' ')}\` (bench/serve/serve.ts). Each row is a
fresh \`dove serve --host 127.0.0.1\` child; autocannon keeps *clients* connections busy with
\`POST /v1/tokenize\` (${o.image.replace(repoRoot() + '/', '')}, Accept: application/octet-stream) for ${o.seconds} s after a 3 s warm-up.
Latency percentiles are over every answered request (in the overload row most answers are fast 503s).
RSS is the server's, after the warm-up and after the timed run. Server threads: OMP_NUM_THREADS as in the
threads column, OMP_WAIT_POLICY ${o.ompWait} (bench/lib/child.ts threadEnv).

Model: \`${JSON.stringify(model)}\`

Machine: ${machine.cpu}, ${machine.cores} cores, load average ${machine.loadAtStart.toFixed(2)} at start, ${machine.loadAtEnd?.toFixed(2) ?? '?'} at end (shared: other jobs ran), node ${machine.node}, git ${machine.git ?? '?'}.

| row | round | threads | --max-batch | --max-queue | clients | ok/s | 503/s | p50 ms | p99 ms | images/forward | errors | RSS MiB |
|---|---|---|---|---|---|---|---|---|---|---|---|---|
${table.join('\n')}

**Batching: ${medianOf(ratios).toFixed(2)}× the throughput without it** at ${o.threads} thread${o.threads > 1 ? 's' : ''} (median of the per-round ratios ${ratios.map((r) => r.toFixed(2)).join(', ')};
each round ran the servers one after the other, same clients, same image).${bestRatios.length === 0 ? '' : `
Against the best server without batching, one thread (a batch-1 forward with ${o.threads} threads meets
OpenMP barriers after each of its ops, which on a loaded machine wait for the scheduler):
**${medianOf(bestRatios).toFixed(2)}×** (per round ${bestRatios.map((r) => r.toFixed(2)).join(', ')}).`}
`;
}

async function main(): Promise<void> {
  const o = parse(process.argv.slice(2));
  const machine = machineInfo(repoRoot());
  const body = readFileSync(o.image);
  const type = o.image.endsWith('.png') ? 'image/png' : 'image/jpeg';
  const rows: Row[] = [];
  const ratios: number[] = [];
  const bestRatios: number[] = [];
  for (let round = 1; round <= o.rounds; round++) {
    const batched = await measure(o, 'batching on', round, o.threads, 16, o.connections, o.connections, body, type);
    const single = await measure(o, 'batching off', round, o.threads, 1, o.connections, o.connections, body, type);
    rows.push(batched, single);
    ratios.push(batched.load.okPerSecond / single.load.okPerSecond);
    if (o.threads > 1) {
      const oneThread = await measure(o, 'batching off', round, 1, 1, o.connections, o.connections, body, type);
      rows.push(oneThread);
      bestRatios.push(batched.load.okPerSecond / Math.max(single.load.okPerSecond, oneThread.load.okPerSecond));
    }
  }
  rows.push(await measure(o, 'overload', 1, o.threads, 16, 16, 64, body, type));
  machine.loadAtEnd = loadavg()[0]!;
  const probe = await spawnServe(o.model ? ['--model', o.model] : []);
  const model = await (await fetch(`${probe.url}/v1/model`)).json();
  await probe.stop();
  const base = join(resultsDir(), o.out);
  mkdirSync(dirname(base), { recursive: true });
  writeFileSync(`${base}.json`, `${JSON.stringify({ options: o, machine, model, rows, ratios, batchingRatio: medianOf(ratios), bestRatios }, null, 2)}\n`);
  writeFileSync(`${base}.md`, render(o, rows, model, machine, ratios, bestRatios));
  process.stdout.write(`${base}.md: batching ${medianOf(ratios).toFixed(2)}× without\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});
