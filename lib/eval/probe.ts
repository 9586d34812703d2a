// Linear probing of frozen representations: features of a labelled data set (DOVE tokens at a fixed
// budget flattened, as the original probe; or EOS-length tokens mean-pooled; or raw pixels as the
// baseline), extracted once and cached on disk, then a softmax-regression classifier trained in
// libtorch (native/eval_probe.cpp), logged per epoch.
import { createHash } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { LinearProbeEpoch, LinearProbeResult } from '../../binding';
import { DoveError } from '../base/errors';
import { integerInRange } from '../base/validate';
import { loadBatch, type ImageInput, type RawPixels } from '../io/images';
import type { Tokenizer } from '../model/tokenizer';
import type { DatasetSplit, LabelledDataset } from './cifar';
import { binding as getBinding } from '../core/native';
import { toCsv, writeReport } from './report';

export type ProbeFeatureKind = 'tokens' | 'pixels';

export interface ProbeFeatureOptions {
  kind: ProbeFeatureKind;
  /** tokens: the model (its file is hashed into the cache key). */
  tokenizer?: Tokenizer;
  /** tokens: fixed budget K (features = K×D flattened). Ignored with `auto`. */
  numTokens?: number;
  /** tokens: EOS-chosen length, tokens mean-pooled to D. */
  auto?: boolean;
  threshold?: number;
  /** pixels: side images are resized to (folder layout; CIFAR stays 32). Default 32. */
  pixelSize?: number;
  /** Images per forward (default 64). */
  batchSize?: number;
  /** Cache folder (default ~/.cache/dove-encoder/probe-features); null disables the cache. */
  cacheDir?: string | null;
  onProgress?: (split: 'train' | 'test', done: number, total: number) => void;
}

export interface ProbeFeatures {
  dim: number;
  train: Float32Array;
  test: Float32Array;
  /** Where they were cached (or read from), if anywhere. */
  cacheFile?: string;
  fromCache: boolean;
  description: string;
}

export const DEFAULT_CACHE_DIR = join(homedir(), '.cache', 'dove-encoder', 'probe-features');
const CACHE_VERSION = 1;

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  try {
    for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new DoveError(`${path}: cannot read for hashing (${code ?? String(error)})`, code === 'ENOENT' ? 'FILE_NOT_FOUND' : 'IO_ERROR');
  }
  return hash.digest('hex');
}

/** Identity of the data set files: path, size and modification time of each. */
async function datasetIdentity(dataset: LabelledDataset): Promise<string> {
  const hash = createHash('sha256');
  for (const file of dataset.files) {
    const st = await fs.stat(file);
    hash.update(`${file}\0${st.size}\0${st.mtimeMs}\n`);
  }
  hash.update(`${dataset.format}\0${dataset.train.count}\0${dataset.test.count}`);
  return hash.digest('hex');
}

function splitInputs(split: DatasetSplit): ImageInput[] {
  const images = split.images;
  if (images.kind === 'files') return images.paths;
  const frame = images.width * images.height * 3;
  return Array.from({ length: split.count }, (_, i): RawPixels => ({
    data: images.data.subarray(i * frame, (i + 1) * frame),
    width: images.width,
    height: images.height,
    channels: 3,
  }));
}

async function pixelFeatures(split: DatasetSplit, size: number, batchSize: number, onProgress: (done: number) => void): Promise<{ dim: number; data: Float32Array }> {
  let pixels: Uint8Array;
  let dim: number;
  if (split.images.kind === 'pixels') {
    pixels = split.images.data;
    dim = split.images.width * split.images.height * 3;
  } else {
    dim = size * size * 3;
    pixels = new Uint8Array(split.count * dim);
    const inputs = splitInputs(split);
    for (let start = 0; start < inputs.length; start += batchSize) {
      pixels.set(await loadBatch(inputs.slice(start, start + batchSize), { size }), start * dim);
      onProgress(Math.min(inputs.length, start + batchSize));
    }
  }
  const data = Float32Array.from(pixels, (v) => v / 255);
  onProgress(split.count);
  return { dim, data };
}

