// Issue 15 row 8: no reduction or append over an unbounded array may pass its elements as call
// arguments (Math.min(...values) overflows the stack past ~120k elements).
import test from 'ava';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { maxOf, minOf } from '../../lib/arrays';
import { histogramPng, lineChartPng } from '../../lib/eval/plot';
import { lengthStats } from '../../lib/eval/stats';
import { lossCurvePng } from '../../lib/trainer/plots';
import { tempDir } from '../api/helpers';
import { ROOT, runDove } from './helpers';

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

test('row 8: minOf / maxOf agree with Math.min / Math.max, edge cases included', (t) => {
  const cases: number[][] = [[], [3], [1, 2, 3], [3, -1, 2], [0, -0], [-0, 0], [1, NaN, 2], [Infinity, -Infinity], [-5e-324, 5e-324]];
  for (const c of cases) {
    t.true(Object.is(minOf(c), Math.min(...c)), `min of [${c.join(',')}]`);
    t.true(Object.is(maxOf(c), Math.max(...c)), `max of [${c.join(',')}]`);
    t.true(Object.is(minOf(c, 1), Math.min(1, ...c)), `min with initial of [${c.join(',')}]`);
    t.true(Object.is(maxOf(c, 1e-6), Math.max(1e-6, ...c)), `max with initial of [${c.join(',')}]`);
  }
  const big = Float64Array.from({ length: N }, (_, i) => Math.sin(i) * i);
  t.is(minOf(big), big.reduce((a, b) => Math.min(a, b), Infinity));
  t.is(maxOf(big), big.reduce((a, b) => Math.max(a, b), -Infinity));
});

test('row 8: no Math.min/max or push over a spread array anywhere in lib/ or bench/', (t) => {
  const offenders: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('.ts')) {
        readFileSync(path, 'utf8').split('\n').forEach((line, i) => {
          if (/^\s*(\/\/|\/?\*)/.test(line)) return;
          if (/Math\.(min|max)\([^)]*\.\.\./.test(line) || /\.(push|unshift)\(\s*\.\.\./.test(line) || /String\.fromCharCode\(\s*\.\.\./.test(line)) {
            offenders.push(`${path.slice(ROOT.length + 1)}:${i + 1}: ${line.trim()}`);
          }
        });
      }
    }
  };
  walk(join(ROOT, 'lib'));
  walk(join(ROOT, 'bench'));
  t.deepEqual(offenders, []);
});
