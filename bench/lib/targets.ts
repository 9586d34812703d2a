// The issue's targets, judged from the joined result (reported, never asserted). Ratio targets use the
// per-round ratios (bench/lib/ratios.ts): a row meets a target when the interquartile range of its
// rounds is at or above it, misses when that range is below, and is "not resolved" when it crosses it.
// Each missed or unresolved target gets a first explanation drawn from the numbers.
import { maxOf } from '../../lib/base/arrays';
import { findRow, formatRatio, nodeRuntime, ratioStat, verdict, type RatioStat, type Verdict } from './ratios';
import { fmt, imagesPerSec, share } from './report';
import type { BenchResult, TargetCheck } from './result';
import type { Op, Runtime } from './schema';
import { OPS } from './schema';

interface Judged {
  label: string;
  stat: RatioStat;
  verdict: Verdict;
}

const INFERENCE: readonly Op[] = ['encode', 'decode', 'encode+decode'];

function judged(r: BenchResult, node: (config: string, batch: number, op: Op) => Runtime, peer: Runtime, goal: number, ops: readonly Op[]): Judged[] {
  const out: Judged[] = [];
  for (const config of r.options.configs) {
    for (const batch of r.options.batches) {
      for (const op of ops) {
        const rt = node(config, batch, op);
        const a = findRow(r, rt, config, batch, op);
        const b = findRow(r, peer, config, batch, op);
        if (!a || !b) continue;
        const stat = ratioStat(a, b);
        out.push({ label: `${config} b${batch} ${op}${rt === 'node-aoti' ? ' (AOTI)' : ''}`, stat, verdict: verdict(stat, goal) });
      }
    }
  }
  return out;
}

function listRows(rows: Judged[]): string {
  return rows
    .slice(0, 5)
    .map((x) => `${x.label} ${formatRatio(x.stat)}`)
    .join(', ');
}

function ratioTarget(name: string, goal: number, rows: Judged[], why: (missed: Judged[], unresolved: Judged[]) => string): TargetCheck {
  if (rows.length === 0) return { target: name, goal: `≥ ${goal}×`, measured: 'no comparable rows', status: 'not measured', why: null };
  const count = (v: Verdict): number => rows.filter((x) => x.verdict === v).length;
  const worst = [...rows].sort((a, b) => a.stat.median - b.stat.median)[0]!;
  const missed = rows.filter((x) => x.verdict === 'not met');
  const unresolved = rows.filter((x) => x.verdict === 'not resolved');
  const status = missed.length > 0 ? 'not met' : unresolved.length > 0 ? 'not resolved' : 'met';
  return {
    target: name,
    goal: `≥ ${goal}× in every row, interquartile range of the rounds`,
    measured: `${count('met')} met, ${missed.length} not met, ${unresolved.length} not resolved of ${rows.length} rows; lowest median ${fmt(worst.stat.median)}× (${worst.label})`,
    status,
    why: status === 'met' ? null : why(missed, unresolved),
  };
}

function explain(missed: Judged[], unresolved: Judged[], cause: string): string {
  const parts: string[] = [];
  if (missed.length > 0) parts.push(`Below in most rounds (interquartile range under the goal): ${listRows(missed)}.`);
  if (unresolved.length > 0) parts.push(`Interquartile range crosses the goal: ${listRows(unresolved)}.`);
  return `${parts.join(' ')} ${cause}`;
}

