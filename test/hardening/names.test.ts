// Issue 15 row 10: a valid image whose file name is not UTF-8 is read (folders are listed byte for
// byte), written back under the same bytes, recorded losslessly, and a path that lost its bytes on
// the way (a command-line argument) is refused with a message that says why, never "file not found".
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DoveError } from '../../lib/base/errors';
import { readSafetensors } from '../../lib/io/safetensors';
import { Tokenizer } from '../../lib/model/tokenizer';
import { pngOf, tempDir, TINY_DOVE } from '../api/helpers';
import { CLI, runDove, writeFileBytesName } from './helpers';

const LATIN1 = Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x2e, 0x70, 0x6e, 0x67]); // "café.png" in Latin-1
/** The name as dove-encoder (and Python's os.fsdecode) spells it: the byte 0xE9 as U+DCE9. */
const ESCAPED = 'caf\udce9.png';

async function folderWithLatin1Name(prefix: string): Promise<{ dir: string; input: string; cleanup: () => void }> {
  const { dir, cleanup } = tempDir(prefix);
  const input = join(dir, 'in');
  mkdirSync(input);
  writeFileBytesName(input, LATIN1, await pngOf(80, 64, 1));
  writeFileSync(join(input, 'plain.png'), await pngOf(64, 80, 2));
  return { dir, input, cleanup };
}

test('row 10: dove tokenize reads an image whose name is Latin-1 and records the name losslessly', async (t) => {
  const { dir, input, cleanup } = await folderWithLatin1Name('latin1-tok');
  t.teardown(cleanup);
  const out = join(dir, 'tokens.safetensors');
  const r = await runDove(['tokenize', input, '--model', TINY_DOVE, '-o', out]);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /2 images/);
  const images = JSON.parse((await readSafetensors(out)).metadata.images!) as string[];
  t.deepEqual(images.map((p) => p.slice(input.length + 1)).sort(), [ESCAPED, 'plain.png']);
  // The recorded name is what Python's os.fsdecode makes of the bytes (os.fsencode turns it back).
  t.true(images.includes(join(input, ESCAPED)));
});

test('row 10: dove reconstruct-batch writes the reconstructions under the same bytes and resumes them', async (t) => {
  const { dir, input, cleanup } = await folderWithLatin1Name('latin1-rb');
  t.teardown(cleanup);
  const out = join(dir, 'out');
  const first = await runDove(['reconstruct-batch', input, '--model', TINY_DOVE, '--lengths', '2', '-o', out, '--quiet']);
  t.is(first.code, 0, first.stderr);
  t.regex(first.stdout, /2 reconstructed, 0 already finished, 0 failed/);
  for (const folder of ['2', 'auto']) {
    const names = readdirSync(join(out, folder), { encoding: 'buffer' });
    t.true(names.some((n) => n.equals(LATIN1)), `${folder}/ holds ${names.map((n) => n.toString('hex')).join(', ')}`);
  }
  // lengths.csv names the file by its bytes.
  const csv = readFileSync(join(out, 'lengths.csv'));
  t.true(csv.includes(Buffer.concat([Buffer.from('\n'), LATIN1, Buffer.from(',')])));
  const again = await runDove(['reconstruct-batch', input, '--model', TINY_DOVE, '--lengths', '2', '-o', out, '--quiet']);
  t.is(again.code, 0, again.stderr);
  t.regex(again.stdout, /0 reconstructed, 2 already finished/);
});

test('row 10: the API opens a path that carries the raw bytes as U+DC80..U+DCFF escapes', async (t) => {
  const { input, cleanup } = await folderWithLatin1Name('latin1-api');
  t.teardown(cleanup);
  const tokenizer = await Tokenizer.load(TINY_DOVE, { optimize: false });
  t.teardown(() => tokenizer.dispose());
  const tokens = await tokenizer.tokenize(join(input, ESCAPED));
  t.true(tokens.length >= 1);
});

test('row 10: a command-line path whose bytes are not UTF-8 is refused saying why, not "file not found"', async (t) => {
  const { input, cleanup } = await folderWithLatin1Name('latin1-argv');
  t.teardown(cleanup);
  // bash passes the raw byte 0xE9; Node turns it into U+FFFD before dove sees it.
  const r = spawnSync('bash', ['-c', `exec "$0" "$1" reconstruct "$(printf '%s/caf\\351.png' "$2")" --model "$3" -o "$2/grid.png"`, process.execPath, CLI, input, TINY_DOVE], { encoding: 'utf8', timeout: 300_000 });
  t.is(r.status, 1, r.stderr);
  t.regex(r.stderr, /U\+FFFD/);
  t.regex(r.stderr, /pass the folder that holds it/);
  t.regex(r.stderr, /\[INVALID_ARGUMENT\]\n$/);
  t.notRegex(r.stderr, /file not found/);
});

test('row 10: a path that does not exist is still FILE_NOT_FOUND, and names with control characters print quoted', async (t) => {
  const tokenizer = await Tokenizer.load(TINY_DOVE, { optimize: false });
  t.teardown(() => tokenizer.dispose());
  const error = await t.throwsAsync(tokenizer.tokenize('/nonexistent/a\nb.png'), { instanceOf: DoveError });
  t.is(error!.code, 'FILE_NOT_FOUND');
  t.is(error!.message, '"/nonexistent/a\\nb.png": file not found');
});
