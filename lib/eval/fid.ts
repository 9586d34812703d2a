// Fréchet Inception Distance: 2048-d pool features of the FID Inception network (a TorchScript export
// made by `python -m dove.inception` from the standard pytorch-fid weights), Gaussian statistics and
// the Fréchet distance in float64 in libtorch (native/eval_fid.cpp). Images are fed at their own size
// as uint8; the network resizes them to 299 bilinearly, as pytorch-fid does.
import { existsSync } from 'node:fs';
import type { NativeModule, NativeTensor } from '../../binding';
import { DoveError, valueOr } from '../base/errors';
import { binding as getBinding } from '../core/native';
import { listImageFiles } from '../base/files';
import { parseJson, preview } from '../base/json';
import { lengthDirs, readRgb, readRgbAt, type LengthDir, type RgbPixels } from './folders';

export const FID_FORMAT = 'dove-encoder/fid-inception';
export const FID_WEIGHTS_URL = 'https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth';

/** How to get a feature extractor; printed whenever one is missing. */
export const FID_SETUP_HELP = `FID needs the FID Inception network (the one pytorch-fid and TensorFlow's FID use). Get it once:
  1. download the weights file (about 92 MB):
       ${FID_WEIGHTS_URL}
  2. convert it to a TorchScript feature extractor with the project's exporter:
       python -m dove.inception --weights pt_inception-2015-12-05-6726825d.pth -o inception.pt
     (run from python/ with the torch virtualenv that scripts/setup creates)
  3. pass it with --features inception.pt (or set DOVE_FID_FEATURES=/path/to/inception.pt)`;

export interface FidStatistics {
  count: number;
  /** (D) float64. */
  mean: NativeTensor;
  /** (D,D) float64. */
  covariance: NativeTensor;
}

export interface FeatureOptions {
  /** Images per forward (default 16). */
  batchSize?: number;
  onProgress?: (done: number, total: number) => void;
}

export class FidFeatureExtractor {
  private constructor(
    private readonly module: NativeModule,
    readonly path: string,
    readonly featureDim: number,
  ) {}

  /** Loads an export of `python -m dove.inception`; a missing file explains where to get one. */
  static async load(path: string, options: { device?: string; trustModel?: boolean } = {}): Promise<FidFeatureExtractor> {
    if (!existsSync(path)) throw new DoveError(`${path}: FID feature extractor not found.\n${FID_SETUP_HELP}`, 'FILE_NOT_FOUND');
    const module = await getBinding().loadModule(path, options.device ?? 'cpu', ['fid.json'], false, options.trustModel);
    const text = module.extraFiles['fid.json'];
    const meta = (valueOr(() => parseJson(text ?? '{}', 'fid.json', 'NOT_DOVE_EXPORT'), null) ?? {}) as { format?: unknown; featureDim?: unknown };
    if (meta.format !== FID_FORMAT || !module.methodNames().includes('features')) {
      module.dispose();
      throw new DoveError(`${path}: not an FID Inception export (no fid.json with format ${FID_FORMAT} or no features method).\n${FID_SETUP_HELP}`, 'NOT_DOVE_EXPORT');
    }
    const dim = meta.featureDim ?? 2048;
    if (typeof dim !== 'number' || !Number.isInteger(dim) || dim < 1 || dim > 65536) {
      module.dispose();
      throw new DoveError(`${path}: fid.json featureDim must be an integer between 1 and 65536 but is ${preview(dim)}`, 'NOT_DOVE_EXPORT');
    }
    return new FidFeatureExtractor(module, path, dim);
  }

  /** Features (N×D, row-major) of decoded images; same-sized neighbours share a forward. */
  async featuresOf(images: readonly RgbPixels[], options: FeatureOptions = {}): Promise<Float32Array> {
    const batchSize = options.batchSize ?? 16;
    const out = new Float32Array(images.length * this.featureDim);
    const binding = getBinding();
    let start = 0;
    while (start < images.length) {
      const first = images[start]!;
      let end = start + 1;
      while (end < images.length && end - start < batchSize && images[end]!.width === first.width && images[end]!.height === first.height) end++;
      const frame = first.width * first.height * 3;
      const pixels = new Uint8Array((end - start) * frame);
      for (let i = start; i < end; i++) pixels.set(images[i]!.data, (i - start) * frame);
      const input = binding.tensorFromArray(pixels, [end - start, first.height, first.width, 3], 'uint8');
      let result: NativeTensor | undefined;
      try {
        result = (await this.module.run('features', [input])) as NativeTensor;
        const cpu = binding.tensorContiguous(binding.tensorTo(result, 'cpu', 'float32'));
        const data = binding.tensorData(cpu) as Float32Array;
        if (data.length !== (end - start) * this.featureDim) {
          throw new DoveError(`${this.path}: features returned ${data.length} values for ${end - start} images, expected ${this.featureDim} each`, 'SHAPE_MISMATCH');
        }
        out.set(data, start * this.featureDim);
        if (cpu !== result) binding.tensorDispose(cpu);
      } finally {
        binding.tensorDispose(input);
        if (result !== undefined) binding.tensorDispose(result);
      }
      start = end;
      options.onProgress?.(start, images.length);
    }
    return out;
  }

