import test from 'ava';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { gridCellRect, GRID_GAP, GRID_LABEL_HEIGHT } from '../../lib/render/grid';
import { readSafetensors } from '../../lib/io/safetensors';
import { Tokenizer } from '../../lib/model/tokenizer';
import { bombPng, maxAbsDiff, pngOf, pythonPath, runCli, tempDir, TINY_CONFIG, TINY_DOVE, TINY_QDOVE } from './helpers';

test('dove reconstruct writes a grid: input, one column per length, EOS choice', async (t) => {
  const { dir, cleanup } = tempDir('grid');
  t.teardown(cleanup);
  const image = join(dir, 'in.png');
  writeFileSync(image, await pngOf(96, 64));
  const out = join(dir, 'sub', 'grid.png');
  const r = await runCli(['reconstruct', image, '--model', TINY_DOVE, '--lengths', '2,8,32', '-o', out]);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /grid\.png: input \+ lengths 2,8,32 \+ EOS length \d+ \(of 64\)/);
  const meta = await sharp(out).metadata();
  const cells = 1 + 3 + 1;
  const last = gridCellRect(cells - 1, 64);
  t.is(meta.width, last.left + last.side + GRID_GAP);
  t.is(meta.height, GRID_LABEL_HEIGHT + last.side + GRID_GAP);
  // The first column is the resized input, upscaled ×2 with nearest neighbour.
  const { data, info } = await sharp(out).raw().toBuffer({ resolveWithObject: true });
  const first = gridCellRect(0, 64);
  const input = await sharp(image).resize(64, 64, { fit: 'cover' }).raw().toBuffer();
  const at = (first.top * info.width + first.left) * info.channels;
  t.deepEqual([data[at], data[at + 1], data[at + 2]], [input[0], input[1], input[2]]);
});

test('dove reconstruct: default lengths, bad flags and --help', async (t) => {
  const { dir, cleanup } = tempDir('grid2');
  t.teardown(cleanup);
  const image = join(dir, 'in.png');
  writeFileSync(image, await pngOf(64, 64));
  const ok = await runCli(['reconstruct', image, '--model', TINY_DOVE, '-o', join(dir, 'g.png')]);
  t.is(ok.code, 0, ok.stderr);
  t.regex(ok.stdout, /lengths 1,2,4,8,16,32,64 \+ EOS/);
  const zero = await runCli(['reconstruct', image, '--model', TINY_DOVE, '--lengths', '8,0', '-o', join(dir, 'g.png')]);
  t.is(zero.code, 2);
  t.regex(zero.stderr, /Expected integer between 1 and 64 for --lengths but received 0/);
  const big = await runCli(['reconstruct', image, '--model', TINY_DOVE, '--lengths', '8,65', '-o', join(dir, 'g.png')]);
  t.is(big.code, 2);
  t.regex(big.stderr, /Expected integer between 1 and 64 for --lengths but received 65/);
  const q = await runCli(['reconstruct', image, '--model', TINY_DOVE, '--question', 'a cat', '-o', join(dir, 'g.png')]);
  t.is(q.code, 2);
  t.regex(q.stderr, /--question needs a Q-DOVE model/);
  const bad = await runCli(['reconstruct', join(dir, 'missing.png'), '--model', TINY_DOVE, '-o', join(dir, 'g.png')]);
  t.is(bad.code, 1);
  t.regex(bad.stderr, /missing\.png: file not found \[FILE_NOT_FOUND\]/);
  for (const cmd of ['reconstruct', 'reconstruct-batch', 'tokenize']) {
    const help = await runCli([cmd, '--help']);
    t.is(help.code, 0);
    t.regex(help.stdout, /Usage: dove /);
    t.regex(help.stdout, /Examples:/);
    t.regex(help.stdout, /--device/);
  }
});

test('dove reconstruct with a Q-DOVE question', async (t) => {
  const { dir, cleanup } = tempDir('gridq');
  t.teardown(cleanup);
  const image = join(dir, 'in.png');
  writeFileSync(image, await pngOf(64, 64));
  const r = await runCli(['reconstruct', image, '--model', TINY_QDOVE, '--lengths', '4', '--question', 'what colour is the sky?', '-o', join(dir, 'g.png')]);
  t.is(r.code, 0, r.stderr);
  t.true(existsSync(join(dir, 'g.png')));
});

