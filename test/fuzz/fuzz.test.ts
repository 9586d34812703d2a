// The short fuzz run of npm test: every target (targets.ts) for SECONDS in its own child process,
// with a fixed seed so that a failure here reproduces (`bash scripts/fuzz --targets T --seed S
// --seconds 10`). Then the harness's own checks: it must report a target that throws something
// other than a DoveError, one that is slow, one that hangs and one that crashes.
import test from 'ava';
import { join } from 'node:path';
import { superviseTarget } from './supervise';
import { TARGETS } from './targets';

const SECONDS = 8;
const SEED = 20261130;

for (const target of TARGETS) {
  test.serial(`fuzz ${target.name}: ${SECONDS} s, every input a result or a documented DoveError (${target.covers})`, async (t) => {
    const run = await superviseTarget(target.name, { seed: SEED, ms: SECONDS * 1000 });
    t.log(`${run.runs} inputs in ${(run.ms / 1000).toFixed(1)} s`);
    t.is(run.outcome, 'ok', `${run.finding?.message ?? run.detail ?? ''}\ninput (base64): ${run.finding?.input ?? ''}\nreproduce: bash scripts/fuzz --targets ${target.name} --seed ${SEED} --seconds ${SECONDS}`);
    // The corpus alone is a handful of inputs; a run that did not get far did not fuzz.
    t.true(run.runs > 50, `only ${run.runs} inputs ran`);
  });
}

const SELF_TEST = join(__dirname, 'selftest-targets.js');

test('the harness reports what breaks the property: another exception, a slow input, a hang, a crash', async (t) => {
  const [thrown, slow, hung, crashed] = await Promise.all([
    superviseTarget('type-error', { seed: 1, ms: 5000, module: SELF_TEST }),
    superviseTarget('slow', { seed: 1, ms: 5000, module: SELF_TEST, perInputMs: 50 }),
    superviseTarget('hang', { seed: 1, ms: 5000, module: SELF_TEST, hangMs: 3000 }),
    superviseTarget('crash', { seed: 1, ms: 5000, module: SELF_TEST }),
  ]);
  t.is(thrown.outcome, 'finding');
  t.regex(thrown.finding!.message, /^TypeError: /);
  // Shrunk to the smallest input that fails: one byte 0x2a.
  t.is(Buffer.from(thrown.finding!.input, 'base64').toString('hex'), '2a');
  t.is(slow.outcome, 'finding');
  t.regex(slow.finding!.message, /slow input/);
  t.is(hung.outcome, 'hang');
  t.is(crashed.outcome, 'crash');
  t.regex(crashed.detail!, /SIGSEGV|SIGABRT|exit/);
  const clean = await superviseTarget('dove-error', { seed: 1, ms: 2000, module: SELF_TEST });
  t.is(clean.outcome, 'ok', clean.finding?.message);
});