  /** Features of image files, decoded at their own size (as pytorch-fid reads them). */
  async featuresOfFiles(files: readonly string[], options: FeatureOptions & { size?: { width: number; height: number } } = {}): Promise<Float32Array> {
    const batchSize = options.batchSize ?? 16;
    const out = new Float32Array(files.length * this.featureDim);
    // Decode one batch at a time so memory stays bounded for large folders.
    for (let start = 0; start < files.length; start += batchSize) {
      const chunk = files.slice(start, start + batchSize);
      const images = await Promise.all(chunk.map((f) => (options.size ? readRgbAt(f, options.size.width, options.size.height) : readRgb(f))));
      out.set(await this.featuresOf(images, { batchSize }), start * this.featureDim);
      options.onProgress?.(Math.min(files.length, start + batchSize), files.length);
    }
    return out;
  }

  dispose(): void {
    this.module.dispose();
  }
}

/** Mean and covariance (float64, N-1 normalised) of N feature rows of width `dim`. */
export async function fidStatistics(features: Float32Array | Float64Array, dim: number): Promise<FidStatistics> {
  if (!Number.isInteger(dim) || dim < 1 || features.length % dim !== 0) {
    throw new DoveError(`Expected features of length N×${dim} but received ${features.length} values`, 'SHAPE_MISMATCH');
  }
  const count = features.length / dim;
  if (count < 2) throw new DoveError(`FID needs at least 2 images per set but received ${count}`, 'INVALID_ARGUMENT');
  const binding = getBinding();
  const tensor = binding.tensorFromArray(features, [count, dim], features instanceof Float64Array ? 'float64' : 'float32');
  try {
    const { mean, covariance } = await binding.gaussianStatistics(tensor);
    return { count, mean, covariance };
  } finally {
    binding.tensorDispose(tensor);
  }
}

/** Fréchet distance between two Gaussians (float64 in libtorch). */
export async function frechetDistance(a: Pick<FidStatistics, 'mean' | 'covariance'>, b: Pick<FidStatistics, 'mean' | 'covariance'>): Promise<number> {
  return getBinding().frechetDistance(a.mean, a.covariance, b.mean, b.covariance);
}

export function disposeStatistics(s: FidStatistics): void {
  getBinding().tensorsDispose([s.mean, s.covariance]);
}

/**
 * FID between two feature sets (N×dim and M×dim), float64 in libtorch. Equal to the Fréchet distance
 * of their statistics; for sets no larger than `dim` the native side uses the exact low-rank form.
 */
export async function fidFromFeatures(a: Float32Array | Float64Array, b: Float32Array | Float64Array, dim: number): Promise<number> {
  for (const [name, f] of [['first', a], ['second', b]] as const) {
    if (!Number.isInteger(dim) || dim < 1 || f.length % dim !== 0) {
      throw new DoveError(`Expected the ${name} feature set as N×${dim} values but received ${f.length}`, 'SHAPE_MISMATCH');
    }
    if (f.length / dim < 2) throw new DoveError(`FID needs at least 2 images per set but the ${name} has ${f.length / dim}`, 'INVALID_ARGUMENT');
  }
  const binding = getBinding();
  const ta = binding.tensorFromArray(a, [a.length / dim, dim], a instanceof Float64Array ? 'float64' : 'float32');
  const tb = binding.tensorFromArray(b, [b.length / dim, dim], b instanceof Float64Array ? 'float64' : 'float32');
  try {
    return await binding.frechetDistanceFromFeatures(ta, tb);
  } finally {
    binding.tensorsDispose([ta, tb]);
  }
}

export interface FolderFid {
  fid: number;
  realCount: number;
  fakeCount: number;
}

/** The images of a folder, at least the 2 a covariance needs. */
async function fidImages(dir: string): Promise<string[]> {
  const files = await listImageFiles(dir);
  if (files.length < 2) throw new DoveError(`${dir}: FID needs at least 2 images but found ${files.length}`, 'INVALID_ARGUMENT');
  return files;
}

/** FID between two folders of images, each image at its own size (pytorch-fid's behaviour). */
export async function folderFid(extractor: FidFeatureExtractor, realDir: string, fakeDir: string, options: FeatureOptions = {}): Promise<FolderFid> {
  const reals = await fidImages(realDir);
  const fakes = await fidImages(fakeDir);
  const fr = await extractor.featuresOfFiles(reals, options);
  const ff = await extractor.featuresOfFiles(fakes, options);
  return { fid: await fidFromFeatures(fr, ff, extractor.featureDim), realCount: reals.length, fakeCount: fakes.length };
}

export interface LengthFid extends LengthDir {
  fid: number;
  count: number;
}

/**
 * FID of every ROOT/<len>/ and ROOT/auto/ folder of `dove reconstruct-batch` against the real images,
 * which are brought to the reconstructions' size (the model's, cover policy); their features are
 * extracted once per size and reused.
 */
export async function perLengthFid(
  extractor: FidFeatureExtractor,
  realDir: string,
  root: string,
  options: FeatureOptions & { onLength?: (r: LengthFid) => void } = {},
): Promise<LengthFid[]> {
  const reals = await fidImages(realDir);
  const realFeatures = new Map<string, Float32Array>();
  const out: LengthFid[] = [];
  for (const length of await lengthDirs(root)) {
    const fakes = await fidImages(length.dir);
    const first = await readRgb(fakes[0]!);
    const key = `${first.width}x${first.height}`;
    let real = realFeatures.get(key);
    if (real === undefined) {
      real = await extractor.featuresOfFiles(reals, { ...options, size: { width: first.width, height: first.height } });
      realFeatures.set(key, real);
    }
    const fake = await extractor.featuresOfFiles(fakes, options);
    const r = { ...length, fid: await fidFromFeatures(real, fake, extractor.featureDim), count: fakes.length };
    out.push(r);
    options.onLength?.(r);
  }
  return out;
}
