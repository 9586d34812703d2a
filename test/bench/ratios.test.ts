// Which Node column the bench's ratios and targets read: the path the API takes for that model.
import test from 'ava';
import { nodeRuntime } from '../../bench/lib/ratios';
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
