import test from 'ava';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { histogramBins, histogramPng, lineChartPng, niceTicks } from '../../lib/render/plot';
import { formatTable, toCsv } from '../../lib/eval/report';
import { medianOf } from '../../lib/base/arrays';
import { folderLengths, lengthStats, readLengthsCsv } from '../../lib/eval/stats';
import { Tokenizer } from '../../lib/model/tokenizer';
import { dove, EVAL, ROOT, tempDir } from './fixtures';

test('length statistics: mean, median, std, compression against the maximum', (t) => {
  const s = lengthStats([4, 8, 8, 16, 64], 64);
  t.is(s.count, 5);
  t.is(s.mean, 20);
  t.is(s.median, 8);
  t.is(s.min, 4);
  t.is(s.max, 64);
  t.true(Math.abs(s.std - Math.sqrt((16 ** 2 + 12 ** 2 * 2 + 4 ** 2 + 44 ** 2) / 5)) < 1e-12);
  t.is(s.ratio, 20 / 64);
  t.is(s.compression, 1 - 20 / 64);
  t.is(medianOf([3, 1, 2, 10]), 2.5);
  t.is(medianOf(new Float64Array([5, 1, 3])), 3);
  t.true(Number.isNaN(medianOf([])));
  t.throws(() => lengthStats([0, 3], 64), { message: /lengths between 1 and 64 but found 0/ });
  t.throws(() => lengthStats([], 64), { message: /at least one length/ });
});

test('lengths.csv of reconstruct-batch is read; a wrong header is explained', async (t) => {
  const dir = tempDir('stats-csv');
  const csv = join(dir, 'lengths.csv');
  writeFileSync(csv, 'image,eos_length,psnr_8,psnr_auto\na.png,5,20.1,21\n"b,c.png",12,18,19\n');
  t.deepEqual(await readLengthsCsv(csv), [
    { image: 'a.png', length: 5 },
    { image: 'b,c.png', length: 12 },
  ]);
  writeFileSync(csv, 'file,len\na,1\n');
  await t.throwsAsync(readLengthsCsv(csv), { message: /expected a header with 'image' and 'eos_length'/ });
  const r = dove(['stats', join(dir, 'nothing.csv'), '--max-tokens', '64']);
  t.is(r.status, 1);
  t.regex(r.stderr, /nothing\.csv: file not found/);
});

test('histogram bins centre on integers; charts render as PNG of the requested size', async (t) => {
  const bins = histogramBins([1, 2, 2, 3, 5]);
  t.deepEqual(bins.edges, [0.5, 1.5, 2.5, 3.5, 4.5, 5.5]);
  t.deepEqual(bins.counts, [1, 2, 1, 0, 1]);
  t.deepEqual(niceTicks(0, 10), [0, 2, 4, 6, 8, 10]);
  const png = await histogramPng([1, 2, 2, 3], { title: 'lengths', xLabel: 'tokens', width: 400, height: 300, markers: [{ x: 2, label: 'mean' }] });
  const meta = await sharp(png).metadata();
  t.is(meta.format, 'png');
  t.is(meta.width, 400);
  t.is(meta.height, 300);
  const line = await lineChartPng([{ name: 'psnr', points: [{ x: 8, y: 20 }, { x: 64, y: 28 }] }], { title: 't', xLabel: 'tokens', yLabel: 'dB', references: [{ y: 25, label: 'auto' }] });
  // Not blank: the chart draws coloured lines on white.
  const { data, info } = await sharp(line).raw().toBuffer({ resolveWithObject: true });
  let coloured = 0;
  for (let i = 0; i < data.length; i += info.channels) if (Math.abs(data[i]! - data[i + 2]!) > 60) coloured++;
  t.true(coloured > 100, `${coloured} coloured pixels`);
  await t.throwsAsync(lineChartPng([{ name: 'x', points: [] }], { title: 'empty', xLabel: 'a', yLabel: 'b' }), { message: /no finite points/ });
});

test('tables and CSV: alignment, inf, quoting', (t) => {
  t.is(toCsv(['a', 'b'], [['x,y', Infinity], ['z', 0.5]]), 'a,b\n"x,y",inf\nz,0.5\n');
  const table = formatTable(['tokens', 'psnr'], [['8', 20.123456], ['auto', Infinity]], 2).split('\n');
  t.deepEqual(table, ['tokens   psnr', '------  -----', '8       20.12', 'auto      inf']);
});

test('EOS lengths over a folder with a model; bad images are skipped and reported', async (t) => {
  const tokenizer = await Tokenizer.load(join(ROOT, 'test', 'fixtures', 'generated', 'tiny-dove.pt'));
  try {
    const dir = tempDir('stats-folder');
    for (const f of ['img0', 'img1', 'img2']) writeFileSync(join(dir, `${f}.png`), readFileSync(join(EVAL, 'quality', 'real', `${f}.png`)));
    writeFileSync(join(dir, 'broken.png'), 'not a png');
    const result = await folderLengths(tokenizer, dir, { batchSize: 2 });
    t.is(result.lengths.length, 3);
    t.true(result.lengths.every((l) => l.length >= 1 && l.length <= tokenizer.maxTokens));
    t.is(result.failures.length, 1);
    t.regex(result.failures[0]!.message, /broken\.png/);
    const out = tempDir('stats-cli');
    const r = dove(['stats', dir, '--model', join(ROOT, 'test', 'fixtures', 'generated', 'tiny-dove.pt'), '--plot', join(out, 'h.png'), '--csv', join(out, 'l.csv'), '--quiet']);
    t.is(r.status, 3, 'exit code 3: some images failed');
    t.regex(r.stdout, /images\s+3\n/);
    t.regex(r.stdout, /compression\s+\d+\.\d% \(mean uses/);
    t.is(readFileSync(join(out, 'l.csv'), 'utf8').trim().split('\n').length, 4);
    t.is((await sharp(join(out, 'h.png')).metadata()).format, 'png');
  } finally {
    tokenizer.dispose();
  }
});
