// Issue 15 row 11: outputs never overwrite each other or the inputs, resume recognises every name it
// wrote, and a re-run with other --lengths keeps the earlier lengths.csv columns.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pngOf, pythonPath, tempDir, TINY_DOVE } from '../api/helpers';
import { runDove } from './helpers';

/** Inputs whose naive output names collide, plus names a line-based CSV reader cannot hold. */
const NAMES = ['a.jpg', 'a.png', 'a.jpg.png', 'b.png', 'new\nline.png', 'quote"and,comma.png', ' space .png'];

async function collidingFolder(prefix: string): Promise<{ dir: string; input: string; cleanup: () => void }> {
  const { dir, cleanup } = tempDir(prefix);
  const input = join(dir, 'in');
  mkdirSync(input);
  const sharp = (await import('sharp')).default;
  for (const [i, name] of NAMES.entries()) {
    const png = await pngOf(64 + 8 * i, 64, i);
    writeFileSync(join(input, name), name.endsWith('.jpg') ? await sharp(png).jpeg().toBuffer() : png);
  }
  return { dir, input, cleanup };
}

/** The rows of a CSV file as Python's csv module reads them (an oracle independent of lib/base/csv.ts). */
function readCsv(path: string): string[][] {
  const py = 'import csv, json, sys; print(json.dumps(list(csv.reader(open(sys.argv[1], newline="", encoding="utf-8")))))';
  return JSON.parse(execFileSync(pythonPath(), ['-c', py, path], { encoding: 'utf8' })) as string[][];
}

test('row 11: reconstruct-batch gives every input its own output, records every name, and resumes all of them', async (t) => {
  const { dir, input, cleanup } = await collidingFolder('collide');
  t.teardown(cleanup);
  const out = join(dir, 'out');
  const first = await runDove(['reconstruct-batch', input, '--model', TINY_DOVE, '--lengths', '2', '-o', out, '--quiet']);
  t.is(first.code, 0, first.stderr);
  t.regex(first.stdout, new RegExp(`${NAMES.length} reconstructed, 0 already finished, 0 failed`));
  const expected = ['a.jpg.png', 'a.png.png', 'a.jpg.png.png', 'b.png', 'new\nline.png', 'quote"and,comma.png', ' space .png'].sort();
  for (const folder of ['2', 'auto']) t.deepEqual(readdirSync(join(out, folder)).sort(), expected, folder);
  const csv = readCsv(join(out, 'lengths.csv'));
  t.deepEqual(csv[0], ['image', 'eos_length', 'psnr_2', 'psnr_auto']);
  t.deepEqual(csv.slice(1).map((r) => r[0]).sort(), [...NAMES].sort());
  const again = await runDove(['reconstruct-batch', input, '--model', TINY_DOVE, '--lengths', '2', '-o', out, '--quiet']);
  t.is(again.code, 0, again.stderr);
  t.regex(again.stdout, new RegExp(`0 reconstructed, ${NAMES.length} already finished`));
});

test('row 11: a re-run with other --lengths keeps the earlier columns and their values', async (t) => {
  const { dir, input, cleanup } = await collidingFolder('relengths');
  t.teardown(cleanup);
  const out = join(dir, 'out');
  t.is((await runDove(['reconstruct-batch', input, '--model', TINY_DOVE, '--lengths', '2', '-o', out, '--quiet'])).code, 0);
  const before = new Map(readCsv(join(out, 'lengths.csv')).slice(1).map((r) => [r[0]!, r[2]!]));
  const r = await runDove(['reconstruct-batch', input, '--model', TINY_DOVE, '--lengths', '4', '-o', out]);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stderr, /keeping the psnr_2 column of an earlier run/);
  const csv = readCsv(join(out, 'lengths.csv'));
  t.deepEqual(csv[0], ['image', 'eos_length', 'psnr_2', 'psnr_4', 'psnr_auto']);
  for (const row of csv.slice(1)) {
    t.is(row[2] ?? '', before.get(row[0]!) ?? 'missing', `psnr_2 of ${JSON.stringify(row[0])} kept`);
    t.regex(row[3] ?? '', /^(\d+\.\d{3}|inf)$/, `psnr_4 of ${JSON.stringify(row[0])} computed`);
  }
  t.is(readdirSync(join(out, '2')).length, NAMES.length);
  t.is(readdirSync(join(out, '4')).length, NAMES.length);
});

test('row 11: a lengths.csv that reconstruct-batch did not write is refused, not overwritten', async (t) => {
  const { dir, input, cleanup } = await collidingFolder('foreign-csv');
  t.teardown(cleanup);
  const out = join(dir, 'out');
  mkdirSync(out);
  const mine = 'name,score\nmy-data,42\n';
  writeFileSync(join(out, 'lengths.csv'), mine);
  const r = await runDove(['reconstruct-batch', input, '--model', TINY_DOVE, '--lengths', '2', '-o', out]);
  t.is(r.code, 1);
  t.regex(r.stderr, /lengths\.csv exists but was not written by dove reconstruct-batch .* \[INVALID_ARGUMENT\]/);
  t.is(readFileSync(join(out, 'lengths.csv'), 'utf8'), mine);
});

test('row 11: an -o whose <length>/ folder is the input folder is refused; the inputs are untouched', async (t) => {
  const { dir, cleanup } = tempDir('self-out');
  t.teardown(cleanup);
  const input = join(dir, 'recon', '2');
  mkdirSync(input, { recursive: true });
  const png = await pngOf(64, 64, 3);
  writeFileSync(join(input, 'a.png'), png);
  const r = await runDove(['reconstruct-batch', input, '--model', TINY_DOVE, '--lengths', '2', '-o', join(dir, 'recon')]);
  t.is(r.code, 2, r.stderr);
  t.regex(r.stderr, /its 2\/ folder is the input folder/);
  t.true(readFileSync(join(input, 'a.png')).equals(png));
});

test('row 11: dove tokenize refuses an --output that is one of its inputs', async (t) => {
  const { dir, cleanup } = tempDir('tok-self');
  t.teardown(cleanup);
  const png = await pngOf(64, 64, 4);
  const image = join(dir, 'a.png');
  writeFileSync(image, png);
  const r = await runDove(['tokenize', image, '--json', '--model', TINY_DOVE, '-o', image]);
  t.is(r.code, 2, r.stderr);
  t.regex(r.stderr, /is also an input/);
  t.true(readFileSync(image).equals(png));
});

test('row 11: dove tokenize of the colliding folder keeps one row per file with its exact name', async (t) => {
  const { dir, input, cleanup } = await collidingFolder('tok-collide');
  t.teardown(cleanup);
  const r = await runDove(['tokenize', input, '--json', '--model', TINY_DOVE, '-o', join(dir, 'tokens.json')]);
  t.is(r.code, 0, r.stderr);
  const doc = JSON.parse(readFileSync(join(dir, 'tokens.json'), 'utf8')) as { images: { image: string }[] };
  t.deepEqual(doc.images.map((i) => i.image.slice(input.length + 1)).sort(), [...NAMES].sort());
});
