// Image folders for evaluation: listing, pairing real and reconstructed images by name, the
// `reconstruct-batch` output layout (out/<len>/, out/auto/), and decoding at native size.
import { promises as fs } from 'node:fs';
import { basename, extname, join } from 'node:path';
import sharp from 'sharp';
import { DoveError } from '../base/errors';
import { displayPath, listImageFiles } from '../base/files';
import { decodeRgb, DEFAULT_MAX_INPUT_PIXELS, loadImage, type ResizeFit } from '../io/images';

/** Interleaved RGB uint8 pixels at the image's own size. */
export interface RgbPixels {
  data: Uint8Array;
  width: number;
  height: number;
}

export function stem(file: string): string {
  return basename(file, extname(file));
}

/**
 * The names (without .png) under which `dove reconstruct-batch` writes the reconstructions of the
 * files `names` of one folder: the stem (a.jpg -> a) unless another file has the same stem or is
 * itself called that (a.jpg beside a.png, or beside a.jpg.png), then the whole file name. Distinct
 * files always get distinct names, and pairByName maps each back to its file.
 */
export function outputNames(names: readonly string[]): string[] {
  const stems = new Map<string, number>();
  for (const n of names) stems.set(stem(n), (stems.get(stem(n)) ?? 0) + 1);
  const files = new Set(names);
  const out = names.map((n) => (stems.get(stem(n)) === 1 && !files.has(stem(n)) ? stem(n) : n));
  if (new Set(out).size !== out.length) throw new DoveError(`output names collide for ${names.length} files`, 'INTERNAL');
  return out;
}

/**
 * Decodes an image as sRGB RGB at its own size (EXIF orientation applied, alpha flattened on black).
 * The file is read with the same header checks as the Tokenizer's inputs (lib/io/image-file.ts).
 */
export async function readRgb(file: string, maxInputPixels = DEFAULT_MAX_INPUT_PIXELS): Promise<RgbPixels> {
  const { data, info } = await decodeRgb(file, displayPath(file), maxInputPixels, { r: 0, g: 0, b: 0 });
  if (info.channels !== 3) throw new DoveError(`${displayPath(file)}: decoder produced ${info.channels} channels, expected 3`, 'INVALID_IMAGE');
  return { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width: info.width, height: info.height };
}

/**
 * Reads `file` at `width`×`height`: as is when it already has that size, otherwise with the same
 * resize policy the Tokenizer uses (default cover: short side, centre crop), so a real image is
 * compared with its reconstruction at the reconstruction's size.
 */
export async function readRgbAt(file: string, width: number, height: number, fit: ResizeFit = 'cover'): Promise<RgbPixels> {
  const native = await readRgb(file);
  if (native.width === width && native.height === height) return native;
  if (width === height) {
    const data = await loadImage(file, { size: width, fit });
    return { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width, height };
  }
  const { data } = await sharp(Buffer.from(native.data.buffer, native.data.byteOffset, native.data.byteLength), {
    raw: { width: native.width, height: native.height, channels: 3 },
  })
    .resize(width, height, { fit, position: 'centre', kernel: 'lanczos3' })
    .raw()
    .toBuffer({ resolveWithObject: true });
  return { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width, height };
}

export interface ImagePair {
  name: string;
  real: string;
  fake: string;
}

export interface Pairing {
  pairs: ImagePair[];
  /** Stems present only on one side. */
  onlyReal: string[];
  onlyFake: string[];
}

/** Pairs images of two folders by file name without extension (img.jpg <-> img.png). */
export async function pairByName(realDir: string, fakeDir: string): Promise<Pairing> {
  const realFiles = await listImageFiles(realDir);
  const reals = new Map(realFiles.map((f) => [stem(f), f]));
  // reconstruct-batch keeps the extension in the name when a stem is ambiguous (outputNames): such
  // reconstructions match the real file's full name first.
  const realsByFile = new Map(realFiles.map((f) => [basename(f), f]));
  const fakes = new Map((await listImageFiles(fakeDir)).map((f) => [stem(f), f]));
  const pairs: ImagePair[] = [];
  const matched = new Set<string>();
  for (const [name, fake] of fakes) {
    const real = realsByFile.get(name) ?? reals.get(name);
    if (real === undefined) continue;
    pairs.push({ name, real, fake });
    matched.add(real);
  }
  pairs.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const onlyReal = realFiles.filter((f) => !matched.has(f)).map((f) => stem(f));
  const onlyFake = [...fakes.keys()].filter((n) => !realsByFile.has(n) && !reals.has(n));
  if (pairs.length === 0) {
    throw new DoveError(
      `No image in ${fakeDir} has a same-named image in ${realDir} (${reals.size} real, ${fakes.size} reconstructed; names are matched without extension)`,
      'INVALID_ARGUMENT',
    );
  }
  return { pairs, onlyReal, onlyFake };
}

export interface LengthDir {
  /** 'auto' or the token count as text. */
  label: string;
  /** Token count (NaN for auto). */
  tokens: number;
  dir: string;
}

/** The `reconstruct-batch` layout: ROOT/<len>/ (integers, sorted) then ROOT/auto/ when present. */
export async function lengthDirs(root: string): Promise<LengthDir[]> {
  const entries = await fs.readdir(root, { withFileTypes: true }).catch((error: NodeJS.ErrnoException) => {
    const code = error.code;
    throw new DoveError(`${root}: ${code === 'ENOENT' ? 'folder not found' : `cannot list (${code ?? String(error)})`}`, code === 'ENOENT' ? 'FILE_NOT_FOUND' : 'IO_ERROR');
  });
  const dirs = entries.filter((e) => e.isDirectory());
  const numeric = dirs
    .filter((e) => /^\d+$/.test(e.name))
    .map((e) => ({ label: e.name, tokens: Number(e.name), dir: join(root, e.name) }))
    .sort((a, b) => a.tokens - b.tokens);
  const auto = dirs.filter((e) => e.name === 'auto').map((e) => ({ label: 'auto', tokens: Number.NaN, dir: join(root, e.name) }));
  if (numeric.length === 0 && auto.length === 0) {
    throw new DoveError(`${root}: no <length>/ or auto/ folders; expected the layout written by \`dove reconstruct-batch -o ${root}\``, 'INVALID_ARGUMENT');
  }
  return [...numeric, ...auto];
}
