// Issue 15 row 8: no reduction or append over an unbounded array may pass its elements as call
// arguments (Math.min(...values) overflows the stack past ~120k elements).
import test from 'ava';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { histogramPng, lineChartPng } from '../../lib/render/plot';
import { lengthStats } from '../../lib/eval/stats';
import { lossCurvePng } from '../../lib/trainer/plots';
import { tempDir } from '../api/helpers';
import { runDove } from './helpers';

const N = 200_000;

test('row 8: dove stats on a 200k-row lengths.csv prints the statistics', async (t) => {
  const { dir, cleanup } = tempDir('rows');
  t.teardown(cleanup);
  const csv = join(dir, 'lengths.csv');
  const lines = ['image,eos_length,psnr_auto'];
  for (let i = 0; i < N; i++) lines.push(`img-${i}.png,${1 + (i % 64)},20.000`);
  writeFileSync(csv, `${lines.join('\n')}\n`);
  const r = await runDove(['stats', csv, '--max-tokens', '64', '--plot', join(dir, 'hist.png'), '--quiet']);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, new RegExp(`images\\s+${N}`));
  t.regex(r.stdout, /min \/ max\s+1 \/ 64/);
});

test('row 8: statistics and plots of 200k values', async (t) => {
  const values = Array.from({ length: N }, (_, i) => 1 + (i % 64));
  const s = lengthStats(values, 64);
  t.is(s.min, 1);
  t.is(s.max, 64);
  const png = await histogramPng(values, { title: 'h', xLabel: 'x' });
  t.true(png.length > 0);
  const line = await lineChartPng([{ name: 's', points: values.map((y, x) => ({ x: x + 1, y })) }], { title: 'l', xLabel: 'x', yLabel: 'y', logX: false });
  t.true(line.length > 0);
});

test('row 8: a loss curve of 200k steps is drawn', async (t) => {
  const points = Array.from({ length: N }, (_, i) => ({ step: i + 1, loss: 1 / (1 + i), rec: 0.5 / (1 + i) }));
  const png = await lossCurvePng(points, 'loss');
  t.true(png.length > 0);
});
