// Checkpoint folders: outDir/checkpoints/step-<N>/{model.pt, optimizer.pt, trainer.json}. Each is
// written into a `.partial-<pid>` sibling, every file fsynced, then the folder is renamed into place
// and the parent fsynced: a crash at any moment leaves the previous checkpoints intact and the new
// one either complete or absent (stale partial folders are removed on the next start).
import { promises as fs, writeSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { DoveError } from '../base/errors';
import { displayPath, fsError, readFileChecked, syncDir } from '../base/files';
import { isJsonObject, parseJson, preview } from '../base/json';

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
  try {
    await fs.mkdir(partial);
    await writeParts(partial);
    await syncDir(partial);
  } catch (error) {
    // A full disk mid-checkpoint: the earlier checkpoints stay, the half-written one goes (it would
    // only hold space the next attempt needs).
    await fs.rm(partial, { recursive: true, force: true }).catch(() => undefined);
    throw fsError(final, error, 'write checkpoint');
  }
  // Same step saved twice (stop() right at an epoch end): the newer copy replaces the older one.
  await fs.rm(final, { recursive: true, force: true });
  await fs.rename(partial, final);
  await syncDir(root);
  return final;
}

/** The files of a checkpoint folder, in the order the Trainer writes them. */
export const CHECKPOINT_FILES = ['model.pt', 'optimizer.pt', 'trainer.json'] as const;
export type CheckpointFile = (typeof CHECKPOINT_FILES)[number];

/** Test hook, read from the environment once per fit(); docs/API.md lists it with the other variables. */
export const STOP_IN_CHECKPOINT_ENV = 'DOVE_TEST_STOP_IN_CHECKPOINT';

export interface CheckpointStop {
  step: number;
  file: CheckpointFile;
}

/**
 * `DOVE_TEST_STOP_IN_CHECKPOINT=<step>:<file>`: where the crash test wants the Trainer to stop inside
 * a checkpoint write. null when unset; a malformed value is an INVALID_ARGUMENT, not ignored.
 */
export function checkpointStopFromEnv(env: NodeJS.ProcessEnv = process.env): CheckpointStop | null {
  const spec = env[STOP_IN_CHECKPOINT_ENV];
  if (spec === undefined || spec === '') return null;
  const match = /^([1-9]\d*):(.+)$/.exec(spec);
  const file = CHECKPOINT_FILES.find((name) => name === match?.[2]);
  if (match === null || file === undefined) {
    throw new DoveError(
      `Expected <step>:<${CHECKPOINT_FILES.join('|')}> for ${STOP_IN_CHECKPOINT_ENV} but received '${spec}'`,
      'INVALID_ARGUMENT',
    );
  }
  return { step: Number(match[1]), file };
}

/**
 * Called after each file of a checkpoint is written into its partial folder. When it is the file the
 * test asked for, says so on stderr and stops the whole process (SIGSTOP): the test then SIGKILLs it
 * at exactly that point, with the folder half written and not yet renamed.
 */
export function stopIfRequested(stop: CheckpointStop | null, step: number, file: CheckpointFile): void {
  if (stop === null || stop.step !== step || stop.file !== file) return;
  writeSync(2, `${STOP_IN_CHECKPOINT_ENV}: stopped after writing ${file} of step ${step}\n`);
  process.kill(process.pid, 'SIGSTOP');
}

/** Committed checkpoints, oldest first. */
export async function listCheckpoints(outDir: string): Promise<string[]> {
  const root = checkpointsDir(outDir);
  const names = await fs.readdir(root).catch(() => [] as string[]);
  return names.filter((n) => /^step-\d+$/.test(n)).sort().map((n) => join(root, n));
}

/** Removes all but the newest `keep` checkpoints and any partial folder left by a crash. */
export async function pruneCheckpoints(outDir: string, keep: number): Promise<void> {
  const root = checkpointsDir(outDir);
  // No folder yet: nothing to prune.
  for (const n of await fs.readdir(root).catch(() => [] as string[])) {
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
  const stat = await fs.stat(abs).catch(() => {
    throw new DoveError(`checkpoint not found: ${path}`, 'FILE_NOT_FOUND');
  });
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
  return parseState(file, (await readFileChecked(file, 'read trainer state')).toString('utf8'));
}

/**
 * Parses and checks trainer.json: every field resuming uses, with its type and range (a history
 * entry that is not {step, loss[, rec]} would otherwise surface as a TypeError in the loss plot).
 * Bad files are IO_ERROR naming the field; another format or version is FORMAT_VERSION.
 */
export function parseState(file: string, text: string): TrainerState {
  const where = displayPath(file);
  const fail: (why: string) => never = (why) => {
    throw new DoveError(`${where}: cannot read trainer state (${why})`, 'IO_ERROR');
  };
  const state = parseJson(text, 'trainer.json', fail);
  if (!isJsonObject(state)) return fail(`expected a JSON object but found ${preview(state)}`);
  if (state.format !== STATE_FORMAT || state.version !== STATE_VERSION) {
    throw new DoveError(`${where}: not a dove-encoder trainer state (format ${preview(state.format)} version ${preview(state.version)})`, 'FORMAT_VERSION');
  }
  const count = (obj: Record<string, unknown>, key: string, min: number, prefix = ''): void => {
    const v = obj[key];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) fail(`${prefix}${key} must be an integer >= ${min} but is ${preview(v)}`);
  };
  for (const key of ['epoch', 'stepInEpoch', 'step', 'samplesSeen'] as const) count(state, key, 0);
  count(state, 'totalSteps', 1);
  count(state, 'epochs', 1);
  const d = state.data;
  if (!isJsonObject(d)) return fail(`data must be an object but is ${preview(d)}`);
  count(d, 'seed', Number.MIN_SAFE_INTEGER, 'data.');
  for (const key of ['numSamples', 'batchSize', 'worldSize', 'accumulate', 'stepsPerEpoch'] as const) count(d, key, 1, 'data.');
  if (!Array.isArray(state.history)) return fail(`history must be a list of {step, loss} but is ${preview(state.history)}`);
  state.history.forEach((h: unknown, i) => {
    const ok =
      isJsonObject(h) && typeof h.step === 'number' && Number.isSafeInteger(h.step) && h.step >= 0 &&
      typeof h.loss === 'number' && (h.rec === undefined || typeof h.rec === 'number');
    if (!ok) fail(`history[${i}] must be {step, loss[, rec]} with an integer step and numbers but is ${preview(h)}`);
  });
  if (typeof state.sourceModel !== 'string') fail(`sourceModel must be a path but is ${preview(state.sourceModel)}`);
  return state as unknown as TrainerState;
}
