// Markdown rendering of a BenchResult: one throughput table per model (runtimes side by side, FLOPs
// per image, share of the measured GEMM peak, ratios), then the area benchmarks, memory, event loop
// and the targets with a verdict each.
import { appendAll } from '../../lib/base/arrays';
import { findRow, formatRatio, nodeRuntime, ratioStat, verdict } from './ratios';
import type { BenchResult, GemmPeak } from './result';
import type { Op, Runtime } from './schema';
import { OPS, RUNTIMES } from './schema';

const SHORT: Record<Runtime, string> = {
  'python-eager': 'py eager',
  'python-torchscript': 'py TorchScript',
  'node-addon': 'Node TorchScript',
  'node-aoti': 'Node AOTI',
  'onnxruntime-node': 'ORT-node',
};

export function fmt(v: number | null | undefined, digits = 2): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return '–';
  if (Number.isInteger(v)) return String(v);
  if (Math.abs(v) >= 1000) return v.toFixed(0);
  if (Math.abs(v) >= 100) return v.toFixed(1);
  return v.toFixed(digits);
}

/** Measured images/s, or for encode+decode the sequential combination of the measured halves. */
export function imagesPerSec(r: BenchResult, runtime: Runtime, config: string, batch: number, op: Op): { v: number; derived: boolean } | null {
  const row = findRow(r, runtime, config, batch, op);
  if (row) return { v: row.imagesPerSec, derived: false };
  if (op === 'encode+decode') {
    const e = findRow(r, runtime, config, batch, 'encode');
    const d = findRow(r, runtime, config, batch, 'decode');
    if (e && d) return { v: 1 / (1 / e.imagesPerSec + 1 / d.imagesPerSec), derived: true };
  }
  return null;
}

/** "by size 512: 216.4, …", per backend where both of libtorch's CPU GEMMs were measured. */
function gemmSizes(g: GemmPeak): string {
  const sizes = (m: Record<string, number>): string => Object.entries(m).map(([n, v]) => `${n}: ${fmt(v)}`).join(', ');
  if (g.gflops_by_backend === undefined) return `matmul by size ${sizes(g.gflops_by_size)}`;
  const names: Record<string, string> = { matmul: 'aten matmul (MKL)', onednn: 'oneDNN prepacked linear' };
  return `the faster of ${Object.entries(g.gflops_by_backend).map(([b, m]) => `${names[b] ?? b} by size ${sizes(m)}`).join('; ')}`;
}

/** The peak a row is read against: on CUDA, training runs in bf16 autocast and is read against the bf16 peak (MFU). */
function peakFor(r: BenchResult, op: Op): GemmPeak | null {
  if (op === 'train' && r.options.device !== 'cpu' && r.gemmBf16) return r.gemmBf16;
  return r.gemm;
}

export function share(r: BenchResult, config: string, op: Op, ips: number): number | null {
  const f = r.flops[config]?.perImage[op];
  const peak = peakFor(r, op);
  if (!peak || !f) return null;
  return (ips * f) / (peak.peak_gflops * 1e9);
}

function throughputTable(r: BenchResult, config: string): string[] {
  const lines: string[] = [];
  const peers: [Runtime, string][] = [['python-eager', 'Node/eager'], ['python-torchscript', 'Node/TS'], ['onnxruntime-node', 'Node/ORT']];
  const head = ['batch', 'op', 'GFLOP/img', ...RUNTIMES.map((rt) => `${SHORT[rt]} img/s (%peak)`), ...peers.map(([, h]) => h), 'Node TS/py TS'];
  lines.push(`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`);
  for (const batch of r.options.batches) {
    for (const op of OPS) {
      const cells = RUNTIMES.map((rt) => imagesPerSec(r, rt, config, batch, op));
      if (cells.every((c) => c === null)) continue;
      const f = r.flops[config]?.perImage[op];
      const node = nodeRuntime(r, config, batch, op);
      const cols = cells.map((c, i) => {
        if (c === null) return '–';
        const s = share(r, config, op, c.v);
        const text = `${fmt(c.v)}${c.derived ? '†' : ''}${s === null ? '' : ` (${(s * 100).toFixed(0)}%)`}`;
        return RUNTIMES[i] === node ? `**${text}**` : text;
      });
      // Ratios of per-round measurements (median; interquartile range; min–max); "?" where the interquartile range crosses 1.0.
      const ratio = (a: Runtime, b: Runtime): string => {
        const x = findRow(r, a, config, batch, op);
        const y = findRow(r, b, config, batch, op);
        if (!x || !y) return '–';
        const st = ratioStat(x, y);
        return `${formatRatio(st)}${verdict(st, 1.0) === 'not resolved' ? ' ?' : ''}`;
      };
      lines.push(`| ${batch} | ${op} | ${f ? fmt(f / 1e9) : '–'} | ${cols.join(' | ')} | ${peers.map(([p]) => ratio(node, p)).join(' | ')} | ${ratio('node-addon', 'python-torchscript')} |`);
    }
  }
  return lines;
}

