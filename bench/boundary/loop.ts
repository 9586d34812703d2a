// A bare call loop for bench/boundary/instructions.sh: `calls` calls of one no-op form, nothing else,
// so that the instruction count of two runs with different `calls` differs only by the calls.
// Usage: node dist/bench/boundary/loop.js --model core.pt --form runSync|public|nothing --calls N
import { loadModule } from '../../lib/core/module';
import { setNumThreads } from '../../lib/core/runtime';
import { Tensor } from '../../lib/core/tensor';

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const flag = (name: string): string | undefined => argv[argv.indexOf(`--${name}`) + 1];
  const model = flag('model');
  const form = flag('form') ?? 'runSync';
  const calls = Number(flag('calls') ?? '1000');
  if (model === undefined || !['runSync', 'public', 'nothing'].includes(form) || !Number.isInteger(calls)) {
    throw new Error('usage: loop.js --model core.pt --form runSync|public|nothing --calls N');
  }
  setNumThreads(1);
  const module = await loadModule(model);
  const x = Tensor.fromArray(new Float32Array([1]));
  const raw = module.native;
  const args = [x.native];
  const none: never[] = [];
  if (form === 'runSync') for (let i = 0; i < calls; i++) raw.runSync('noop', args);
  else if (form === 'nothing') for (let i = 0; i < calls; i++) raw.runSync('nothing', none);
  else for (let i = 0; i < calls; i++) module.runSync('noop', [x]);
  module.dispose();
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
  process.exitCode = 1;
});