test('dove reconstruct-batch: folder layout, CSV, resume, bad images reported and skipped', async (t) => {
  const { dir, cleanup } = tempDir('batch');
  t.teardown(cleanup);
  const src = join(dir, 'in');
  mkdirSync(src);
  for (let i = 0; i < 3; i++) writeFileSync(join(src, `good${i}.png`), await pngOf(70 + i * 10, 64, i));
  writeFileSync(join(src, 'notes.txt'), 'ignored: not an image extension');
  writeFileSync(join(src, 'zero.png'), Buffer.alloc(0));
  writeFileSync(join(src, 'text.png'), 'hello');
  writeFileSync(join(src, 'bomb.png'), bombPng(50000, 50000));
  symlinkSync(join(src, 'gone.png'), join(src, 'dangling.png'));
  mkdirSync(join(src, 'folder.png'));
  execFileSync('mkfifo', [join(src, 'fifo.png')]);
  const out = join(dir, 'out');
  const args = ['reconstruct-batch', src, '--model', TINY_DOVE, '--lengths', '4,16', '--batch-size', '2', '-o', out];
  const first = await runCli(args);
  t.is(first.code, 3, `exit code 3 when some images failed\n${first.stderr}`);
  for (const bad of ['zero.png', 'text.png', 'bomb.png', 'dangling.png', 'folder.png', 'fifo.png']) {
    t.regex(first.stderr, new RegExp(`skipped ${join(src, bad).replace(/[.]/g, '\\.')}: `), bad);
  }
  t.regex(first.stdout, /3 reconstructed, 0 already finished, 6 failed \(of 9 images\)/);
  t.regex(first.stderr, /reconstruct-batch \[#+\] 9\/9 100%.*ETA/);
  t.deepEqual(readdirSync(out).sort(), ['16', '4', 'auto', 'lengths.csv']);
  for (const f of ['4', '16', 'auto']) t.deepEqual(readdirSync(join(out, f)).sort(), ['good0.png', 'good1.png', 'good2.png']);
  t.is((await sharp(join(out, 'auto', 'good1.png')).metadata()).width, 64);
  const csv = readFileSync(join(out, 'lengths.csv'), 'utf8').trim().split('\n');
  t.is(csv[0], 'image,eos_length,psnr_4,psnr_16,psnr_auto');
  t.is(csv.length, 4);
  for (const [i, line] of csv.slice(1).entries()) {
    const [name, eos, ...ps] = line.split(',');
    t.is(name, `good${i}.png`);
    t.true(Number(eos) >= 1 && Number(eos) <= 64);
    for (const p of ps) t.true(Number.isFinite(Number(p)), line);
  }
  // Re-run: finished images are skipped (their files are not rewritten), failures reported again.
  const before = statSync(join(out, '4', 'good0.png')).mtimeMs;
  const second = await runCli(args);
  t.is(second.code, 3);
  t.regex(second.stdout, /0 reconstructed, 3 already finished, 6 failed/);
  t.is(statSync(join(out, '4', 'good0.png')).mtimeMs, before);
  t.deepEqual(readFileSync(join(out, 'lengths.csv'), 'utf8').trim().split('\n'), csv);
});

test('dove tokenize: safetensors read back equal in Node and Python; --json', async (t) => {
  const { dir, cleanup } = tempDir('tok');
  t.teardown(cleanup);
  const files = [];
  for (let i = 0; i < 3; i++) {
    files.push(join(dir, `im${i}.png`));
    writeFileSync(files[i]!, await pngOf(64 + 8 * i, 64, i));
  }
  const out = join(dir, 'tokens.safetensors');
  const r = await runCli(['tokenize', ...files, '--model', TINY_DOVE, '--mode', 'capped', '--max-tokens', '9', '-o', out]);
  t.is(r.code, 0, r.stderr);
  const st = await readSafetensors(out);
  const lengths = Array.from(st.tensors.get('lengths')!.data as BigInt64Array, Number);
  t.is(lengths.length, 3);
  for (const l of lengths) t.true(l >= 1 && l <= 9);
  const k = Math.max(...lengths);
  const D = TINY_CONFIG.tokenDim;
  t.deepEqual(st.tensors.get('tokens')!.shape, [3, k, D]);
  t.deepEqual(JSON.parse(st.metadata.images!), files);
  t.is(st.metadata.mode, 'capped');

  // The same numbers as the API.
  const tok = await Tokenizer.load(TINY_DOVE);
  t.teardown(() => tok.dispose());
  const all = st.tensors.get('tokens')!.data as Float32Array;
  for (const [i, f] of files.entries()) {
    const api = await tok.tokenize(f, { mode: 'capped', maxTokens: 9 });
    t.is(api.length, lengths[i]);
    t.true(maxAbsDiff(all.subarray(i * k * D, i * k * D + api.length * D), api.tokens) < 1e-4);
    t.true(all.subarray(i * k * D + api.length * D, (i + 1) * k * D).every((v) => v === 0), 'zero padding after the length');
  }

  const py = execFileSync(pythonPath(), ['-c', 'import sys,json; from safetensors.numpy import load_file; d=load_file(sys.argv[1]); print(json.dumps({"shape": list(d["tokens"].shape), "lengths": d["lengths"].tolist(), "sum": float(d["tokens"].astype("float64").sum())}))', out], { encoding: 'utf8' });
  const parsed = JSON.parse(py) as { shape: number[]; lengths: number[]; sum: number };
  t.deepEqual(parsed.shape, [3, k, D]);
  t.deepEqual(parsed.lengths, lengths);
  const sum = all.reduce((a, b) => a + b, 0);
  t.true(Math.abs(parsed.sum - sum) < 1e-2 * Math.max(1, Math.abs(sum)));

  const j = await runCli(['tokenize', files[0]!, '--model', TINY_DOVE, '--mode', 'fixed', '--max-tokens', '3', '--json']);
  t.is(j.code, 0, j.stderr);
  const doc = JSON.parse(j.stdout) as { images: { image: string; length: number; tokens: number[][]; eos_probabilities: number[] }[] };
  t.is(doc.images[0]!.length, 3);
  t.is(doc.images[0]!.tokens.length, 3);
  t.is(doc.images[0]!.tokens[0]!.length, D);
  t.is(doc.images[0]!.eos_probabilities.length, 3);
});

test('dove tokenize: bad flags and bad images', async (t) => {
  const { dir, cleanup } = tempDir('tokbad');
  t.teardown(cleanup);
  const good = join(dir, 'good.png');
  writeFileSync(good, await pngOf(64, 64));
  writeFileSync(join(dir, 'trunc.png'), (await pngOf(64, 64)).subarray(0, 60));
  const cases: [string[], number, RegExp][] = [
    [['--max-tokens', '0'], 2, /Expected integer between 1 and 64 for --max-tokens but received 0/],
    [['--max-tokens', '3.5'], 2, /Expected integer for --max-tokens but received 3\.5/],
    [['--max-tokens', '65'], 2, /Expected integer between 1 and 64 for --max-tokens but received 65/],
    [['--mode', 'sometimes'], 2, /Expected one of auto, fixed, capped for --mode but received sometimes/],
    [['--batch-size', 'x'], 2, /Expected integer between 1 and 1024 for --batch-size but received x/],
    [['--device', 'cuda:7'], 1, /DEVICE_UNAVAILABLE/],
  ];
  for (const [flags, code, message] of cases) {
    const r = await runCli(['tokenize', good, '--model', TINY_DOVE, ...flags, '-o', join(dir, 't.safetensors')]);
    t.is(r.code, code, `${flags.join(' ')}: ${r.stderr}`);
    t.regex(r.stderr, message);
  }
  const noOut = await runCli(['tokenize', good, '--model', TINY_DOVE]);
  t.is(noOut.code, 2);
  t.regex(noOut.stderr, /Missing -o\/--output/);
  const mixed = await runCli(['tokenize', good, join(dir, 'trunc.png'), '--model', TINY_DOVE, '-o', join(dir, 't.safetensors')]);
  t.is(mixed.code, 3);
  t.regex(mixed.stderr, /skipped .*trunc\.png: cannot decode image/);
  const st = await readSafetensors(join(dir, 't.safetensors'));
  t.deepEqual(JSON.parse(st.metadata.images!), [good]);
});

test('dove reconstruct-batch with Q-DOVE questions per image', async (t) => {
  const { dir, cleanup } = tempDir('batchq');
  t.teardown(cleanup);
  const src = join(dir, 'in');
  mkdirSync(src);
  writeFileSync(join(src, 'a.png'), await pngOf(64, 64, 0));
  writeFileSync(join(src, 'b.jpg'), await sharp(await pngOf(64, 80, 1)).jpeg().toBuffer());
  const questions = join(dir, 'q.json');
  writeFileSync(questions, JSON.stringify([{ image_id: 'a.png', question: 'what colour is the sky?', bounding_box: [] }, { image_id: 'b', question: 'how many cars?' }]));
  const out = join(dir, 'out');
  const r = await runCli(['reconstruct-batch', src, '--model', TINY_QDOVE, '--lengths', '4', '--questions', questions, '-o', out]);
  t.is(r.code, 0, r.stderr);
  for (const f of ['4', 'auto']) t.deepEqual(readdirSync(join(out, f)).sort(), ['a.png', 'b.png']);
  const dove = await runCli(['reconstruct-batch', src, '--model', TINY_DOVE, '--questions', questions, '-o', out]);
  t.is(dove.code, 2);
  t.regex(dove.stderr, /--questions needs a Q-DOVE model/);
});
