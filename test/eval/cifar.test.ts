import test from 'ava';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readDataset, type LabelledDataset } from '../../lib/eval/cifar';
import { NdArray, PyDict, readPickle } from '../../lib/eval/pickle';
import { EVAL, tempDir } from './fixtures';

const C = join(EVAL, 'cifar');
interface SplitRef {
  count: number;
  fineLabels: number[];
  firstImageChw: number[];
  pixelSum: number;
}
const ref = JSON.parse(readFileSync(join(C, 'cifar-reference.json'), 'utf8')) as { classes: number; fineLabelNames: string[]; train: SplitRef; test: SplitRef };

function checkAgainstReference(t: import('ava').ExecutionContext, d: LabelledDataset): void {
  for (const name of ['train', 'test'] as const) {
    const split = d[name];
    const r = ref[name];
    t.is(split.count, r.count, name);
    t.deepEqual([...split.labels.subarray(0, 20)], r.fineLabels, `${name} labels`);
    if (split.images.kind !== 'pixels') return t.fail('expected decoded pixels');
    t.is(split.images.width, 32);
    // The files store planes (R 1024, G 1024, B 1024); the reader interleaves: pixel p of channel 0 at 3p.
    const first = split.images.data.subarray(0, 3072);
    t.deepEqual(
      r.firstImageChw.map((_, p) => first[3 * p]),
      r.firstImageChw,
      `${name} first image red plane`,
    );
    let sum = 0;
    for (const v of split.images.data) sum += v;
    t.is(sum, r.pixelSum, `${name} pixel sum`);
  }
}

test('CIFAR-100 python pickles as distributed (Python 2 protocol 2) parse exactly', async (t) => {
  const d = await readDataset(join(C, 'python'));
  t.is(d.format, 'cifar-python');
  t.is(d.classNames.length, 100);
  t.deepEqual(d.classNames, ref.fineLabelNames);
  checkAgainstReference(t, d);
});

test('CIFAR-100 python pickles written by Python 3 (protocol 2, _codecs bytes, numpy._core) parse exactly', async (t) => {
  const d = await readDataset(join(C, 'python3'), { format: 'cifar-python' });
  checkAgainstReference(t, d);
});

test('CIFAR-100 binary version parses exactly, fine and coarse labels', async (t) => {
  const d = await readDataset(join(C, 'binary'));
  t.is(d.format, 'cifar-binary');
  t.deepEqual(d.classNames, ref.fineLabelNames);
  checkAgainstReference(t, d);
  const coarse = await readDataset(join(C, 'binary'), { label: 'coarse' });
  t.is(coarse.classNames.length, 20);
  t.deepEqual([...coarse.train.labels.subarray(0, 20)], ref.train.fineLabels.map((l) => Math.floor(l / 5)));
  const py = await readDataset(join(C, 'python'), { label: 'coarse' });
  t.deepEqual([...py.train.labels], [...coarse.train.labels]);
});

test('image-folder layout: classes from folder names, labels by sorted class', async (t) => {
  const d = await readDataset(join(C, 'folder'));
  t.is(d.format, 'folder');
  t.deepEqual(d.classNames, ['class_00', 'class_01', 'class_02']);
  t.is(d.train.count, 18);
  t.is(d.test.count, 9);
  if (d.train.images.kind !== 'files') return t.fail('expected files');
  t.true(d.train.images.paths[0]!.endsWith(join('class_00', '0.png')));
  t.deepEqual([...d.test.labels], [0, 0, 0, 1, 1, 1, 2, 2, 2]);
});

test('pickle reader: values, memo and refusal to call anything else', (t) => {
  const blob = readFileSync(join(C, 'python', 'cifar-100-python', 'meta'));
  const meta = readPickle(blob, 'meta');
  t.true(meta instanceof PyDict);
  const dict = meta as PyDict;
  t.deepEqual([...dict.entries.keys()].sort(), ['coarse_label_names', 'fine_label_names']);
  const train = readPickle(readFileSync(join(C, 'python', 'cifar-100-python', 'train')), 'train') as PyDict;
  const data = train.entries.get('data');
  t.true(data instanceof NdArray);
  t.deepEqual((data as NdArray).shape, [ref.train.count, 3072]);
  // A pickle that calls os.system: rejected by name, never executed.
  const evil = Buffer.concat([Buffer.from('\x80\x02cos\nsystem\nU\x04echo\x85R.', 'latin1')]);
  t.throws(() => readPickle(evil, 'evil.pkl'), { message: /evil\.pkl: .*refusing to call os\.system/ });
});

test('missing and malformed files fail with the file name and what was expected', async (t) => {
  const bad = join(C, 'bad');
  const cases: [string, RegExp][] = [
    ['truncated', /cifar-100-python\/train: malformed pickle at byte \d+: file ends/],
    ['notpickle', /cifar-100-python\/train: malformed pickle at byte 0: expected a binary pickle/],
    ['nolabels', /cifar-100-python\/train: expected a list of labels under key 'fine_labels' but there is no such key/],
    ['badbin', /cifar-100-binary\/train\.bin: 3075 bytes is not a whole number of 3074-byte CIFAR records \(1 coarse \+ 1 fine label byte \+ 3072 pixel bytes\)/],
  ];
  for (const [dir, message] of cases) {
    const error = await t.throwsAsync(readDataset(join(bad, dir)), { message }, dir);
    t.is((error as { code?: string }).code, 'INVALID_DATASET', dir);
  }
  // A complete layout minus one file: FILE_NOT_FOUND naming it.
  const partial = tempDir('partial');
  mkdirSync(join(partial, 'cifar-100-python'));
  for (const f of ['meta', 'train']) copyFileSync(join(C, 'python', 'cifar-100-python', f), join(partial, 'cifar-100-python', f));
  const missing = await t.throwsAsync(readDataset(partial), { message: /cifar-100-python\/test: file not found \(expected a CIFAR python batch/ });
  t.is((missing as { code?: string }).code, 'FILE_NOT_FOUND');
  const binary = tempDir('binary');
  mkdirSync(join(binary, 'cifar-100-binary'));
  copyFileSync(join(C, 'binary', 'cifar-100-binary', 'train.bin'), join(binary, 'cifar-100-binary', 'train.bin'));
  await t.throwsAsync(readDataset(binary), { message: /test\.bin: file not found \(expected CIFAR binary records of 3074 bytes/ });
  // A label outside the class list.
  const labels = tempDir('labels');
  mkdirSync(join(labels, 'cifar-100-binary'));
  const record = new Uint8Array(3074);
  record[1] = 200;
  writeFileSync(join(labels, 'cifar-100-binary', 'train.bin'), record);
  writeFileSync(join(labels, 'cifar-100-binary', 'test.bin'), new Uint8Array(3074));
  await t.throwsAsync(readDataset(labels), { message: /train\.bin: record 0 has label 200, expected one in \[0, 100\)/ });
  // Nothing recognisable, and a wrong explicit format.
  await t.throwsAsync(readDataset(tempDir('nothing')), { message: /no data set layout recognised/ });
  await t.throwsAsync(readDataset(join(C, 'binary'), { format: 'cifar-python' }), { message: /meta: file not found/ });
  await t.throwsAsync(readDataset(join(C, 'nope')), { message: /data root not found/ });
});
