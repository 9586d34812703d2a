// Reading an image file into memory, guarded. Whole files are read (not handed to sharp by path:
// libvips caches file inputs by name and would serve a rewritten file's old pixels), so before a
// byte beyond the header is read, the file is checked: a regular file, not empty, under 2 GiB; its
// first 64 KiB read as a header (format by sharp itself, width and height by sharp or, when sharp
// needs more than the head, by image-size); its claimed pixels within maxInputPixels; its size
// plausible for those pixels. A folder of huge sparse files named .png is refused after 64 KiB
// each. Files that pass are read under a process-wide byte budget: whole-file reads in flight add
// up to at most READ_BUDGET_BYTES (one larger file runs alone), so four decoders in parallel cannot
// hold four 2 GB files at once.
import { constants, promises as fs } from 'node:fs';
import { imageSize } from 'image-size';
import sharp from 'sharp';
import { DoveError, valueOr } from '../base/errors';
import { displayPath, fsError, fsPath } from '../base/files';

/** Bytes of a file read before anything else: enough for every header sharp needs in practice. */
export const HEAD_BYTES = 64 * 1024;
/** Largest file read at all (Node's own limit for one read is 2 GiB). */
export const MAX_FILE_BYTES = 2 ** 31 - 1;
/** Whole-file reads in flight, process-wide. */
export const READ_BUDGET_BYTES = 256 * 1024 * 1024;
/**
 * A file may hold at most this many bytes per pixel its header claims (16: 4 channels of float32),
 * plus SLACK_BYTES of anything else (metadata, thumbnails, an appended motion-photo video).
 */
const MAX_BYTES_PER_PIXEL = 16;
const SLACK_BYTES = 256 * 1024 * 1024;

// TIFF puts its first directory anywhere (often after the pixel data), so sharp calls a truncated
// TIFF "unsupported": only for these signatures is that verdict on a partial head not final.
const TIFF_SIGNATURES = ['49492a00', '4d4d002a', '49492b00', '4d4d002b'];

export interface ImageFile {
  /** The whole file. */
  bytes: Buffer;
  /** Returns the file's share of the read budget; call once decoding is done. */
  release(): void;
}

class ByteBudget {
  private inFlight = 0;
  private readonly waiting: { bytes: number; grant: () => void }[] = [];

  constructor(private readonly limit: number) {}

  async acquire(bytes: number): Promise<() => void> {
    if (this.waiting.length > 0 || !this.fits(bytes)) {
      await new Promise<void>((grant) => this.waiting.push({ bytes, grant }));
    } else {
      this.inFlight += bytes;
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.inFlight -= bytes;
      this.wake();
    };
  }

  private fits(bytes: number): boolean {
    return this.inFlight === 0 || this.inFlight + bytes <= this.limit;
  }

  private wake(): void {
    // First come, first served: a large file is not starved by a stream of small ones.
    while (this.waiting.length > 0 && this.fits(this.waiting[0]!.bytes)) {
      const next = this.waiting.shift()!;
      this.inFlight += next.bytes;
      next.grant();
    }
  }
}

const budget = new ByteBudget(READ_BUDGET_BYTES);

function missing(path: string, isLink: boolean): DoveError {
  if (path.includes('\ufffd')) {
    // Node turns bytes that are not UTF-8 into U+FFFD in command-line arguments and string paths:
    // such a string can never name the real file.
    return new DoveError(
      `${displayPath(path)}: no such file; its name contains U+FFFD, which is what bytes that are not valid UTF-8 become in a command-line argument or string, so this string cannot reach the real file: pass the folder that holds it (folders are listed byte for byte) or rename the file`,
      'INVALID_ARGUMENT',
    );
  }
  return new DoveError(`${displayPath(path)}: ${isLink ? 'symbolic link points to a missing file' : 'file not found'}`, 'FILE_NOT_FOUND');
}

async function readInto(handle: fs.FileHandle, buffer: Buffer, from: number, position: number): Promise<number> {
  let at = from;
  while (at < buffer.length) {
    const { bytesRead } = await handle.read(buffer, at, buffer.length - at, position + (at - from));
    if (bytesRead === 0) break;
    at += bytesRead;
  }
  return at;
}

/** What the header says, or why it cannot say. */
type HeadVerdict = { kind: 'header'; width: number; height: number; pages: number } | { kind: 'not-an-image'; why: string } | { kind: 'unknown' };

async function inspectHead(head: Buffer, whole: boolean): Promise<HeadVerdict> {
  try {
    const meta = await sharp(head, { failOn: 'none' }).metadata();
    if (meta.width !== undefined && meta.height !== undefined) return { kind: 'header', width: meta.width, height: meta.height, pages: meta.pages ?? 1 };
  } catch (error) {
    const text = error instanceof Error ? error.message.split('\n')[0]! : String(error);
    if (/unsupported image format/i.test(text) && (whole || !TIFF_SIGNATURES.includes(head.subarray(0, 4).toString('hex')))) {
      return { kind: 'not-an-image', why: text };
    }
  }
  // sharp recognised the format but could not parse this much of it (a PNG whose chunks run past the
  // head, a GIF, a truncated WebP): the dimensions alone are still in the first bytes.
  return claimedSize(head) ?? { kind: 'unknown' };
}

