// The run monitor's view of `dove train --out` folders: the log read from a byte offset (so a page
// polls for new lines only), the plots and checkpoints, and files served only from inside a run
// folder: the path is resolved, then the real path (symlinks followed) must still lie inside the
// folder's real path, so neither `..`, an encoded slash nor a symlink can leave it.
import { promises as fs, realpathSync, statSync } from 'node:fs';
import { basename, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { DoveError, valueOr } from '../base/errors';
import { integerAtLeast } from '../base/validate';
import { listCheckpoints } from '../trainer/checkpoint';
import { httpError } from './http-errors';
import type { LogChunk, RunFile, RunSummary } from './wire';

export interface RunFolder {
  id: string;
  name: string;
  /** Real path of the folder. */
  root: string;
}

/** Bytes read per poll: a long log arrives over a few polls instead of one huge reply. */
export const LOG_CHUNK_BYTES = 1 << 20;

/** Resolves each --run folder once at start; a missing folder is an error, an empty one is fine (training may not have begun). */
export function openRunFolders(paths: readonly string[]): RunFolder[] {
  const seen = new Map<string, number>();
  return paths.map((path, i) => {
    let root: string;
    try {
      root = realpathSync(path);
    } catch {
      throw new DoveError(`${path}: run folder not found`, 'FILE_NOT_FOUND');
    }
    if (!statSync(root).isDirectory()) throw new DoveError(`${path}: not a folder`, 'INVALID_ARGUMENT');
    const base = basename(root) || root;
    const n = (seen.get(base) ?? 0) + 1;
    seen.set(base, n);
    return { id: String(i), name: n === 1 ? base : `${base} (${n})`, root };
  });
}

export function findRun(runs: readonly RunFolder[], id: string): RunFolder {
  const run = runs.find((r) => r.id === id);
  if (run === undefined) throw httpError(`No run ${id}; GET /v1/runs lists them`, 'NOT_FOUND');
  return run;
}

async function fileInfo(path: string, name: string): Promise<RunFile | null> {
  const st = await fs.stat(path).catch(() => undefined);
  return st?.isFile() ? { name, bytes: st.size, modified: st.mtime.toISOString() } : null;
}

export async function summarizeRun(run: RunFolder): Promise<RunSummary> {
  const log = await fileInfo(join(run.root, 'log.jsonl'), 'log.jsonl');
  const entries = await fs.readdir(run.root).catch(() => [] as string[]);
  const grids = (await Promise.all(entries.filter((n) => /^reconstructions-epoch-\d+\.png$/.test(n)).sort().map((n) => fileInfo(join(run.root, n), n)))).filter((f): f is RunFile => f !== null);
  const checkpoints = await Promise.all(
    (await listCheckpoints(run.root)).map(async (dir) => {
      const name = basename(dir);
      const files = (await Promise.all(['model.pt', 'optimizer.pt', 'trainer.json'].map((f) => fileInfo(join(dir, f), `checkpoints/${name}/${f}`)))).filter((f): f is RunFile => f !== null);
      return { name, step: Number(name.slice('step-'.length)), files };
    }),
  );
  return {
    id: run.id,
    name: run.name,
    finished: log !== null && (await lastRecordType(join(run.root, 'log.jsonl'), log.bytes)) === 'done',
    logBytes: log?.bytes ?? 0,
    updatedAt: log?.modified ?? null,
    lossCurve: await fileInfo(join(run.root, 'loss-curve.png'), 'loss-curve.png'),
    grids,
    checkpoints,
  };
}

/** The `type` of the log's last complete record (reads only its tail). */
async function lastRecordType(path: string, size: number): Promise<string | undefined> {
  const tail = Math.min(size, 4096);
  const handle = await fs.open(path, 'r');
  try {
    const buf = Buffer.alloc(tail);
    await handle.read(buf, 0, tail, size - tail);
    const lines = buf.toString('utf8').split('\n').filter((l) => l.trim() !== '');
    return valueOr(() => (JSON.parse(lines[lines.length - 1] ?? '') as { type?: string }).type, undefined);
  } finally {
    await handle.close();
  }
}

/** Complete lines of log.jsonl from `offset` (at most LOG_CHUNK_BYTES); a half-written last line waits for the next poll. */
export async function readLog(run: RunFolder, offset: number): Promise<LogChunk> {
  integerAtLeast(offset, 'offset', 0);
  const path = join(run.root, 'log.jsonl');
  const handle = await fs.open(path, 'r').catch(() => undefined);
  if (handle === undefined) return { offset: 0, reset: offset > 0, records: [] };
  try {
    const size = (await handle.stat()).size;
    const reset = offset > size;
    const start = reset ? 0 : offset;
    const length = Math.min(size - start, LOG_CHUNK_BYTES);
    const buf = Buffer.alloc(length);
    const { bytesRead } = await handle.read(buf, 0, length, start);
    const text = buf.subarray(0, bytesRead);
    const end = text.lastIndexOf(0x0a) + 1;
    const records: unknown[] = [];
    for (const line of text.subarray(0, end).toString('utf8').split('\n')) {
      if (line.trim() === '') continue;
      try {
        records.push(JSON.parse(line));
      } catch {
        // A line that is not JSON (a crash mid-write, an edit by hand) is skipped, not fatal.
      }
    }
    return { offset: start + end, reset, records };
  } finally {
    await handle.close();
  }
}

function inside(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel === '' || (!rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel));
}

/** The real path of a regular file inside the run folder, or FORBIDDEN (outside) / NOT_FOUND. */
export async function resolveRunFile(run: RunFolder, requested: string): Promise<string> {
  if (requested.includes('\0') || requested.includes('\\')) throw httpError(`${JSON.stringify(requested)} is not a valid file name`, 'FORBIDDEN');
  const candidate = resolve(run.root, requested);
  if (!inside(run.root, candidate)) throw httpError(`${requested} is outside run ${run.name}`, 'FORBIDDEN');
  const real = await fs.realpath(candidate).catch(() => {
    throw httpError(`No file ${requested} in run ${run.name}`, 'NOT_FOUND');
  });
  if (!inside(run.root, real)) throw httpError(`${requested} is outside run ${run.name}`, 'FORBIDDEN');
  const st = await fs.stat(real);
  if (!st.isFile()) throw httpError(`No file ${requested} in run ${run.name}`, 'NOT_FOUND');
  return real;
}

const CONTENT_TYPES: { readonly [ext: string]: string } = {
  '.png': 'image/png',
  '.json': 'application/json',
  '.jsonl': 'application/x-ndjson',
  '.csv': 'text/csv; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
};

export function runFileType(path: string): string {
  const dot = path.lastIndexOf('.');
  return CONTENT_TYPES[dot >= 0 ? path.slice(dot).toLowerCase() : ''] ?? 'application/octet-stream';
}
