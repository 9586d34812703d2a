// Helpers for the input-hardening regression tests (issue 15, rows 8-13): running code in a child
// process (a crash shows as a signal there, not as a dead test runner), measuring a child's peak RSS,
// writing files whose names are bytes, patching an extra file inside a TorchScript archive, and a
// tiny tmpfs for full-disk tests.
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { CLI, FIXTURES, ROOT } from '../api/helpers';

export { CLI, FIXTURES, ROOT };
export const HARDENING_FIXTURES = join(FIXTURES, 'hardening');

export interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Peak resident set of the child in KiB (from its own process.resourceUsage at exit), if it got that far. */
  maxRssKiB?: number;
}

const RSS_MARK = '@@maxrss=';

/**
 * Runs `node [--require rss-reporter] args...` and resolves with how it ended; never rejects. The
 * reporter prints the child's peak RSS to stderr at exit (stripped from `stderr`).
 */
export function runNode(args: readonly string[], options: { timeoutMs?: number; cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<ChildResult> {
  return new Promise((resolvePromise) => {
    const reporter = join(ROOT, 'dist', 'test', 'hardening', 'rss-reporter.js');
    const child = spawn(process.execPath, ['--require', reporter, ...args], { cwd: options.cwd ?? ROOT, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 600_000);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const m = new RegExp(`${RSS_MARK}(\\d+)\\n?`).exec(stderr);
      resolvePromise({ code, signal, stdout, stderr: stderr.replace(new RegExp(`${RSS_MARK}\\d+\\n?`), ''), maxRssKiB: m ? Number(m[1]) : undefined });
    });
  });
}

/** `dove <args>` in a child process. */
export function runDove(args: readonly string[], options: { timeoutMs?: number; cwd?: string } = {}): Promise<ChildResult> {
  return runNode([CLI, ...args], options);
}

/** Runs a snippet of JS (CommonJS, `require` from the repository root) in a child process. */
export function runSnippet(code: string, options: { timeoutMs?: number } = {}): Promise<ChildResult> {
  return runNode(['-e', code], { ...options, cwd: ROOT });
}

/** Writes a file whose name is raw bytes (e.g. Latin-1), in `dir`. Returns the name's bytes. */
export function writeFileBytesName(dir: string, name: Buffer, data: Uint8Array): Buffer {
  const path = Buffer.concat([Buffer.from(`${dir}/`), name]);
  writeFileSync(path, data);
  return path;
}

/**
 * Copies a TorchScript archive, replacing the content of the entry ending in `suffix` (e.g.
 * 'extra/dove.json') by `edit(text)`. The archive is stored (not deflated) and its entries aligned,
 * so the new text is padded with spaces to the old length (it must not be longer) and the CRC-32s
 * (local header, data descriptor, central directory) are rewritten: offsets stay valid.
 */
export function patchArchiveEntry(src: string, dst: string, suffix: string, edit: (text: string) => string): void {
  const zip = Buffer.from(readFileSync(src));
  let eocd = zip.length - 22;
  while (eocd >= 0 && zip.readUInt32LE(eocd) !== 0x06054b50) eocd--;
  if (eocd < 0) throw new Error(`${src}: no zip end record`);
  const entries = zip.readUInt16LE(eocd + 10);
  let at = zip.readUInt32LE(eocd + 16);
  for (let i = 0; i < entries; i++) {
    if (zip.readUInt32LE(at) !== 0x02014b50) throw new Error(`${src}: bad central directory`);
    const nameLen = zip.readUInt16LE(at + 28);
    const extraLen = zip.readUInt16LE(at + 30);
    const commentLen = zip.readUInt16LE(at + 32);
    const name = zip.toString('utf8', at + 46, at + 46 + nameLen);
    if (name.endsWith(suffix)) {
      if (zip.readUInt16LE(at + 10) !== 0) throw new Error(`${name} is compressed`);
      const size = zip.readUInt32LE(at + 24);
      const local = zip.readUInt32LE(at + 42);
      const dataStart = local + 30 + zip.readUInt16LE(local + 26) + zip.readUInt16LE(local + 28);
      const text = edit(zip.toString('utf8', dataStart, dataStart + size));
      const bytes = Buffer.from(text, 'utf8');
      if (bytes.length > size) throw new Error(`patched ${name} is ${bytes.length} bytes, more than the ${size} it replaces`);
      const padded = Buffer.concat([bytes, Buffer.alloc(size - bytes.length, 0x20)]);
      padded.copy(zip, dataStart);
      const crc = crc32(padded);
      zip.writeUInt32LE(crc, at + 16);
      if (zip.readUInt32LE(local + 14) !== 0) zip.writeUInt32LE(crc, local + 14);
      if ((zip.readUInt16LE(local + 6) & 0x8) !== 0) {
        const desc = dataStart + size;
        zip.writeUInt32LE(crc, zip.readUInt32LE(desc) === 0x08074b50 ? desc + 4 : desc);
      }
      writeFileSync(dst, zip);
      return;
    }
    at += 46 + nameLen + extraLen + commentLen;
  }
  throw new Error(`${src}: no entry ending in ${suffix}`);
}

/** Edits dove.json of a copy of `src`: `edit` gets the parsed object and returns JSON text (compact). */
export function withDoveJson(src: string, dst: string, edit: (meta: Record<string, unknown>) => string): void {
  patchArchiveEntry(src, dst, 'extra/dove.json', (text) => edit(JSON.parse(text) as Record<string, unknown>));
}

/** Mounts a tmpfs of `kib` KiB on a new folder (needs root); undefined when mounting is not possible here. */
export function mountTinyFs(parent: string, kib: number): { dir: string; unmount: () => void } | undefined {
  const dir = join(parent, 'tiny-fs');
  mkdirSync(dir, { recursive: true });
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${kib}k`, 'tmpfs', dir], { stdio: 'ignore' });
  } catch {
    rmdirSync(dir);
    return undefined;
  }
  return {
    dir,
    unmount: () => {
      try {
        execFileSync('umount', [dir], { stdio: 'ignore' });
      } catch {
        // already gone
      }
    },
  };
}

/** Creates a sparse file of `bytes` bytes starting with `head` (no disk space used beyond the head). */
export function sparseFile(path: string, bytes: number, head: Uint8Array = new Uint8Array(0)): void {
  const fd = openSync(path, 'w');
  try {
    if (head.length > 0) writeFileSync(fd, head);
  } finally {
    closeSync(fd);
  }
  execFileSync('truncate', ['-s', String(bytes), path]);
}