/** Formats image-size names that sharp also reads (image-size guesses others, e.g. TGA, from no magic at all). */
const SHARP_FORMATS = new Set(['png', 'jpg', 'gif', 'webp', 'tiff', 'svg', 'heif', 'avif', 'jp2', 'jxl']);

/** Width and height as the header claims them, read by image-size without decoding anything. */
function claimedSize(head: Buffer): HeadVerdict | undefined {
  // imageSize throws when `head` holds not enough of the header.
  const size = valueOr(() => imageSize(head), undefined);
  if (size === undefined || !SHARP_FORMATS.has(size.type ?? '') || !(size.width > 0 && size.height > 0)) return undefined;
  return { kind: 'header', width: size.width, height: size.height, pages: 1 };
}

/**
 * Reads an image file after checking its header (see above). `path` may hold escaped bytes
 * (lib/base/files.ts). Errors name the file: FILE_NOT_FOUND, INVALID_IMAGE (not a regular file, empty,
 * not an image in any format sharp reads), IMAGE_TOO_LARGE, IO_ERROR, INVALID_ARGUMENT (a name
 * mangled by UTF-8 decoding).
 */
export async function readImageFile(path: string, maxInputPixels: number): Promise<ImageFile> {
  const name = displayPath(path);
  const target = fsPath(path);
  const stat = await fs.stat(target).catch(async (error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') throw missing(path, await fs.lstat(target).then((s) => s.isSymbolicLink(), () => false));
    throw fsError(path, error, 'read file');
  });
  // Checked before opening: opening a FIFO would wait for a writer, a device could be endless.
  if (!stat.isFile()) throw new DoveError(`${name}: not a regular file (${stat.isDirectory() ? 'a directory' : stat.isFIFO() ? 'a FIFO' : 'a special file'})`, 'INVALID_IMAGE');
  const handle = await fs.open(target, constants.O_RDONLY | constants.O_NONBLOCK).catch((error: unknown) => {
    throw fsError(path, error, 'read file');
  });
  try {
    const opened = await handle.stat();
    if (!opened.isFile()) throw new DoveError(`${name}: not a regular file`, 'INVALID_IMAGE');
    const size = opened.size;
    if (size === 0) throw new DoveError(`${name}: empty file (0 bytes), not an image`, 'INVALID_IMAGE');
    if (size > MAX_FILE_BYTES) throw new DoveError(`${name}: ${size} bytes, larger than the ${MAX_FILE_BYTES}-byte limit for one image file`, 'IMAGE_TOO_LARGE');
    const head = Buffer.allocUnsafe(Math.min(size, HEAD_BYTES));
    const headRead = await readInto(handle, head, 0, 0);
    const whole = headRead < head.length || size <= HEAD_BYTES;
    const verdict = await inspectHead(head.subarray(0, headRead), whole);
    if (verdict.kind === 'not-an-image') {
      throw new DoveError(`${name}: not an image in any format sharp reads (${verdict.why}; first bytes ${head.subarray(0, Math.min(8, headRead)).toString('hex') || 'none'})`, 'INVALID_IMAGE');
    }
    if (verdict.kind === 'header') {
      const pixels = verdict.width * verdict.height;
      if (pixels > maxInputPixels) {
        throw new DoveError(`${name}: image dimensions ${verdict.width}x${verdict.height} exceed the pixel limit of ${maxInputPixels} (maxInputPixels); refusing to decode (possible decompression bomb)`, 'IMAGE_TOO_LARGE');
      }
      const plausible = MAX_BYTES_PER_PIXEL * pixels * Math.max(1, verdict.pages) + SLACK_BYTES;
      if (size > plausible) {
        throw new DoveError(`${name}: ${size} bytes for a ${verdict.width}x${verdict.height} image (at most ${plausible} are plausible); refusing to read it`, 'IMAGE_TOO_LARGE');
      }
    }
    if (whole) return { bytes: head.subarray(0, headRead), release: () => undefined };
    const release = await budget.acquire(size);
    try {
      const bytes = Buffer.allocUnsafe(size);
      head.copy(bytes, 0, 0, headRead);
      const total = await readInto(handle, bytes, headRead, headRead);
      return { bytes: bytes.subarray(0, total), release };
    } catch (error) {
      release();
      throw error;
    }
  } catch (error) {
    throw fsError(path, error, 'read file');
  } finally {
    await handle.close().catch(() => undefined);
  }
}
