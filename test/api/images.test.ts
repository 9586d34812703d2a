import test from 'ava';
import { execFileSync } from 'node:child_process';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { DoveError } from '../../lib/base/errors';
import { loadBatch, loadBatchSettled, loadImage, psnr } from '../../lib/io/images';
import { bombPng, maxAbsDiff, pngOf, tempDir, testPattern } from './helpers';

const SIZE = 16;

function pixel(data: Uint8Array, size: number, x: number, y: number): number[] {
  const i = (y * size + x) * 3;
  return [data[i]!, data[i + 1]!, data[i + 2]!];
}

test('decodes PNG, JPEG, WebP, TIFF, GIF and AVIF to size×size×3', async (t) => {
  const base = sharp(testPattern(40, 30), { raw: { width: 40, height: 30, channels: 3 } });
  const encoded = await Promise.all([
    base.clone().png().toBuffer(),
    base.clone().jpeg({ quality: 95 }).toBuffer(),
    base.clone().webp({ lossless: true }).toBuffer(),
    base.clone().tiff().toBuffer(),
    base.clone().gif().toBuffer(),
    base.clone().avif({ quality: 90 }).toBuffer(),
  ]);
  const ref = await loadImage(encoded[0]!, { size: SIZE });
  t.is(ref.length, SIZE * SIZE * 3);
  for (const bytes of encoded.slice(1)) {
    const out = await loadImage(bytes, { size: SIZE });
    t.is(out.length, SIZE * SIZE * 3);
    // Lossy codecs differ a little; a wrong channel order or layout would differ by ~200.
    t.true(psnr(ref, out) > 20, `psnr ${psnr(ref, out)}`);
  }
});

test('EXIF orientation is applied', async (t) => {
  // 40x20: left half red, right half blue. Orientation 6 (rotate 90° clockwise): red ends on top.
  const raw = Buffer.alloc(40 * 20 * 3);
  for (let y = 0; y < 20; y++) for (let x = 0; x < 40; x++) raw.set(x < 20 ? [255, 0, 0] : [0, 0, 255], (y * 40 + x) * 3);
  const jpeg = await sharp(raw, { raw: { width: 40, height: 20, channels: 3 } }).jpeg({ quality: 95 }).withMetadata({ orientation: 6 }).toBuffer();
  const out = await loadImage(jpeg, { size: SIZE, fit: 'fill' });
  const top = pixel(out, SIZE, 8, 2);
  const bottom = pixel(out, SIZE, 8, 13);
  t.true(top[0]! > 200 && top[2]! < 60, `top ${top}`);
  t.true(bottom[2]! > 200 && bottom[0]! < 60, `bottom ${bottom}`);
});

test('grayscale, alpha, 16-bit and CMYK become sRGB RGB', async (t) => {
  const rgb = testPattern(SIZE, SIZE);
  const base = sharp(rgb, { raw: { width: SIZE, height: SIZE, channels: 3 } });
  const ref = await loadImage(await base.clone().png().toBuffer(), { size: SIZE });

  const grey = await loadImage(await base.clone().toColourspace('b-w').png().toBuffer(), { size: SIZE });
  t.deepEqual(pixel(grey, SIZE, 5, 5)[0], pixel(grey, SIZE, 5, 5)[1]);
  t.deepEqual(pixel(grey, SIZE, 5, 5)[1], pixel(grey, SIZE, 5, 5)[2]);

  const sixteen = await base.clone().toColourspace('rgb16').png().toBuffer();
  t.is((await sharp(sixteen).metadata()).depth, 'ushort');
  t.true(maxAbsDiff(await loadImage(sixteen, { size: SIZE }), ref) <= 1);

  const cmyk = await base.clone().toColourspace('cmyk').jpeg({ quality: 100 }).toBuffer();
  t.is((await sharp(cmyk).metadata()).space, 'cmyk');
  // The CMYK round trip goes through ICC profiles and loses some gamut (~18 dB here); an inverted or
  // channel-swapped decode (the classic CMYK bug) lands below 8 dB.
  t.true(psnr(await loadImage(cmyk, { size: SIZE }), ref) > 15);

  // Fully transparent pixels flatten onto the background (black by default, white on request).
  const rgba = Buffer.alloc(SIZE * SIZE * 4, 255);
  for (let i = 3; i < rgba.length; i += 4) rgba[i] = 0;
  const transparent = await sharp(rgba, { raw: { width: SIZE, height: SIZE, channels: 4 } }).png().toBuffer();
  t.deepEqual(pixel(await loadImage(transparent, { size: SIZE }), SIZE, 3, 3), [0, 0, 0]);
  t.deepEqual(pixel(await loadImage(transparent, { size: SIZE, background: { r: 255, g: 255, b: 255 } }), SIZE, 3, 3), [255, 255, 255]);
});

test('resize policies: cover crops the centre, contain pads, fill stretches', async (t) => {
  // 64x16: left quarter green, the rest red.
  const raw = Buffer.alloc(64 * 16 * 3);
  for (let y = 0; y < 16; y++) for (let x = 0; x < 64; x++) raw.set(x < 16 ? [0, 255, 0] : [255, 0, 0], (y * 64 + x) * 3);
  const png = await sharp(raw, { raw: { width: 64, height: 16, channels: 3 } }).png().toBuffer();
  const cover = await loadImage(png, { size: SIZE });
  t.deepEqual(pixel(cover, SIZE, 0, 8), [255, 0, 0], 'centre crop drops the green quarter');
  const contain = await loadImage(png, { size: SIZE, fit: 'contain' });
  t.deepEqual(pixel(contain, SIZE, 8, 0), [0, 0, 0], 'padding above');
  t.true(pixel(contain, SIZE, 0, 8)[1]! > 200, 'green kept at the left');
  const fill = await loadImage(png, { size: SIZE, fit: 'fill' });
  t.true(pixel(fill, SIZE, 0, 0)[1]! > 200 && pixel(fill, SIZE, 15, 15)[0]! > 200);
});

