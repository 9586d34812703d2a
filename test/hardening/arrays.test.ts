// Issue 15 row 8, the helpers: minOf/maxOf behave as Math.min/Math.max at any length, and no code in
// lib/ or bench/ spreads an array into Math.min/max or push again.
import test from 'ava';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { maxOf, minOf } from '../../lib/base/arrays';
import { ROOT } from './helpers';

const N = 200_000;

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
