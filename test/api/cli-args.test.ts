import test from 'ava';
import { checkIntRange, getFlag, getIntList, getNumber, getString, parseArgs, UsageError } from '../../lib/cli/args';
import { defaultLengths } from '../../lib/model/model-file';
import { formatDuration, ProgressBar } from '../../lib/cli/progress';

const SPECS = {
  model: { type: 'string' },
  lengths: { type: 'intList', min: 1, max: 64 },
  'batch-size': { type: 'int', min: 1, max: 1024 },
  threshold: { type: 'float', min: 0, max: 1 },
  json: { type: 'flag' },
  output: { type: 'string', alias: 'o' },
  device: { type: 'string' },
} as const;

test('parses typed options, aliases and positionals', (t) => {
  const args = parseArgs(['a.png', '--lengths', '8,16', '-o', 'g.png', '--json', '--threshold=0.25', '--batch-size', '4', '--', '--weird.png'], SPECS);
  t.deepEqual(args.positionals, ['a.png', '--weird.png']);
  t.deepEqual(getIntList(args, 'lengths'), [8, 16]);
  t.is(getString(args, 'output'), 'g.png');
  t.true(getFlag(args, 'json'));
  t.is(getNumber(args, 'threshold'), 0.25);
  t.is(getNumber(args, 'batch-size'), 4);
  t.is(getString(args, 'model'), undefined);
});

test('bad flags give clear messages', (t) => {
  const bad: [string[], string][] = [
    [['--lengths', '8,0'], 'Expected integer between 1 and 64 for --lengths but received 0'],
    [['--lengths', '8,,16'], "Expected comma-separated integers for --lengths but received '8,,16'"],
    [['--lengths', '1.5'], 'Expected integer between 1 and 64 for --lengths but received 1.5'],
    [['--batch-size', 'abc'], 'Expected integer between 1 and 1024 for --batch-size but received abc'],
    [['--threshold', '2'], 'Expected number between 0 and 1 for --threshold but received 2'],
    [['--lenghts', '8'], 'Unknown option --lenghts (did you mean --lengths?)'],
    [['--model'], 'Missing value for --model'],
    [['--json=yes'], '--json takes no value but received yes'],
    [['-x'], 'Unknown option -x'],
    [['--device', 'cpu', '--device', 'cuda'], '--device given more than once'],
  ];
  for (const [argv, message] of bad) {
    const err = t.throws(() => parseArgs(argv, SPECS), { instanceOf: UsageError });
    t.is(err?.message, message);
  }
  t.throws(() => checkIntRange([8, 128], '--lengths', 1, 64), { message: 'Expected integer between 1 and 64 for --lengths but received 128' });
});

test('default lengths are powers of two up to max', (t) => {
  t.deepEqual(defaultLengths(64), [1, 2, 4, 8, 16, 32, 64]);
  t.deepEqual(defaultLengths(256, 8), [8, 16, 32, 64, 128, 256]);
  t.deepEqual(defaultLengths(48, 8), [8, 16, 32, 48]);
});

test('progress bar: rate, ETA, and periodic plain lines off a TTY', (t) => {
  let now = 0;
  const lines: string[] = [];
  const stream = { isTTY: false, write: (s: string) => lines.push(s) } as unknown as NodeJS.WriteStream;
  const bar = new ProgressBar(10, { stream, label: 'reconstruct', intervalMs: 5000, now: () => now });
  now = 1000;
  bar.tick(); // first line is printed at once
  now = 2000;
  bar.tick(1, 1); // within the interval: silent
  t.is(lines.length, 1);
  now = 7000;
  bar.tick(2);
  t.is(lines.length, 2);
  t.regex(lines[1]!, /^reconstruct \[#+-+\] 4\/10 40% 0\.57\/s elapsed 00:07 ETA 00:11 1 failed\n$/);
  bar.finish();
  t.is(lines.length, 3, 'finish always prints the final line');
  t.is(formatDuration(3725), '1:02:05');
  t.is(formatDuration(NaN), '--:--');
});
