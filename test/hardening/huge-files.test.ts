// Issue 15 row 9: huge files named like images are checked (size, header, claimed pixels) before
// they are read whole, and whole-file reads in flight share one memory budget. Each case runs in a
// child process whose peak RSS is measured. The files are sparse: they take no disk space.
import test, { type ExecutionContext } from 'ava';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pngChunk, pngOf, tempDir, TINY_DOVE } from '../api/helpers';
import { runDove, runSnippet, sparseFile } from './helpers';

const MiB = 1024 * 1024;
const FILE_BYTES = 600 * MiB;
const COUNT = 4;

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** A PNG signature and IHDR chunk claiming width × height (the rest of the file is whatever follows). */
function pngHead(width: number, height: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8;
  ihdr[9] = 2;
  return Buffer.concat([PNG_SIGNATURE, pngChunk('IHDR', ihdr)]);
}

/** Decodes `paths` with the Tokenizer's image loader (4 at a time) in a child; prints codes. */
function loadInChild(paths: string[]): string {
  return `
    const { loadBatchSettled } = require('./dist/lib/io/images');
    loadBatchSettled(${JSON.stringify(paths)}, { size: 64 }).then(({ failures }) => {
      process.stdout.write(JSON.stringify(failures.map((f) => f.error.code)));
    }, (e) => { process.stdout.write('THREW ' + e); });
  `;
}

function baselineRssKiB(): number {
  return Number(execFileSync(process.execPath, ['-e', "require('sharp'); process.stdout.write(String(process.resourceUsage().maxRSS))"], { encoding: 'utf8' }));
}

/**
 * Four sparse files of FILE_BYTES starting with `head`, decoded in a child: every one must fail with
 * `code`, and the child's peak RSS stay within `limitMiB` above a bare node+sharp.
 */
async function expectRefused(t: ExecutionContext, prefix: string, head: Uint8Array, code: string, limitMiB: number): Promise<void> {
  const { dir, cleanup } = tempDir(prefix);
  t.teardown(cleanup);
  const paths = Array.from({ length: COUNT }, (_, i) => join(dir, `${prefix}-${i}.png`));
  for (const p of paths) sparseFile(p, FILE_BYTES, head);
  const r = await runSnippet(loadInChild(paths));
  t.is(r.code, 0, r.stderr);
  t.deepEqual(JSON.parse(r.stdout), Array(COUNT).fill(code));
  const extraMiB = (r.maxRssKiB! - baselineRssKiB()) / 1024;
  t.log(`peak RSS ${extraMiB.toFixed(0)} MiB above a bare node+sharp`);
  t.true(extraMiB < limitMiB, `peak RSS ${extraMiB.toFixed(0)} MiB above a bare node+sharp (${COUNT} files at once would be ${(COUNT * FILE_BYTES) / MiB})`);
}

test('row 9: four sparse 600 MB files named .png are refused without reading them', (t) => expectRefused(t, 'zeros', new Uint8Array(0), 'INVALID_IMAGE', 200));

test('row 9: dove tokenize of a folder of huge sparse .png files stays small and fails cleanly', async (t) => {
  const { dir, cleanup } = tempDir('huge-cli');
  t.teardown(cleanup);
  for (let i = 0; i < COUNT; i++) sparseFile(join(dir, `huge-${i}.png`), FILE_BYTES);
  const r = await runDove(['tokenize', dir, '--model', TINY_DOVE, '-o', join(dir, 'out.safetensors')]);
  t.is(r.code, 1, r.stderr);
  t.regex(r.stderr, /not an image in any format sharp reads/);
  t.regex(r.stderr, /None of the 4 images could be read \[INVALID_IMAGE\]/);
  // libtorch and the model take a few hundred MB of their own; the files must add nothing like 4 × 600 MB.
  t.log(`peak RSS ${(r.maxRssKiB! / 1024).toFixed(0)} MiB`);
  t.true(r.maxRssKiB! / 1024 < 1200, `peak RSS ${(r.maxRssKiB! / 1024).toFixed(0)} MiB`);
});

test('row 9: a small PNG header followed by 600 MB is refused before the read', (t) => expectRefused(t, 'claims-64', pngHead(64, 64), 'IMAGE_TOO_LARGE', 200));

test('row 9: a header claiming more pixels than maxInputPixels is refused before the read', (t) => expectRefused(t, 'claims-huge', pngHead(100_000, 100_000), 'IMAGE_TOO_LARGE', 200));

// A PNG signature, then zeros: the header check cannot decide, so each file is read whole, but the
// four are read one after another (each is over the shared 256 MiB budget), not all at once.
test('row 9: files whose header cannot be judged from 64 KiB are read one budget at a time', (t) => expectRefused(t, 'signature', PNG_SIGNATURE, 'INVALID_IMAGE', 1.6 * (FILE_BYTES / MiB)));

test('row 9: real images of every kind still decode through the header check', async (t) => {
  const { dir, cleanup } = tempDir('huge-ok');
  t.teardown(cleanup);
  const sharp = (await import('sharp')).default;
  const base = await pngOf(300, 200);
  const files: Record<string, Buffer> = {
    'a.png': base,
    'b.jpg': await sharp(base).jpeg().toBuffer(),
    'c.webp': await sharp(base).webp({ lossless: true }).toBuffer(),
    'd.gif': await sharp(base).gif().toBuffer(),
    // TIFF keeps its directory after the pixels: over 64 KiB, the header check cannot see it.
    'e.tif': await sharp(await pngOf(400, 300, 1)).tiff({ compression: 'none' }).toBuffer(),
    'f.avif': await sharp(base).avif().toBuffer(),
    'g.svg': Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="40" height="30">${'<rect width="1" height="1"/>'.repeat(4000)}</svg>`),
    // A PNG with a large text chunk before its pixels (its header ends past 64 KiB).
    'h.png': Buffer.concat([base.subarray(0, 33), pngChunk('tEXt', Buffer.concat([Buffer.from('Comment\0'), Buffer.alloc(200_000, 0x61)])), base.subarray(33)]),
  };
  for (const [name, bytes] of Object.entries(files)) writeFileSync(join(dir, name), bytes);
  t.true(files['e.tif']!.length > 64 * 1024 && files['g.svg']!.length > 64 * 1024);
  const r = await runSnippet(loadInChild(Object.keys(files).map((n) => join(dir, n))));
  t.is(r.code, 0, r.stderr);
  t.deepEqual(JSON.parse(r.stdout), []);
});
