// File names and file writes, in one place.
//
// Names: Linux file names are bytes, not text. Node decodes them as UTF-8 and turns every invalid
// byte into U+FFFD, after which the name no longer reaches the file ("file not found" for a valid
// image named caf\xE9.jpg in Latin-1). Folder listings here are read as bytes and decoded the way
// Python's os.fsdecode does (surrogateescape): valid UTF-8 as text, each invalid byte 0xNN as the
// lone surrogate U+DCNN. Such a string converts back to the exact bytes (`fsPath`), so a name found
// in a folder can be opened, written beside (reconstruct-batch) and recorded (CSV, safetensors
// metadata) without loss, and Python's os.fsencode reads the recorded name back to the same bytes.
//
// Writes: every output file is written to a temporary sibling and renamed into place, so a reader
// (or a crash, or a full disk) never leaves a half-written file where a complete one was, and a
// failure is a DoveError IO_ERROR naming the path.
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { basename, dirname, extname, join } from 'node:path';
import { DoveError } from './errors';

const ESCAPE_BASE = 0xdc00;

/** Bytes -> text: UTF-8 where valid, each invalid byte 0xNN as U+DCNN (Python's surrogateescape). */
export function decodeFsBytes(bytes: Uint8Array): string {
  const fast = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');
  if (!fast.includes('\ufffd') || Buffer.from(fast, 'utf8').equals(bytes)) return fast;
  let out = '';
  let i = 0;
  while (i < bytes.length) {
    const length = utf8SequenceLength(bytes, i);
    if (length === 0) {
      out += String.fromCharCode(ESCAPE_BASE + bytes[i]!);
      i += 1;
    } else {
      out += Buffer.from(bytes.buffer, bytes.byteOffset + i, length).toString('utf8');
      i += length;
    }
  }
  return out;
}

