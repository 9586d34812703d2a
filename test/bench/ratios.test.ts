// Which Node column the bench's ratios and targets read: the path the API takes for that model.
import test from 'ava';
import { formatRatio, nodeRuntime, quantileOf, ratioStat, verdict } from '../../bench/lib/ratios';
import type { BenchResult } from '../../bench/lib/result';
import type { Op, Runtime, ThroughputRow } from '../../bench/lib/schema';

function row(runtime: Runtime, config: string, op: Op): ThroughputRow {
  return { runtime, config, batch: 1, op, imagesPerSec: 1, stepsPerSec: null, roundMs: [1], medianMs: 1 } as ThroughputRow;
}

function result(preference: BenchResult['compiledPreference']): BenchResult {
  const rows = ['tiny', 'big'].flatMap((c) => [row('node-addon', c, 'encode'), row('node-aoti', c, 'encode'), row('node-addon', c, 'train')]);
  return { rows, compiledPreference: preference } as BenchResult;
}

test('the compiled column counts for the API unless its compiler measured TorchScript faster', (t) => {
  const r = result({ tiny: { prefer: 'compiled', measured: 'm' }, big: { prefer: 'torchscript', measured: 'm' } });
  t.is(nodeRuntime(r, 'tiny', 1, 'encode'), 'node-aoti');
  t.is(nodeRuntime(r, 'big', 1, 'encode'), 'node-addon');
  t.is(nodeRuntime(r, 'tiny', 1, 'train'), 'node-addon', 'training always runs the TorchScript file');
  t.is(nodeRuntime(r, 'tiny', 16, 'encode'), 'node-addon', 'no compiled row, no compiled column');
  t.is(nodeRuntime(result(undefined), 'big', 1, 'encode'), 'node-aoti', 'results from before the measurement: the package was always used');
});

test('a ratio row is judged on the interquartile range of its rounds; the min-max stays in the cell', (t) => {
  const timed = (runtime: Runtime, roundMs: number[]): ThroughputRow => ({ ...row(runtime, 'tiny', 'decode'), roundMs, medianMs: quantileOf(roundMs, 0.5) });
  t.is(quantileOf([5, 1, 3, 2, 4], 0.25), 2);
  t.is(quantileOf([1, 2, 3, 4], 0.5), 2.5);
  // Node 1 ms every round; the peer 1.2 ms except one round where Node's side ran on a loaded machine.
  const node = timed('node-aoti', [1, 1, 1, 1.4, 1]);
  const peer = timed('onnxruntime-node', [1.2, 1.2, 1.2, 1.2, 1.2]);
  const stat = ratioStat(node, peer);
  t.is(stat.min.toFixed(3), (1.2 / 1.4).toFixed(3));
  t.is(stat.q1, 1.2);
  t.is(verdict(stat, 1.0), 'met', 'one disturbed round does not decide');
  t.is(formatRatio(stat), '1.20× (1.20–1.20; 0.86–1.20)');
  // Two of five rounds below the goal: the bulk of the rounds straddles it.
  t.is(verdict(ratioStat(timed('node-aoti', [1, 1.3, 1, 1.3, 1]), peer), 1.0), 'not resolved');
  t.is(verdict(ratioStat(timed('node-aoti', [1.3, 1.3, 1, 1.3, 1.3]), peer), 1.0), 'not met');
});