async function tokenFeatures(
  tokenizer: Tokenizer,
  split: DatasetSplit,
  options: { numTokens: number; auto: boolean; threshold?: number; batchSize: number },
  onProgress: (done: number) => void,
): Promise<{ dim: number; data: Float32Array }> {
  const d = tokenizer.tokenDim;
  const dim = options.auto ? d : options.numTokens * d;
  const data = new Float32Array(split.count * dim);
  const inputs = splitInputs(split);
  for (let start = 0; start < inputs.length; start += options.batchSize) {
    const chunk = inputs.slice(start, start + options.batchSize);
    const batch = options.auto
      ? await tokenizer.tokenize(chunk, { mode: 'auto', threshold: options.threshold })
      : await tokenizer.tokenize(chunk, { mode: 'fixed', maxTokens: options.numTokens, threshold: options.threshold });
    try {
      batch.items.forEach((item, i) => {
        const row = (start + i) * dim;
        if (!options.auto) {
          if (item.tokens.length !== dim) throw new DoveError(`Expected ${dim} token values per image in fixed mode but received ${item.tokens.length}`, 'INTERNAL');
          data.set(item.tokens, row);
          return;
        }
        // Mean over the EOS-chosen tokens: one D-vector whatever the length.
        for (let t = 0; t < item.length; t++) for (let j = 0; j < d; j++) data[row + j]! += item.tokens[t * d + j]!;
        for (let j = 0; j < d; j++) data[row + j]! /= item.length;
      });
    } finally {
      batch.dispose();
    }
    onProgress(Math.min(inputs.length, start + options.batchSize));
  }
  return { dim, data };
}

interface CacheMeta {
  version: number;
  key: string;
  dim: number;
  train: number;
  test: number;
  description: string;
}

async function readCache(dir: string, key: string, trainCount: number, testCount: number): Promise<{ dim: number; train: Float32Array; test: Float32Array; file: string } | undefined> {
  const metaFile = join(dir, `${key}.json`);
  const binFile = join(dir, `${key}.f32`);
  try {
    const meta = JSON.parse(await fs.readFile(metaFile, 'utf8')) as CacheMeta;
    if (meta.version !== CACHE_VERSION || meta.key !== key || meta.train !== trainCount || meta.test !== testCount) return undefined;
    if (!Number.isSafeInteger(meta.dim) || meta.dim < 1) return undefined; // a damaged cache: recompute
    const buf = await fs.readFile(binFile);
    const expected = (meta.train + meta.test) * meta.dim * 4;
    if (buf.length !== expected) return undefined; // a torn write: recompute
    const all = new Float32Array(buf.buffer, buf.byteOffset, buf.length / 4);
    return { dim: meta.dim, train: all.subarray(0, meta.train * meta.dim), test: all.subarray(meta.train * meta.dim), file: binFile };
  } catch {
    return undefined;
  }
}

async function writeCache(dir: string, meta: CacheMeta, train: Float32Array, test: Float32Array): Promise<string> {
  const binFile = join(dir, `${meta.key}.f32`);
  const body = Buffer.concat([Buffer.from(train.buffer, train.byteOffset, train.byteLength), Buffer.from(test.buffer, test.byteOffset, test.byteLength)]);
  // Data first, metadata last: a reader only trusts the pair once the metadata exists.
  await writeReport(binFile, body);
  await writeReport(join(dir, `${meta.key}.json`), JSON.stringify(meta, null, 2) + '\n');
  return binFile;
}