/** Length of the well-formed UTF-8 sequence starting at `i` (RFC 3629: no overlongs, no surrogates), or 0. */
function utf8SequenceLength(b: Uint8Array, i: number): number {
  const b0 = b[i]!;
  if (b0 < 0x80) return 1;
  const cont = (k: number, lo = 0x80, hi = 0xbf): boolean => i + k < b.length && b[i + k]! >= lo && b[i + k]! <= hi;
  if (b0 >= 0xc2 && b0 <= 0xdf) return cont(1) ? 2 : 0;
  if (b0 === 0xe0) return cont(1, 0xa0) && cont(2) ? 3 : 0;
  if ((b0 >= 0xe1 && b0 <= 0xec) || b0 === 0xee || b0 === 0xef) return cont(1) && cont(2) ? 3 : 0;
  if (b0 === 0xed) return cont(1, 0x80, 0x9f) && cont(2) ? 3 : 0;
  if (b0 === 0xf0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (b0 >= 0xf1 && b0 <= 0xf3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (b0 === 0xf4) return cont(1, 0x80, 0x8f) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}

function hasEscapes(text: string): boolean {
  // With the u flag a surrogate pair is one code point, so only lone escapes match.
  return /[\udc80-\udcff]/u.test(text);
}

/** Text -> bytes, the inverse of decodeFsBytes: U+DC80..U+DCFF back to the raw bytes 0x80..0xFF. */
export function encodeFsText(text: string): Buffer {
  if (!hasEscapes(text)) return Buffer.from(text, 'utf8');
  const parts: Buffer[] = [];
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    // A lone low surrogate: not preceded by a high one (a real astral character).
    const lone = c >= 0xdc80 && c <= 0xdcff && !(i > 0 && text.charCodeAt(i - 1) >= 0xd800 && text.charCodeAt(i - 1) <= 0xdbff);
    if (!lone) continue;
    parts.push(Buffer.from(text.slice(start, i), 'utf8'), Buffer.from([c - ESCAPE_BASE]));
    start = i + 1;
  }
  parts.push(Buffer.from(text.slice(start), 'utf8'));
  return Buffer.concat(parts);
}

/** What to hand to `fs` for a path that may hold escaped bytes: the string itself, or its exact bytes. */
export function fsPath(path: string): string | Buffer {
  return hasEscapes(path) ? encodeFsText(path) : path;
}

/**
 * A path as printed in messages: as is when it is plain text, else JSON-quoted with raw bytes shown
 * as \xNN (so a newline, a control character or a Latin-1 byte in a name cannot break the one-line
 * message or reach the terminal as is).
 */
export function displayPath(path: string): string {
  if (!/[\u0000-\u001f\u007f\u2028\u2029]/u.test(path) && !hasEscapes(path)) return path;
  return JSON.stringify(path).replace(/\\udc([89a-f][0-9a-f])/gi, (_, hex: string) => `\\x${hex.toUpperCase()}`);
}

/**
 * Maps an fs error to a DoveError naming the path, e.g. "out/a.png: cannot write (ENOSPC: no space
 * left on device)": ENOENT -> FILE_NOT_FOUND ("x: file not found"), anything else -> IO_ERROR.
 * DoveErrors pass through.
 */
export function fsError(path: string, error: unknown, action: string): DoveError {
  if (error instanceof DoveError) return error;
  const e = error as NodeJS.ErrnoException | undefined;
  const errno = typeof e?.code === 'string' ? e.code : undefined;
  const text = error instanceof Error ? error.message : String(error);
  // Node's text is "ENOSPC: no space left on device, write '/x'": keep the middle.
  const reason = text.replace(/^[A-Z0-9_]+: /, '').replace(/, \w+( '.*)?$/s, '');
  if (errno === 'ENOENT') return new DoveError(`${displayPath(path)}: file not found (cannot ${action})`, 'FILE_NOT_FOUND', { cause: error });
  return new DoveError(`${displayPath(path)}: cannot ${action} (${errno === undefined ? reason : `${errno}: ${reason}`})`, 'IO_ERROR', { cause: error });
}

/** File extensions treated as images when scanning a folder (what sharp's libvips reads). */
export const IMAGE_EXTENSIONS = ['.png', '.jpg', '.jpeg', '.webp', '.gif', '.tif', '.tiff', '.avif', '.heic', '.heif', '.svg', '.jp2', '.jxl'];

export function isImageName(name: string): boolean {
  return IMAGE_EXTENSIONS.includes(extname(name).toLowerCase());
}

/**
 * Image files in `dir` (by extension; regular files and symbolic links), as paths `join(dir, name)`
 * with names decoded byte for byte (see above), sorted. `recursive` also lists sub-folders;
 * `everyEntry` (the batch commands, which report what they cannot read) also returns the other
 * entries named like images: folders, FIFOs, devices. A missing folder is FILE_NOT_FOUND, a file where
 * a folder was expected INVALID_ARGUMENT.
 */
export async function listImageFiles(dir: string, options: { recursive?: boolean; everyEntry?: boolean } = {}): Promise<string[]> {
  const files: string[] = [];
  const pending = [dir];
  while (pending.length > 0) {
    const current = pending.pop()!;
    const entries = await fs.readdir(fsPath(current), { withFileTypes: true, encoding: 'buffer' }).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') throw new DoveError(`${displayPath(current)}: folder not found`, 'FILE_NOT_FOUND');
      if (error.code === 'ENOTDIR') throw new DoveError(`${displayPath(current)}: not a folder (expected a folder of images)`, 'INVALID_ARGUMENT');
      throw fsError(current, error, 'list folder');
    });
    for (const entry of entries) {
      const name = decodeFsBytes(entry.name);
      const path = join(current, name);
      if (entry.isDirectory() && options.recursive === true) pending.push(path);
      else if (isImageName(name) && (options.everyEntry === true || entry.isFile() || entry.isSymbolicLink())) files.push(path);
    }
  }
  return files.sort();
}

/**
 * Writes `data` to `path` through a temporary sibling and a rename (`durable`: fsync the file and the
 * folder too). Text is written as UTF-8 with escaped bytes as themselves (a CSV row naming a Latin-1
 * file holds that file's name). Fails with IO_ERROR naming `path`; the temporary file is removed.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array, options: { durable?: boolean } = {}): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`);
  try {
    const handle = await fs.open(fsPath(tmp), 'wx');
    try {
      await handle.writeFile(typeof data === 'string' ? encodeFsText(data) : data);
      if (options.durable === true) await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.rename(fsPath(tmp), fsPath(path));
  } catch (error) {
    await fs.rm(fsPath(tmp), { force: true }).catch(() => undefined);
    throw fsError(path, error, 'write');
  }
  if (options.durable === true) await syncDir(dirname(path));
}

/** fsync of a file (or folder) by path. */
export async function fsyncPath(path: string): Promise<void> {
  const handle = await fs.open(fsPath(path), 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** fsync of a folder makes a rename in it durable; some filesystems refuse it, which is not an error. */
export async function syncDir(path: string): Promise<void> {
  try {
    await fsyncPath(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'EISDIR' && code !== 'EINVAL' && code !== 'EPERM') throw fsError(path, error, 'sync folder');
  }
}

/** The bytes of a file; a failure is fsError's DoveError ("x: cannot <action> (...)"). */
export async function readFileChecked(path: string, action = 'read'): Promise<Buffer> {
  try {
    return await fs.readFile(fsPath(path));
  } catch (error) {
    throw fsError(path, error, action);
  }
}

/** Appends to a file (progress rows that a crash may cut short); IO_ERROR naming the path on failure. */
export async function appendFileChecked(path: string, data: string | Uint8Array): Promise<void> {
  try {
    await fs.appendFile(fsPath(path), typeof data === 'string' ? encodeFsText(data) : data);
  } catch (error) {
    throw fsError(path, error, 'write');
  }
}
