// Labelled image data sets for linear probing, in the layouts users already have on disk:
// - cifar-python: CIFAR-100 `cifar-100-python/{train,test,meta}` (what torchvision downloads) and
//   CIFAR-10 `cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}`: pickles (see pickle.ts).
// - cifar-binary: CIFAR-100 `cifar-100-binary/{train,test}.bin` (1 coarse + 1 fine label byte + 3072
//   pixel bytes per record) and CIFAR-10 `cifar-10-batches-bin/*.bin` (1 label byte + 3072).
// - folder: `<root>/train/<class>/*.png` and `<root>/test/<class>/*` (one folder per class).
// Every missing or malformed file fails with a DoveError naming the file and what was expected.
import { promises as fs } from 'node:fs';
import { basename, join } from 'node:path';
import { DoveError } from '../base/errors';
import { decodeFsBytes, displayPath, fsPath, listImageFiles } from '../base/files';
import { preview } from '../base/json';
import { NdArray, PyDict, readPickle, type PyValue } from './pickle';

export type DatasetFormat = 'cifar-python' | 'cifar-binary' | 'folder';
export type CifarLabel = 'fine' | 'coarse';

/** One split. Either decoded pixels (CIFAR: 32×32 RGB, interleaved HWC) or image files (folder layout). */
export type SplitImages =
  | { kind: 'pixels'; data: Uint8Array; height: number; width: number }
  | { kind: 'files'; paths: string[] };

export interface DatasetSplit {
  images: SplitImages;
  labels: Int32Array;
  count: number;
}

export interface LabelledDataset {
  format: DatasetFormat;
  /** The folder the files were read from (after auto-detection of the standard sub-folder). */
  root: string;
  /** Files that make up the data set (for cache keys and messages). */
  files: string[];
  classNames: string[];
  train: DatasetSplit;
  test: DatasetSplit;
}

export interface DatasetOptions {
  format?: DatasetFormat | 'auto';
  /** CIFAR-100 label granularity (fine: 100 classes, coarse: 20). Default fine. */
  label?: CifarLabel;
}

const CIFAR_SIDE = 32;
const CIFAR_PIXELS = CIFAR_SIDE * CIFAR_SIDE * 3;

async function readFileOrFail(file: string, what: string): Promise<Buffer> {
  return fs.readFile(file).catch((error: NodeJS.ErrnoException) => {
    const code = error.code;
    if (code === 'ENOENT') throw new DoveError(`${file}: file not found (expected ${what})`, 'FILE_NOT_FOUND');
    if (code === 'EISDIR') throw new DoveError(`${file}: is a directory (expected ${what})`, 'INVALID_DATASET');
    throw new DoveError(`${file}: cannot read (${code ?? String(error)}); expected ${what}`, 'IO_ERROR');
  });
}

async function exists(path: string): Promise<boolean> {
  return fs.stat(fsPath(path)).then(
    () => true,
    () => false,
  );
}

/** Planar CHW (R plane, G plane, B plane) records -> interleaved HWC, as sharp and the models expect. */
function planarToInterleaved(src: Uint8Array, srcStride: number, srcOffset: number, count: number): Uint8Array {
  const out = new Uint8Array(count * CIFAR_PIXELS);
  const plane = CIFAR_SIDE * CIFAR_SIDE;
  for (let n = 0; n < count; n++) {
    const s = n * srcStride + srcOffset;
    const d = n * CIFAR_PIXELS;
    for (let p = 0; p < plane; p++) {
      out[d + 3 * p] = src[s + p]!;
      out[d + 3 * p + 1] = src[s + plane + p]!;
      out[d + 3 * p + 2] = src[s + 2 * plane + p]!;
    }
  }
  return out;
}

// ------------------------------------------------------------------------------------------------
// Python pickle version

function dictOf(value: PyValue, file: string, what: string): PyDict {
  if (!(value instanceof PyDict)) throw new DoveError(`${file}: expected ${what} (a pickled dict) but found another value`, 'INVALID_DATASET');
  return value;
}

function intList(dict: PyDict, key: string, file: string, max: number): Int32Array {
  const value = dict.entries.get(key);
  if (!Array.isArray(value)) {
    const keys = [...dict.entries.keys()].join(', ');
    throw new DoveError(`${file}: expected a list of labels under key '${key}' but ${value === undefined ? `there is no such key (keys: ${keys})` : 'found another type'}`, 'INVALID_DATASET');
  }
  const out = new Int32Array(value.length);
  value.forEach((v, i) => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v >= max) {
      throw new DoveError(`${file}: label ${i} under '${key}' is ${preview(v)}, expected an integer in [0, ${max})`, 'INVALID_DATASET');
    }
    out[i] = v;
  });
  return out;
}