export function judgeTargets(r: BenchResult, perCallUs: number | null): TargetCheck[] {
  const noisy =
    r.machine.loadAtStart > 0.5 || (r.machine.loadAtEnd ?? 0) > 0.5
      ? ` The machine was shared during this run (load ${fmt(r.machine.loadAtStart)} → ${fmt(r.machine.loadAtEnd)} on ${r.machine.cores} cores): the per-round spread shows how much that moved each ratio.`
      : '';
  const api = (config: string, batch: number, op: Op): Runtime => nodeRuntime(r, config, batch, op);
  const scripted = (): Runtime => 'node-addon';
  const t: TargetCheck[] = [];
  t.push(
    ratioTarget('Node vs Python eager (inference: the compiled package where the model has one; training: the C++ engine)', 1.0, judged(r, api, 'python-eager', 1.0, OPS), (m, u) =>
      explain(m, u, `Inference rows run the path the Tokenizer takes; training rows the C++ train engine on the TorchScript file, against eager PyTorch with torch.optim.AdamW at its defaults (on CPU the per-parameter update; the engine runs aten's fused AdamW kernel).${noisy}`)),
  );
  t.push(
    ratioTarget('Node vs Python TorchScript (same rows)', 1.0, judged(r, api, 'python-torchscript', 1.0, OPS), (m, u) =>
      explain(m, u, `Training rows run the same file on the same libtorch: a gap there is the train engine (autograd of the scripted module is the same), not the kernels.${noisy}`)),
  );
  t.push(
    ratioTarget('Node vs onnxruntime-node (inference)', 1.0, judged(r, api, 'onnxruntime-node', 1.0, INFERENCE), (m, u) =>
      explain(m, u, `Rows marked (AOTI) run inductor's compiled code (fused elementwise/normalisation kernels, one OpenMP region per fused group, oneDNN/MKL convolutions and GEMMs); the others the frozen TorchScript file. onnxruntime runs MLAS kernels; both sides' worker threads spin a bounded while between kernels (ORT's session.intra_op.allow_spinning, libgomp's default wait policy) unless --omp-wait passive makes libtorch's sleep.${noisy}`)),
  );
  t.push(
    ratioTarget('Node TorchScript vs Python TorchScript (the same file: binding and engine only)', 1.0, judged(r, scripted, 'python-torchscript', 1.0, OPS), (m, u) =>
      explain(m, u, `Both run the same file on the same libtorch; inference differs by the addon's load-time optimize (freeze, channels_last) and the call boundary, training by the C++ engine versus torch.optim.${noisy}`)),
  );
  for (const config of r.options.configs.filter((c) => c !== 'tiny')) {
    for (const op of ['encode', 'decode'] as const) {
      const batch = maxOf(r.options.batches);
      const rt = api(config, batch, op);
      const ips = imagesPerSec(r, rt, config, batch, op);
      const s = ips && !ips.derived ? share(r, config, op, ips.v) : null;
      const best = r.rows.filter((x) => x.config === config && x.batch === batch && x.op === op).map((x) => ({ rt: x.runtime, s: share(r, config, op, x.imagesPerSec) }));
      const peerBest = best.filter((x) => x.rt !== rt && x.s !== null).sort((a, b) => b.s! - a.s!)[0];
      t.push({
        target: `Share of the measured GEMM peak: ${config} b${batch} ${op} (Node${rt === 'node-aoti' ? ', AOTI' : ''})`,
        goal: '≥ 80%',
        measured: s === null ? 'not measured' : `${(s * 100).toFixed(0)}%${peerBest ? ` (best peer: ${peerBest.rt} ${(peerBest.s! * 100).toFixed(0)}%)` : ''}`,
        status: s === null ? 'not measured' : s >= 0.8 ? 'met' : 'not met',
        why:
          s === null || s >= 0.8
            ? null
            : `FLOP/img counts matmul, convolution and attention only; the rest of the time goes to what the count leaves out (GroupNorm, SiLU, upsampling copies, softmax) and to convolutions whose shapes run below the square-GEMM rate (3×3 convolutions over 256² maps with 128 channels, the VQGAN's first and last levels).${noisy}`,
      });
    }
  }
  t.push({
    target: 'Per-call overhead (no-op method, runSync)',
    goal: '≤ 10 µs',
    measured: perCallUs === null ? 'not measured' : `${fmt(perCallUs)} µs`,
    status: perCallUs === null ? 'not measured' : perCallUs <= 10 ? 'met' : 'not met',
    why: perCallUs === null || perCallUs <= 10 ? null : `runSync crosses N-API twice on the JS thread (argument check, result wrapper with its finalizer) around TorchScript's own method dispatch.${noisy}`,
  });
  const e = r.eventloop;
  t.push({
    target: 'Event-loop p99 lag (1 ms timer, 4 concurrent tokenize calls)',
    goal: '≤ 10 ms',
    measured: e === null ? 'not measured' : `${fmt(e.p99Ms)} ms (idle floor ${fmt(e.idleP99Ms)} ms)`,
    status: e === null ? 'not measured' : e.p99Ms <= 10 ? 'met' : 'not met',
    why:
      e === null || e.p99Ms <= 10
        ? null
        : e.p99Ms <= e.idleP99Ms + 1
          ? `The same timer with nothing running has p99 ${fmt(e.idleP99Ms)} ms on this machine: the lateness is the machine's scheduling (other processes on the cores), not work on the JS thread. Rerun on an idle machine.${noisy}`
          : `Some step runs on the JS thread long enough to delay the timer (image assembly, tensor wrapping, or GC of large external buffers), or the 2 cores are saturated by libtorch's intra-op threads plus the libuv pool, leaving the JS thread waiting for a core.${noisy}`,
  });
  for (const mm of r.memory) {
    const mb = (mm.growthAfterWarmupMiB * 2 ** 20) / 1e6;
    t.push({
      target: `RSS growth: ${mm.what}`,
      goal: '≤ 50 MB after warm-up',
      measured: `${fmt(mb, 1)} MB over ${mm.totalCalls - mm.warmupCalls} calls (slope ${fmt(mm.slopeMiBPer1000, 2)} MiB / 1000 calls)`,
      status: mb <= 50 ? 'met' : 'not met',
      why: mb <= 50 ? null : 'RSS keeps rising after warm-up: either tensors kept alive by JS objects the GC has not collected yet (external memory not reported), or a native leak; scripts/asan tells the two apart.',
    });
  }
  return t;
}