/** Extracts (or loads from cache) the features of both splits. */
export async function probeFeatures(dataset: LabelledDataset, options: ProbeFeatureOptions): Promise<ProbeFeatures> {
  const batchSize = options.batchSize ?? 64;
  const pixelSize = options.pixelSize ?? 32;
  let settings: Record<string, unknown>;
  let description: string;
  let extract: (split: DatasetSplit, onProgress: (done: number) => void) => Promise<{ dim: number; data: Float32Array }>;
  if (options.kind === 'tokens') {
    const tokenizer = options.tokenizer;
    if (tokenizer === undefined) throw new DoveError('Token features need a model (tokenizer)', 'INVALID_ARGUMENT');
    const auto = options.auto === true;
    const numTokens = options.numTokens ?? tokenizer.maxTokens;
    if (!auto) integerInRange(numTokens, 'numTokens', 1, tokenizer.maxTokens);
    settings = { kind: 'tokens', model: await sha256File(tokenizer.model.path), auto, numTokens: auto ? null : numTokens, threshold: options.threshold ?? null };
    description = auto ? `DOVE tokens, EOS length, mean-pooled (${tokenizer.tokenDim}-d)` : `DOVE tokens, ${numTokens} fixed, flattened (${numTokens * tokenizer.tokenDim}-d)`;
    extract = (split, onProgress) => tokenFeatures(tokenizer, split, { numTokens, auto, threshold: options.threshold, batchSize }, onProgress);
  } else if (options.kind === 'pixels') {
    settings = { kind: 'pixels', size: dataset.train.images.kind === 'pixels' ? null : pixelSize };
    description = 'raw pixels';
    extract = (split, onProgress) => pixelFeatures(split, pixelSize, batchSize, onProgress);
  } else {
    throw new DoveError(`Expected tokens or pixels for features but received ${String(options.kind)}`, 'INVALID_ARGUMENT');
  }
  const key = createHash('sha256')
    .update(JSON.stringify({ v: CACHE_VERSION, settings, data: await datasetIdentity(dataset) }))
    .digest('hex')
    .slice(0, 32);
  const cacheDir = options.cacheDir === undefined ? DEFAULT_CACHE_DIR : options.cacheDir;
  if (cacheDir !== null) {
    const hit = await readCache(cacheDir, key, dataset.train.count, dataset.test.count);
    if (hit !== undefined) return { dim: hit.dim, train: hit.train, test: hit.test, cacheFile: hit.file, fromCache: true, description };
  }
  const train = await extract(dataset.train, (done) => options.onProgress?.('train', done, dataset.train.count));
  const test = await extract(dataset.test, (done) => options.onProgress?.('test', done, dataset.test.count));
  let cacheFile: string | undefined;
  if (cacheDir !== null) {
    cacheFile = await writeCache(cacheDir, { version: CACHE_VERSION, key, dim: train.dim, train: dataset.train.count, test: dataset.test.count, description }, train.data, test.data);
  }
  return { dim: train.dim, train: train.data, test: test.data, cacheFile, fromCache: false, description };
}

export interface ProbeTrainOptions {
  numClasses: number;
  epochs: number;
  batchSize: number;
  lr: number;
  weightDecay?: number;
  seed?: number;
  standardize?: boolean;
  onEpoch?: (m: LinearProbeEpoch) => void;
}

/** Trains the linear classifier natively; returns per-epoch metrics (and the weights). */
export async function trainProbe(features: ProbeFeatures, dataset: LabelledDataset, options: ProbeTrainOptions): Promise<LinearProbeResult> {
  let maxLabel = 0;
  for (const labels of [dataset.train.labels, dataset.test.labels]) for (const l of labels) maxLabel = Math.max(maxLabel, l);
  integerInRange(options.numClasses, `numClasses (the data has labels up to ${maxLabel})`, Math.max(2, maxLabel + 1), 1000000);
  const binding = getBinding();
  const tensors = [
    binding.tensorFromArray(features.train, [dataset.train.count, features.dim], 'float32'),
    binding.tensorFromArray(dataset.train.labels, [dataset.train.count], 'int32'),
    binding.tensorFromArray(features.test, [dataset.test.count, features.dim], 'float32'),
    binding.tensorFromArray(dataset.test.labels, [dataset.test.count], 'int32'),
  ] as const;
  try {
    return await binding.trainLinearProbe(
      ...tensors,
      {
        numClasses: options.numClasses,
        epochs: options.epochs,
        batchSize: options.batchSize,
        lr: options.lr,
        weightDecay: options.weightDecay ?? 0,
        seed: options.seed ?? 0,
        standardize: options.standardize ?? true,
      },
      options.onEpoch,
    );
  } finally {
    binding.tensorsDispose([...tensors]);
  }
}

/** The per-epoch log: epoch, train_loss, train_top1, test_top1, test_top5 (fractions). */
export function probeCsv(epochs: readonly LinearProbeEpoch[]): string {
  return toCsv(
    ['epoch', 'train_loss', 'train_top1', 'test_top1', 'test_top5'],
    epochs.map((e) => [e.epoch, e.trainLoss, e.trainTop1, e.testTop1, e.testTop5]),
  );
}

/** Frees the tensors of a trained probe (weight, bias and the standardisation mean and scale). */
export function disposeProbe(result: Pick<LinearProbeResult, 'weight' | 'bias' | 'mean' | 'scale'>): void {
  getBinding().tensorsDispose([result.weight, result.bias, result.mean, result.scale]);
}