function stringList(dict: PyDict, key: string, file: string): string[] {
  const value = dict.entries.get(key);
  if (!Array.isArray(value)) throw new DoveError(`${file}: expected a list of class names under key '${key}'`, 'INVALID_DATASET');
  return value.map((v, i) => {
    if (typeof v === 'string') return v;
    if (v instanceof Uint8Array) return Buffer.from(v).toString('utf8');
    throw new DoveError(`${file}: class name ${i} under '${key}' is not a string`, 'INVALID_DATASET');
  });
}

function pixelArray(dict: PyDict, file: string, count: number): Uint8Array {
  const value = dict.entries.get('data');
  if (!(value instanceof NdArray) || !value.built) {
    throw new DoveError(`${file}: expected a uint8 numpy array of shape (N, 3072) under key 'data' but ${value === undefined ? 'there is no such key' : 'found another value'}`, 'INVALID_DATASET');
  }
  const okDtype = value.dtype === 'u1' || value.dtype === '|u1' || value.dtype === 'uint8';
  if (!okDtype || value.shape.length !== 2 || value.shape[1] !== CIFAR_PIXELS || value.shape[0] !== count || value.fortranOrder) {
    throw new DoveError(
      `${file}: expected 'data' as a C-ordered uint8 array of shape (${count}, ${CIFAR_PIXELS}) but found dtype ${value.dtype} shape (${value.shape.join(', ')})${value.fortranOrder ? ' in Fortran order' : ''}`,
      'INVALID_DATASET',
    );
  }
  if (value.data.length !== count * CIFAR_PIXELS) {
    throw new DoveError(`${file}: 'data' holds ${value.data.length} bytes, expected ${count * CIFAR_PIXELS} for shape (${count}, ${CIFAR_PIXELS})`, 'INVALID_DATASET');
  }
  return planarToInterleaved(value.data, CIFAR_PIXELS, 0, count);
}

/** One CIFAR python batch (a pickled dict with 'data' and `labelKey`) -> interleaved pixels and labels. */
export function parsePythonBatch(bytes: Uint8Array, file: string, labelKey: string, numClasses: number): { data: Uint8Array; labels: Int32Array } {
  const dict = dictOf(readPickle(bytes, file), file, `a CIFAR python batch (dict with 'data' and '${labelKey}')`);
  const labels = intList(dict, labelKey, file, numClasses);
  return { data: pixelArray(dict, file, labels.length), labels };
}

/** Class names under `key` of a CIFAR meta pickle. */
export function parsePythonClassNames(bytes: Uint8Array, file: string, key: string): string[] {
  return stringList(dictOf(readPickle(bytes, file), file, `the CIFAR meta dict with '${key}'`), key, file);
}

async function readPythonBatches(files: string[], labelKey: string, numClasses: number): Promise<DatasetSplit> {
  const parts: { data: Uint8Array; labels: Int32Array }[] = [];
  for (const file of files) {
    const bytes = await readFileOrFail(file, `a CIFAR python batch (dict with 'data' and '${labelKey}')`);
    parts.push(parsePythonBatch(bytes, file, labelKey, numClasses));
  }
  return concatSplits(parts);
}

function concatSplits(parts: { data: Uint8Array; labels: Int32Array }[]): DatasetSplit {
  const count = parts.reduce((n, p) => n + p.labels.length, 0);
  const data = new Uint8Array(count * CIFAR_PIXELS);
  const labels = new Int32Array(count);
  let at = 0;
  for (const p of parts) {
    data.set(p.data, at * CIFAR_PIXELS);
    labels.set(p.labels, at);
    at += p.labels.length;
  }
  return { images: { kind: 'pixels', data, height: CIFAR_SIDE, width: CIFAR_SIDE }, labels, count };
}

async function readCifarPython(root: string, label: CifarLabel): Promise<LabelledDataset> {
  const cifar10 = await exists(join(root, 'batches.meta'));
  const meta = join(root, cifar10 ? 'batches.meta' : 'meta');
  const key = cifar10 ? 'label_names' : `${label}_label_names`;
  const classNames = parsePythonClassNames(await readFileOrFail(meta, `the CIFAR-${cifar10 ? 10 : 100} meta dict with '${key}'`), meta, key);
  const trainFiles = cifar10 ? [1, 2, 3, 4, 5].map((i) => join(root, `data_batch_${i}`)) : [join(root, 'train')];
  const testFiles = [join(root, cifar10 ? 'test_batch' : 'test')];
  const labelKey = cifar10 ? 'labels' : `${label}_labels`;
  const train = await readPythonBatches(trainFiles, labelKey, classNames.length);
  const test = await readPythonBatches(testFiles, labelKey, classNames.length);
  return { format: 'cifar-python', root, files: [meta, ...trainFiles, ...testFiles], classNames, train, test };
}

