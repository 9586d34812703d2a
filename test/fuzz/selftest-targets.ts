// Targets that break the fuzz property on purpose, one way each (fuzz.test.ts checks that the harness
// reports every one). Loaded by child.ts through its `module` argument, never by the real runs.
import fc from 'fast-check';
import { DoveError } from '../../lib/base/errors';
import type { FuzzTarget } from './targets';

const bytes = (): fc.Arbitrary<Uint8Array> => fc.uint8Array({ maxLength: 64 });

export const TARGETS: readonly FuzzTarget[] = [
  {
    name: 'type-error',
    covers: 'throws a TypeError when a byte is 0x2a',
    arbitrary: bytes,
    run(input) {
      if (input.includes(0x2a)) throw new TypeError('found 0x2a');
      if (input.length > 0 && input[0]! > 200) throw new DoveError('a documented refusal', 'INVALID_ARGUMENT');
    },
  },
  {
    name: 'slow',
    covers: 'spins 100 ms of CPU for inputs longer than 8 bytes',
    arbitrary: bytes,
    run(input) {
      if (input.length > 8) {
        const start = process.cpuUsage();
        while (process.cpuUsage(start).user < 100_000);
      }
    },
  },
  {
    name: 'hang',
    covers: 'never returns for inputs longer than 8 bytes',
    arbitrary: bytes,
    run(input) {
      if (input.length > 8) for (;;);
    },
  },
  {
    name: 'crash',
    covers: 'dies by a signal for inputs longer than 8 bytes',
    arbitrary: bytes,
    run(input) {
      if (input.length > 8) process.kill(process.pid, 'SIGSEGV');
    },
  },
  {
    name: 'dove-error',
    covers: 'only documented DoveErrors',
    arbitrary: bytes,
    run(input) {
      if (input.length % 2 === 1) throw new DoveError('odd', 'INVALID_ARGUMENT');
    },
  },
];
