// Shared paths and small image makers for the API/CLI tests.
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { deflateSync, crc32 } from 'node:zlib';
import sharp from 'sharp';

/** The torch virtualenv's python, as scripts/lib.sh's dove_py finds it (DOVE_VENV, DOVE_CACHE, any Python 3). */
export { pythonPath } from '../../bench/lib/paths';

import { CLI, FIXTURES, ROOT, tempDir } from '../support';

export { CLI, FIXTURES, ROOT, tempDir };
export const API_FIXTURES = join(FIXTURES, 'api');

/** The tiny DOVE / Q-DOVE exports made by python/dove_fixtures. */
export const TINY_DOVE = join(FIXTURES, 'tiny-dove.pt');
export const TINY_QDOVE = join(FIXTURES, 'tiny-qdove.pt');
/** The config the tiny fixtures were exported from (python/dove_fixtures/model.py uses configs/tiny.json). */
export const TINY_CONFIG = JSON.parse(readFileSync(join(ROOT, 'python', 'dove', 'configs', 'tiny.json'), 'utf8')) as { imageSize: number; maxTokens: number; tokenDim: number };

export function fixtureExists(path: string): boolean {
  return existsSync(path);
}

/** A deterministic RGB test picture: gradients plus a few blocks, `w`×`h`. */
export function testPattern(w: number, h: number, seed = 0): Buffer {
  const data = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = (y * w + x) * 3;
      data[i] = (x * 255) / Math.max(1, w - 1);
      data[i + 1] = (y * 255) / Math.max(1, h - 1);
      data[i + 2] = ((x >> 3) + (y >> 3) + seed) % 2 === 0 ? 200 : 40;
    }
  }
  return data;
}

export async function pngOf(w: number, h: number, seed = 0): Promise<Buffer> {
  return sharp(testPattern(w, h, seed), { raw: { width: w, height: h, channels: 3 } }).png().toBuffer();
}

/** One PNG chunk: length, type, body, CRC. */
export function pngChunk(type: string, body: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(body.length);
  const typed = Buffer.concat([Buffer.from(type, 'ascii'), body]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(typed));
  return Buffer.concat([len, typed, crc]);
}

/** A valid-looking PNG whose IHDR claims `w`×`h` but carries only a few bytes of pixel data. */
export function bombPng(w: number, h: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', ihdr),
    pngChunk('IDAT', deflateSync(Buffer.alloc(1024))),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}

/** Max absolute difference between two byte arrays. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `node dist/lib/cli/main.js ...args` and resolves with its exit code and output (never rejects). */
export function runCli(args: readonly string[], timeoutMs = 180_000): Promise<CliResult> {
  return new Promise((resolvePromise) => {
    execFile(process.execPath, [CLI, ...args], { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024, cwd: ROOT }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
      resolvePromise({ code, stdout, stderr });
    });
  });
}