// ------------------------------------------------------------------------------------------------
// Binary version

async function readBinaryBatches(files: string[], labelBytes: 1 | 2, labelIndex: number, numClasses: number): Promise<DatasetSplit> {
  const record = labelBytes + CIFAR_PIXELS;
  const parts: { data: Uint8Array; labels: Int32Array }[] = [];
  for (const file of files) {
    const layout = labelBytes === 2 ? '1 coarse + 1 fine label byte + 3072 pixel bytes' : '1 label byte + 3072 pixel bytes';
    const buf = await readFileOrFail(file, `CIFAR binary records of ${record} bytes (${layout})`);
    if (buf.length === 0 || buf.length % record !== 0) {
      throw new DoveError(`${file}: ${buf.length} bytes is not a whole number of ${record}-byte CIFAR records (${layout})`, 'INVALID_DATASET');
    }
    const count = buf.length / record;
    const labels = new Int32Array(count);
    for (let n = 0; n < count; n++) {
      const v = buf[n * record + labelIndex]!;
      if (v >= numClasses) throw new DoveError(`${file}: record ${n} has label ${v}, expected one in [0, ${numClasses})`, 'INVALID_DATASET');
      labels[n] = v;
    }
    parts.push({ data: planarToInterleaved(buf, record, labelBytes, count), labels });
  }
  return concatSplits(parts);
}

async function readNames(file: string, fallbackCount: number): Promise<string[]> {
  if (!(await exists(file))) return Array.from({ length: fallbackCount }, (_, i) => `class_${i}`);
  const text = (await readFileOrFail(file, 'one class name per line')).toString('utf8');
  return text.split(/\r?\n/).map((s) => s.trim()).filter((s) => s.length > 0);
}

async function readCifarBinary(root: string, label: CifarLabel): Promise<LabelledDataset> {
  const cifar10 = await exists(join(root, 'data_batch_1.bin'));
  const names = await readNames(join(root, cifar10 ? 'batches.meta.txt' : `${label}_label_names.txt`), cifar10 ? 10 : label === 'fine' ? 100 : 20);
  const trainFiles = cifar10 ? [1, 2, 3, 4, 5].map((i) => join(root, `data_batch_${i}.bin`)) : [join(root, 'train.bin')];
  const testFiles = [join(root, cifar10 ? 'test_batch.bin' : 'test.bin')];
  // CIFAR-10 records hold 1 label byte; CIFAR-100 records the coarse, then the fine label.
  const labelBytes = cifar10 ? 1 : 2;
  const index = cifar10 || label === 'coarse' ? 0 : 1;
  const train = await readBinaryBatches(trainFiles, labelBytes, index, names.length);
  const test = await readBinaryBatches(testFiles, labelBytes, index, names.length);
  return { format: 'cifar-binary', root, files: [...trainFiles, ...testFiles], classNames: names, train, test };
}

// ------------------------------------------------------------------------------------------------
// Image folders

async function listDirs(dir: string): Promise<string[]> {
  const entries = await fs.readdir(fsPath(dir), { withFileTypes: true, encoding: 'buffer' }).catch((error: NodeJS.ErrnoException) => {
    throw new DoveError(`${displayPath(dir)}: cannot list (${error.code ?? String(error)}); expected a folder with one sub-folder per class`, error.code === 'ENOENT' ? 'FILE_NOT_FOUND' : 'IO_ERROR');
  });
  // Class names keep their bytes (lib/base/files.ts), like the image names inside them.
  return entries.filter((e) => e.isDirectory()).map((e) => decodeFsBytes(e.name)).filter((n) => !n.startsWith('.')).sort();
}

async function readFolderSplit(dir: string, classNames: string[]): Promise<DatasetSplit> {
  const paths: string[] = [];
  const labels: number[] = [];
  for (const [index, name] of classNames.entries()) {
    const classDir = join(dir, name);
    if (!(await exists(classDir))) continue; // a class may be absent from one split
    for (const file of await listImageFiles(classDir)) {
      paths.push(file);
      labels.push(index);
    }
  }
  if (paths.length === 0) throw new DoveError(`${dir}: no images found (expected ${dir}/<class>/*.png|jpg|...)`, 'INVALID_DATASET');
  return { images: { kind: 'files', paths }, labels: Int32Array.from(labels), count: paths.length };
}

