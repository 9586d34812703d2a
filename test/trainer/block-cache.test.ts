// A CPU training engine installs the block cache in front of libtorch's CPU allocator
// (native/cpu_block_cache.h), as an optimised load does: every step frees and allocates the same
// tensors again, and without it glibc's heaps kept them with an RSS saw-tooth (docs/TRAINING.md,
// "Memory over a long run"). Each case runs in a fresh process: the cache is process-wide.
import test from 'ava';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describeExit, runChild } from '../native/helpers';
import { ROOT } from './helpers';

const OPTIM = join(ROOT, 'test', 'fixtures', 'generated', 'optim');

interface CacheOutcome {
  before: boolean;
  afterLoad: boolean;
  installed: boolean;
  capBytes: number;
  reused: number;
  cachedBytes: number;
  losses: number[];
}

function train(env: NodeJS.ProcessEnv = {}): CacheOutcome {
  const fixture = JSON.parse(readFileSync(join(OPTIM, 'optim.json'), 'utf8')) as { model: string; options: unknown };
  // 16384 rows: the step's inputs, activations and gradients are blocks of 128 KiB and more, the ones the cache keeps.
  const r = runChild(`
    const b = binding();
    const before = b.cpuBlockCache().installed;
    const module = await b.loadModule(${JSON.stringify(join(OPTIM, fixture.model))}, 'cpu', []);
    const afterLoad = b.cpuBlockCache().installed;
    const engine = b.createTrainEngine(module, ${JSON.stringify(fixture.options)});
    const { installed, capBytes } = b.cpuBlockCache();
    const rows = 16384;
    const x = b.tensorFromArray(Float32Array.from({ length: rows * 6 }, (_, i) => Math.sin(i)), [rows, 6], 'float32');
    const y = b.tensorFromArray(Float32Array.from({ length: rows * 4 }, (_, i) => Math.cos(i)), [rows, 4], 'float32');
    const losses = [];
    for (let i = 0; i < 4; i++) losses.push((await engine.trainStep([x, y])).parts.loss);
    const { reused, cachedBytes } = b.cpuBlockCache();
    engine.dispose();
    module.dispose();
    report({ before, afterLoad, installed, capBytes, reused, cachedBytes, losses });
  `, { env });
  if (r.status !== 0 || r.result === undefined) throw new Error(describeExit(r));
  return r.result as CacheOutcome;
}

test('a CPU training engine installs the block cache, and its steps reuse the blocks it keeps', (t) => {
  if (!existsSync(join(OPTIM, 'optim.json'))) return t.fail('optimizer fixture missing: run scripts/setup');
  const on = train();
  t.false(on.before, 'a fresh process has libtorch\'s own allocator');
  t.false(on.afterLoad, 'loading a module to train does not install it');
  t.true(on.installed);
  t.is(on.capBytes, 512 * 2 ** 20, 'DOVE_CPU_CACHE_MB defaults to 512');
  t.true(on.reused > 0, `steps 2-4 reuse the blocks step 1 freed (reused ${on.reused})`);
  t.true(on.cachedBytes > 0);
  // The control: turned off, the same steps run on libtorch's allocator and compute the same losses.
  const off = train({ DOVE_CPU_CACHE_MB: '0' });
  t.false(off.installed);
  t.is(off.reused, 0);
  t.deepEqual(off.losses, on.losses);
  t.true(on.losses.every(Number.isFinite));
  t.is(train({ DOVE_CPU_CACHE_MB: '64' }).capBytes, 64 * 2 ** 20);
});
