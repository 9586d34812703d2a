// The fuzz targets: every parser written in this repository, fed bytes. The property each one
// checks (harness.ts): any input gives a result or a DoveError with a documented code; never another
// exception, never more than a bounded time. Some targets also check a round trip where one exists.
// Seeds: test/fuzz/corpus/<target>/ (small files, checked in; findings of long runs are added there).
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type fc from 'fast-check';
import { BpeTokenizer } from '../../lib/model/bpe';
import { parseArgs } from '../../lib/cli/args';
import type { Command } from '../../lib/cli/command';
import { commandLoaders } from '../../lib/cli/commands/index';
import { parseBatchCsv } from '../../lib/cli/commands/reconstruct-batch';
import { formatCsv, parseCsv } from '../../lib/base/csv';
import { isDoveError } from '../../lib/base/errors';
import { parsePythonBatch, parsePythonClassNames } from '../../lib/eval/cifar';
import { readPickle } from '../../lib/eval/pickle';
import { parseLengthsCsv } from '../../lib/eval/stats';
import { parseDoveMeta } from '../../lib/model/model-file';
import { parseSafetensors, serializeSafetensors } from '../../lib/io/safetensors';
import { parseAnnotationsText } from '../../lib/trainer/annotations';
import { parseState } from '../../lib/trainer/checkpoint';
import { inputs, textOf } from './mutate';

export const CORPUS = resolve(__dirname, '..', '..', '..', 'test', 'fuzz', 'corpus');

export interface FuzzTarget {
  name: string;
  /** What it covers, for reports. */
  covers: string;
  /** Loads what the target needs once (e.g. the CLI commands); seeds come from the corpus. */
  setup?: () => Promise<void>;
  arbitrary(seeds: readonly Uint8Array[]): fc.Arbitrary<Uint8Array>;
  /** Throws for a bad input (the harness judges what was thrown); checks round trips itself. */
  run(input: Uint8Array): void;
}

export function seedsOf(target: string): Uint8Array[] {
  const dir = join(CORPUS, target);
  let names: string[];
  try {
    names = readdirSync(dir).sort();
  } catch {
    return [];
  }
  return names.map((n) => new Uint8Array(readFileSync(join(dir, n))));
}

/** A failure of a round trip: not a DoveError, so the harness reports it. */
class RoundTripError extends Error {}

/**
 * Runs every check even when one throws, then rethrows: an exception that is not a DoveError first
 * (what the harness reports), else the first DoveError, so no check's failure hides another's.
 */
function every(...checks: (() => void)[]): void {
  const errors: unknown[] = [];
  for (const check of checks) {
    try {
      check();
    } catch (error) {
      errors.push(error);
    }
  }
  const worst = errors.find((e) => !isDoveError(e)) ?? errors[0];
  if (worst !== undefined) throw worst;
}

function sameBytes(a: ArrayBufferView, b: ArrayBufferView): boolean {
  const x = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const y = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

let commands: Command[] = [];

const SAMPLE_QUERIES = ['what is in the picture?', 'the red car, left of the tree', '', '  spaces  and\ttabs\n', 'naïve café 東京 🙂'];

export const TARGETS: readonly FuzzTarget[] = [
  {
    name: 'pickle',
    covers: 'lib/eval/pickle.ts readPickle, lib/eval/cifar.ts CIFAR python batches and meta',
    arbitrary: (seeds) => inputs(seeds),
    run(input) {
      every(
        () => readPickle(input, 'fuzz.pkl'),
        () => parsePythonBatch(input, 'fuzz.pkl', 'labels', 10),
        () => parsePythonClassNames(input, 'fuzz.pkl', 'label_names'),
      );
    },
  },
  {
    name: 'safetensors',
    covers: 'lib/io/safetensors.ts parseSafetensors (and serialize -> parse round trip of what it accepts)',
    arbitrary: (seeds) => inputs(seeds, { text: true }),
    run(input) {
      const file = parseSafetensors(input, 'fuzz.safetensors');
      const tensors = Object.fromEntries([...file.tensors].map(([k, t]) => [k, { data: t.data, shape: t.shape, dtype: t.dtype }]));
      const again = parseSafetensors(serializeSafetensors(tensors, file.metadata), 'round-trip');
      for (const [k, t] of file.tensors) {
        const u = again.tensors.get(k);
        if (u === undefined || u.dtype !== t.dtype || u.shape.join() !== t.shape.join() || !sameBytes(u.data, t.data)) throw new RoundTripError(`tensor ${k} changed in a round trip`);
      }
    },
  },
  {
    name: 'dove-json',
    covers: 'lib/model/model-file.ts parseDoveMeta (dove.json of every export)',
    arbitrary: (seeds) => inputs(seeds, { text: true }),
    run(input) {
      const meta = parseDoveMeta('fuzz.pt', textOf(input));
      for (const key of ['imageSize', 'maxTokens', 'tokenDim'] as const) {
        if (!Number.isSafeInteger(meta[key]) || meta[key] < 1) throw new RoundTripError(`accepted ${key} ${meta[key]}`);
      }
    },
  },
  {
    name: 'annotations',
    covers: 'lib/trainer/annotations.ts parseAnnotationsText (Q-DOVE annotations)',
    arbitrary: (seeds) => inputs(seeds, { text: true }),
    run(input) {
      parseAnnotationsText('fuzz.json', textOf(input));
    },
  },
  {
    name: 'csv',
    covers: 'lib/base/csv.ts parseCsv/formatCsv round trip, lib/eval/stats.ts parseLengthsCsv, reconstruct-batch parseBatchCsv',
    arbitrary: (seeds) => inputs(seeds, { text: true }),
    run(input) {
      const text = textOf(input);
      every(
        () => {
          const { records } = parseCsv(text);
          const again = parseCsv(formatCsv(records)).records;
          if (JSON.stringify(again) !== JSON.stringify(records)) throw new RoundTripError('CSV records changed in a format -> parse round trip');
        },
        () => parseLengthsCsv(text, 'fuzz.csv'),
        () => parseBatchCsv(text, 'fuzz.csv'),
      );
    },
  },
  {
    name: 'bpe',
    covers: 'lib/model/bpe.ts BpeTokenizer.fromJson (tokenizer.json) and encode',
    arbitrary: (seeds) => inputs(seeds, { text: true }),
    run(input) {
      const text = textOf(input);
      const tok = BpeTokenizer.fromJson(text);
      for (const q of [...SAMPLE_QUERIES, text.slice(0, 64)]) {
        const ids = tok.encode(q);
        if (!ids.every((id) => Number.isSafeInteger(id) && id >= 0)) throw new RoundTripError(`encode gave ids ${ids.join(',')}`);
      }
    },
  },
  {
    name: 'trainer-json',
    covers: 'lib/trainer/checkpoint.ts parseState (trainer.json of a checkpoint)',
    arbitrary: (seeds) => inputs(seeds, { text: true }),
    run(input) {
      parseState('trainer.json', textOf(input));
    },
  },
  {
    name: 'cli-args',
    covers: 'lib/cli/args.ts parseArgs against the options of every dove command',
    async setup() {
      commands = await Promise.all(Object.values(commandLoaders).map((load) => load()));
    },
    arbitrary: (seeds) => inputs(seeds, { text: true }),
    run(input) {
      // NUL-separated arguments (no argument can hold a NUL byte).
      const argv = textOf(input).split('\0');
      every(...commands.map((command) => () => void parseArgs(argv, command.specs)));
    },
  },
];