test('raw pixels and sharp instances are accepted; raw shape is checked', async (t) => {
  const rgb = testPattern(SIZE, SIZE);
  const fromRaw = await loadImage({ data: rgb, width: SIZE, height: SIZE, channels: 3 }, { size: SIZE });
  t.deepEqual(fromRaw, rgb);
  const fromSharp = await loadImage(sharp(rgb, { raw: { width: SIZE, height: SIZE, channels: 3 } }).flop(), { size: SIZE });
  t.deepEqual(pixel(fromSharp, SIZE, 0, 0), pixel(rgb, SIZE, SIZE - 1, 0), 'the caller pipeline (flop) applies');
  const err = await t.throwsAsync(loadImage({ data: rgb.subarray(1), width: SIZE, height: SIZE, channels: 3 }, { size: SIZE }), { instanceOf: DoveError });
  t.is(err?.code, 'SHAPE_MISMATCH');
  t.regex(err?.message ?? '', /raw pixels.*expected 768 bytes/);
  await t.throwsAsync(loadImage(testPattern(2, 2), { size: 0 }), { message: 'Expected integer between 1 and 8192 for size but received 0' });
});

test('batch is one contiguous (B,H,W,3) buffer equal to the images one by one', async (t) => {
  const inputs = await Promise.all([pngOf(30, 20, 0), pngOf(20, 30, 1), pngOf(17, 17, 2)]);
  const batch = await loadBatch(inputs, { size: SIZE });
  t.true(batch instanceof Uint8Array);
  t.is(batch.length, 3 * SIZE * SIZE * 3);
  for (const [i, input] of inputs.entries()) {
    t.deepEqual(Buffer.from(batch.subarray(i * SIZE * SIZE * 3, (i + 1) * SIZE * SIZE * 3)), await loadImage(input, { size: SIZE }));
  }
});

test('bad inputs get a DoveError naming the file and the problem', async (t) => {
  const { dir, cleanup } = tempDir('badimg');
  t.teardown(cleanup);
  const good = await pngOf(20, 20);
  const files: { [name: string]: RegExp } = {
    'zero.png': /zero\.png: empty file/,
    'text.png': /text\.png: not an image/,
    'truncated.png': /truncated\.png: cannot decode image/,
    'bomb.png': /bomb\.png: image dimensions 50000x50000 exceed the pixel limit of \d+ \(maxInputPixels\)/,
    'dangling.png': /dangling\.png: symbolic link points to a missing file/,
    'fifo.png': /fifo\.png: not a regular file \(a FIFO\)/,
    'folder.png': /folder\.png: not a regular file \(a directory\)/,
    'missing.png': /missing\.png: file not found/,
  };
  writeFileSync(join(dir, 'zero.png'), Buffer.alloc(0));
  writeFileSync(join(dir, 'text.png'), 'this is not a picture\n');
  writeFileSync(join(dir, 'truncated.png'), good.subarray(0, Math.floor(good.length / 2)));
  writeFileSync(join(dir, 'bomb.png'), bombPng(50000, 50000));
  symlinkSync(join(dir, 'nowhere.png'), join(dir, 'dangling.png'));
  execFileSync('mkfifo', [join(dir, 'fifo.png')]);
  mkdirSync(join(dir, 'folder.png'));
  writeFileSync(join(dir, 'one.png'), await pngOf(1, 1));

  for (const [name, pattern] of Object.entries(files)) {
    const err = await t.throwsAsync(loadImage(join(dir, name), { size: SIZE }), { instanceOf: DoveError }, name);
    t.regex(err?.message ?? '', pattern);
    t.true(err?.message.includes(join(dir, name)), `${name}: the message names the file: ${err?.message}`);
  }
  // A 1x1 image is valid: it is upscaled.
  t.is((await loadImage(join(dir, 'one.png'), { size: SIZE })).length, SIZE * SIZE * 3);

  const codes = new Map<string, string>();
  const { pixels, failures } = await loadBatchSettled([...Object.keys(files), 'one.png'].map((n) => join(dir, n)), { size: SIZE });
  for (const f of failures) codes.set(f.name.slice(dir.length + 1), f.error.code);
  t.is(failures.length, Object.keys(files).length, 'every bad file fails, the good one loads');
  t.is(codes.get('bomb.png'), 'IMAGE_TOO_LARGE');
  t.is(codes.get('missing.png'), 'FILE_NOT_FOUND');
  t.is(codes.get('text.png'), 'INVALID_IMAGE');
  t.is(pixels.length, (Object.keys(files).length + 1) * SIZE * SIZE * 3);
});

test('the pixel limit is configurable', async (t) => {
  const err = await t.throwsAsync(loadImage(await pngOf(100, 100), { size: SIZE, maxInputPixels: 5000 }), { instanceOf: DoveError });
  t.is(err?.code, 'IMAGE_TOO_LARGE');
  t.is((await loadImage(await pngOf(100, 100), { size: SIZE, maxInputPixels: 10000 })).length, SIZE * SIZE * 3);
});