function table(columns: string[], rows: Record<string, string | number | null>[]): string[] {
  const out = [`| ${columns.join(' | ')} |`, `|${columns.map(() => '---').join('|')}|`];
  for (const row of rows) {
    out.push(`| ${columns.map((c) => (typeof row[c] === 'number' ? fmt(row[c] as number) : (row[c] ?? '–'))).join(' | ')} |`);
  }
  return out;
}

function roundsNote(r: BenchResult): string {
  const rounds = [...new Set(r.rows.map((x) => x.roundMs?.length ?? 0))].sort((a, b) => a - b);
  return rounds.length === 0 ? 'no rows' : `${rounds.join(' or ')} rounds per row, runtimes in alternating order`;
}

export function renderMarkdown(r: BenchResult): string {
  const m = r.machine;
  const L: string[] = [];
  L.push(`# dove-encoder benchmark, ${m.date.slice(0, 10)}`, '');
  if (!r.complete) L.push(`**Incomplete: the run was still going (or was interrupted) when this was written, ${fmt(r.totalSeconds / 60, 1)} min in.**`, '');
  L.push(`${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB; ${m.kernel}; Node ${m.node}; git ${m.git ?? 'n/a'}.`);
  L.push(
    `Intra-op threads: ${r.options.threads} in every runtime (torch.set_num_threads / setNumThreads / ORT intraOpNumThreads, OMP_NUM_THREADS); OMP_WAIT_POLICY ${r.options.ompWait}. ` +
      `Load average (1 min): ${fmt(m.loadAtStart)} at start, ${fmt(m.loadAtEnd)} at end: anything above ~0.5 means other work shared the cores and every number below is pessimistic.`,
  );
  const v = r.versions;
  L.push(
    `Versions: ${Object.entries(v)
      .map(([rt, vs]) => `${rt} (${Object.entries(vs ?? {}).map(([k, x]) => `${k} ${x}`).join(', ')})`)
      .join('; ')}.`,
  );
  L.push(`Run: ${r.options.quick ? '--quick' : r.options.full ? '--full' : 'default'}, ${fmt(r.totalSeconds / 60, 1)} min.`, '');

  L.push('## Targets', '');
  L.push('| target | goal | measured | met |', '|---|---|---|---|');
  for (const t of r.targets) L.push(`| ${t.target} | ${t.goal} | ${t.measured} | ${t.status === 'met' ? 'yes' : t.status === 'not measured' ? 'not measured' : `**${t.status === 'not met' ? 'no' : t.status}**`} |`);
  const missed = r.targets.filter((t) => t.status !== 'met' && t.why);
  if (missed.length > 0) {
    L.push('');
    for (const t of missed) L.push(`- **${t.target}**: ${t.why}`);
  }
  L.push('');

  L.push(`## Throughput (${r.options.device === 'cpu' ? 'CPU' : r.options.device}, images/s, higher is better)`, '');
  L.push(
    r.gemm
      ? `Measured GEMM peak: **${fmt(r.gemm.peak_gflops)} GFLOP/s** (float32 on ${r.gemm.device}, ${r.gemm.threads} threads, torch ${r.gemm.torch}; ${gemmSizes(r.gemm)}). `
      : 'GEMM peak: not measured. ',
  );
  if (r.gemmBf16) {
    L.push(`bfloat16 GEMM peak: **${fmt(r.gemmBf16.peak_gflops)} GFLOP/s** (${r.gemmBf16.device}); the train rows (bf16 autocast) are read against it, so their %peak is the MFU.`);
  }
  L.push(
    'GFLOP/img is counted by torch.utils.flop_counter on the eager model (matmul/conv/attention; train = forward + backward). ' +
      '%peak = img/s × FLOP/img ÷ GEMM peak. encode = encode(K = max tokens), decode = decode(all K slots), train = one AdamW step (img/s = batch × steps/s). ' +
      '† = encode+decode combined from the measured halves (1 / (1/enc + 1/dec)), not timed as one call. ' +
      'Node AOTI runs the export\'s AOTInductor package (uint8 pixels in and out, as the Tokenizer and Reconstructor call it); ORT-node the exporter\'s fixed-budget ONNX graphs; neither has a training column. ' +
      'Bold: the Node path the API takes (for inference the package when the model has one that its compiler did not measure slower than the TorchScript file, else the TorchScript file). ' +
      `Ratios compare that path with each peer round by round (${roundsNote(r)}): median of the per-round ratios, then in brackets their interquartile range and their min–max; "?" where the interquartile range crosses 1.0 (not resolved; the targets are judged on that range). Node TS/py TS: the same file through the addon and through Python. Both Node columns encode and decode a CPU batch in the slices the API uses (at most one 256×256 image\'s pixels per call, PIXELS_PER_CALL in lib/model/model-file.ts: official-70m one image per call); the Python and ORT peers run the batch in one call.`,
    '',
  );
  for (const config of r.options.configs) {
    const f = r.flops[config];
    L.push(`### ${config}${f ? ` (${fmt(f.params / 1e6, 1)} M parameters)` : ''}`, '');
    if (r.exportNotes[config]) L.push(`Note: ${r.exportNotes[config]}`, '');
    const preference = r.compiledPreference?.[config];
    if (preference) L.push(`The API's inference path: ${preference.prefer === 'torchscript' ? 'the TorchScript file' : 'the compiled package'}, measured when the package was compiled: ${preference.measured}.`, '');
    appendAll(L, throughputTable(r, config)).push('');
  }
  if (r.rowErrors.length > 0) {
    L.push('Rows that failed:', '');
    for (const e of r.rowErrors) L.push(`- ${e.runtime} ${e.config} b${e.batch} ${e.op}: ${e.error}`);
    L.push('');
  }

  for (const a of r.areas) {
    L.push(`## ${a.title}`, '');
    appendAll(L, table(a.columns, a.rows)).push('');
    for (const n of a.notes) L.push(`- ${n}`);
    if (a.notes.length > 0) L.push('');
  }

  L.push('## Memory (RSS in a fresh process; growth measured after warm-up)', '');
  if (r.memory.length === 0) L.push('Not measured.', '');
  else {
    L.push('| workload | calls | warm-up | RSS after warm-up (MiB) | RSS at end (MiB) | growth after warm-up (MiB) | slope (MiB / 1000 calls) | s |', '|---|---|---|---|---|---|---|---|');
    for (const mm of r.memory) {
      const base = mm.samples.find((s) => s.calls >= mm.warmupCalls);
      const end = mm.samples[mm.samples.length - 1];
      L.push(`| ${mm.what} | ${mm.totalCalls} | ${mm.warmupCalls} | ${fmt(base?.rssMiB, 1)} | ${fmt(end.rssMiB, 1)} | ${fmt(mm.growthAfterWarmupMiB, 1)} | ${fmt(mm.slopeMiBPer1000, 2)} | ${fmt(mm.seconds, 1)} |`);
    }
    L.push('');
  }

  L.push('## Event loop', '');
  const e = r.eventloop;
  if (e === null) L.push('Not measured.', '');
  else {
    L.push(
      `1 ms interval timer while ${e.concurrentCalls} tokenize calls run concurrently (${e.rounds} rounds, ${e.timerTicks} ticks, ${fmt(e.tokenizeCallsPerSec)} calls/s): ` +
        `lateness p50 ${fmt(e.p50Ms)} ms, **p99 ${fmt(e.p99Ms)} ms**, max ${fmt(e.maxMs)} ms ` +
        `(monitorEventLoopDelay p99 ${fmt(e.histogramP99Ms)} ms; the same timer with nothing running: p99 ${fmt(e.idleP99Ms)} ms).`,
      '',
    );
  }

  L.push('## Sections', '');
  L.push('| section | ok | s | error |', '|---|---|---|---|');
  for (const s of r.sections) L.push(`| ${s.name} | ${s.ok ? 'yes' : 'no'} | ${fmt(s.seconds, 1)} | ${s.error ?? ''} |`);
  L.push('');
  return L.join('\n');
}
