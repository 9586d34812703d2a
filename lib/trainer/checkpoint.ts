// Checkpoint folders: outDir/checkpoints/step-<N>/{model.pt, optimizer.pt, trainer.json}. Each is
// written into a `.partial-<pid>` sibling, every file fsynced, then the folder is renamed into place
// and the parent fsynced: a crash at any moment leaves the previous checkpoints intact and the new
// one either complete or absent (stale partial folders are removed on the next start).
import { promises as fs } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { DoveError } from '../errors';

export const STATE_FORMAT = 'dove-encoder/trainer-state';
export const STATE_VERSION = 1;

export interface TrainerState {
  format: typeof STATE_FORMAT;
  version: typeof STATE_VERSION;
  /** Epoch and micro-batch within it that the next step runs. */
  epoch: number;
  stepInEpoch: number;
  /** Optimizer steps done. */
  step: number;
  samplesSeen: number;
  /** Data order: epoch e uses epochPermutation(numSamples, seed, e); augmentation hash32(seed, e, position). */
  data: { seed: number; numSamples: number; batchSize: number; worldSize: number; accumulate: number; stepsPerEpoch: number };
  /** The CPU RNG state lives in optimizer.pt (written by the native engine). */
  rng: { cpu: 'optimizer.pt' };
  totalSteps: number;
  epochs: number;
  /** Loss history for the loss-curve plot. */
  history: { step: number; loss: number; rec?: number }[];
  sourceModel: string;
  savedAt: string;
}

export async function fsyncFile(path: string): Promise<void> {
  const handle = await fs.open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Directory fsync makes a rename durable; some filesystems refuse it, which is not an error. */
export async function fsyncDir(path: string): Promise<void> {
  try {
    await fsyncFile(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'EISDIR' && code !== 'EINVAL' && code !== 'EPERM') throw error;
  }
}

export async function writeFileDurable(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  const handle = await fs.open(tmp, 'w');
  try {
    await handle.writeFile(text);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await fs.rename(tmp, path);
  await fsyncDir(dirname(path));
}

export function checkpointsDir(outDir: string): string {
  return join(outDir, 'checkpoints');
}

export function checkpointName(step: number): string {
  return `step-${String(step).padStart(8, '0')}`;
}

/** Writes one checkpoint through `writeParts(tmpDir)` and commits it by rename. Returns its folder. */
export async function commitCheckpoint(outDir: string, step: number, writeParts: (dir: string) => Promise<void>): Promise<string> {
  const root = checkpointsDir(outDir);
  await fs.mkdir(root, { recursive: true });
  const final = join(root, checkpointName(step));
  const partial = `${final}.partial-${process.pid}`;
  await fs.rm(partial, { recursive: true, force: true });
  await fs.mkdir(partial);
  await writeParts(partial);
  await fsyncDir(partial);
  // Same step saved twice (stop() right at an epoch end): the newer copy replaces the older one.
  await fs.rm(final, { recursive: true, force: true });
  await fs.rename(partial, final);
  await fsyncDir(root);
  return final;
}

/** Committed checkpoints, oldest first. */
export async function listCheckpoints(outDir: string): Promise<string[]> {
  const root = checkpointsDir(outDir);
  let names: string[];
  try {
    names = await fs.readdir(root);
  } catch {
    return [];
  }
  return names.filter((n) => /^step-\d+$/.test(n)).sort().map((n) => join(root, n));
}

/** Removes all but the newest `keep` checkpoints and any partial folder left by a crash. */
export async function pruneCheckpoints(outDir: string, keep: number): Promise<void> {
  const root = checkpointsDir(outDir);
  let names: string[];
  try {
    names = await fs.readdir(root);
  } catch {
    return;
  }
  for (const n of names) {
    const m = /\.partial-(\d+)$/.exec(n);
    // Our own partial folder may be in flight; others are crash leftovers.
    if (m !== null && Number(m[1]) !== process.pid) await fs.rm(join(root, n), { recursive: true, force: true });
  }
  const done = await listCheckpoints(outDir);
  for (const dir of done.slice(0, Math.max(0, done.length - keep))) await fs.rm(dir, { recursive: true, force: true });
}

/** Accepts a checkpoint folder, its trainer.json, or an outDir (its newest checkpoint). */
export async function resolveCheckpoint(path: string): Promise<string> {
  const abs = resolve(path);
  let stat;
  try {
    stat = await fs.stat(abs);
  } catch {
    throw new DoveError(`checkpoint not found: ${path}`, 'FILE_NOT_FOUND');
  }
  if (stat.isFile()) {
    if (basename(abs) !== 'trainer.json') throw new DoveError(`${path}: expected a checkpoint folder or its trainer.json`, 'INVALID_ARGUMENT');
    return dirname(abs);
  }
  try {
    await fs.access(join(abs, 'trainer.json'));
    return abs;
  } catch {
    const all = await listCheckpoints(abs);
    const last = all[all.length - 1];
    if (last === undefined) throw new DoveError(`${path}: no trainer.json and no committed checkpoints under ${checkpointsDir(abs)}`, 'FILE_NOT_FOUND');
    return last;
  }
}

export async function readState(dir: string): Promise<TrainerState> {
  const file = join(dir, 'trainer.json');
  let state: Partial<TrainerState>;
  try {
    state = JSON.parse(await fs.readFile(file, 'utf8')) as Partial<TrainerState>;
  } catch (error) {
    throw new DoveError(`${file}: cannot read trainer state (${(error as Error).message})`, 'IO_ERROR');
  }
  if (state.format !== STATE_FORMAT || state.version !== STATE_VERSION) {
    throw new DoveError(`${file}: not a dove-encoder trainer state (format ${String(state.format)} version ${String(state.version)})`, 'FORMAT_VERSION');
  }
  for (const key of ['epoch', 'stepInEpoch', 'step', 'samplesSeen'] as const) {
    if (!Number.isInteger(state[key]) || (state[key] as number) < 0) throw new DoveError(`${file}: invalid ${key}`, 'IO_ERROR');
  }
  return state as TrainerState;
}