async function readFolder(root: string): Promise<LabelledDataset> {
  const trainDir = join(root, 'train');
  const testDir = join(root, 'test');
  for (const dir of [trainDir, testDir]) {
    if (!(await exists(dir))) {
      throw new DoveError(`${dir}: not found (the folder layout needs ${root}/train/<class>/* and ${root}/test/<class>/*)`, 'FILE_NOT_FOUND');
    }
  }
  const classNames = [...new Set([...(await listDirs(trainDir)), ...(await listDirs(testDir))])].sort();
  if (classNames.length < 2) throw new DoveError(`${trainDir}: expected at least 2 class folders but found ${classNames.length}`, 'INVALID_DATASET');
  const train = await readFolderSplit(trainDir, classNames);
  const test = await readFolderSplit(testDir, classNames);
  return { format: 'folder', root, files: [...(train.images as { paths: string[] }).paths, ...(test.images as { paths: string[] }).paths], classNames, train, test };
}

// ------------------------------------------------------------------------------------------------
// Detection

const PYTHON_DIRS = ['cifar-100-python', 'cifar-10-batches-py'];
const BINARY_DIRS = ['cifar-100-binary', 'cifar-10-batches-bin'];

async function findLayout(root: string): Promise<{ format: DatasetFormat; dir: string } | undefined> {
  const candidates = async (dir: string): Promise<DatasetFormat | undefined> => {
    if ((await exists(join(dir, 'meta'))) || (await exists(join(dir, 'batches.meta')))) return 'cifar-python';
    if ((await exists(join(dir, 'train.bin'))) || (await exists(join(dir, 'data_batch_1.bin')))) return 'cifar-binary';
    if ((await exists(join(dir, 'train'))) && (await exists(join(dir, 'test')))) {
      const stat = await fs.stat(join(dir, 'train'));
      return stat.isDirectory() ? 'folder' : 'cifar-python';
    }
    return undefined;
  };
  for (const sub of [...PYTHON_DIRS, ...BINARY_DIRS]) {
    const dir = join(root, sub);
    if (await exists(dir)) {
      const format = await candidates(dir);
      if (format !== undefined) return { format, dir };
    }
  }
  const format = await candidates(root);
  return format === undefined ? undefined : { format, dir: root };
}

async function dirFor(root: string, format: DatasetFormat): Promise<string> {
  const subs = format === 'cifar-python' ? PYTHON_DIRS : format === 'cifar-binary' ? BINARY_DIRS : [];
  for (const sub of subs) if (await exists(join(root, sub))) return join(root, sub);
  return root;
}

const READERS: { readonly [F in DatasetFormat]: (dir: string, label: CifarLabel) => Promise<LabelledDataset> } = {
  'cifar-python': readCifarPython,
  'cifar-binary': readCifarBinary,
  folder: readFolder,
};

/** Reads a labelled data set; `format: 'auto'` (default) detects the layout under `root`. */
export async function readDataset(root: string, options: DatasetOptions = {}): Promise<LabelledDataset> {
  const label = options.label ?? 'fine';
  if (label !== 'fine' && label !== 'coarse') throw new DoveError(`Expected fine or coarse for label but received ${String(label)}`, 'INVALID_ARGUMENT');
  if (!(await exists(root))) throw new DoveError(`${root}: data root not found`, 'FILE_NOT_FOUND');
  const requested = options.format ?? 'auto';
  let format: DatasetFormat;
  let dir: string;
  if (requested === 'auto') {
    const found = await findLayout(root);
    if (found === undefined) {
      throw new DoveError(
        `${root}: no data set layout recognised; expected cifar-100-python/{train,test,meta}, cifar-100-binary/{train,test}.bin, ` +
          `cifar-10-batches-py/, cifar-10-batches-bin/, or train/<class>/ and test/<class>/ image folders`,
        'INVALID_DATASET',
      );
    }
    ({ format, dir } = found);
  } else if (Object.hasOwn(READERS, requested)) {
    format = requested;
    dir = await dirFor(root, format);
  } else {
    throw new DoveError(`Expected one of auto, cifar-python, cifar-binary, folder for format but received ${String(requested)}`, 'INVALID_ARGUMENT');
  }
  return READERS[format](dir, label);
}

/** A short human description, e.g. "cifar-python (cifar-100-python): 50000 train / 10000 test, 100 classes". */
export function describeDataset(d: LabelledDataset): string {
  return `${d.format} (${basename(d.root)}): ${d.train.count} train / ${d.test.count} test, ${d.classNames.length} classes`;
}
