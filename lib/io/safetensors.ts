// Reader and writer for the safetensors format (https://github.com/huggingface/safetensors):
// 8-byte little-endian header length, a JSON header {name: {dtype, shape, data_offsets}, __metadata__},
// then the raw little-endian tensor bytes. Files written here load with Python's `safetensors`.
import { DoveError } from '../base/errors';
import { displayPath, readFileChecked, writeFileAtomic } from '../base/files';
import { isJsonObject, parseJson, preview } from '../base/json';

export type SafetensorsDType = 'F32' | 'F64' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

export type SafetensorsArray = Float32Array | Float64Array | Uint16Array | BigInt64Array | Int32Array | Int16Array | Int8Array | Uint8Array;

export interface SafetensorsTensor {
  dtype: SafetensorsDType;
  shape: number[];
  /** F16/BF16 come as raw 16-bit words; BOOL as bytes. */
  data: SafetensorsArray;
}

export interface SafetensorsFile {
  tensors: Map<string, SafetensorsTensor>;
  metadata: { [key: string]: string };
}

type ArrayType = { new (buffer: ArrayBuffer, offset: number, count: number): SafetensorsArray; readonly BYTES_PER_ELEMENT: number };

/** The array of each dtype; the first match for an array's type is the dtype it is written as. */
const ARRAYS: Record<SafetensorsDType, ArrayType> = {
  F32: Float32Array, F64: Float64Array, F16: Uint16Array, BF16: Uint16Array, I64: BigInt64Array,
  I32: Int32Array, I16: Int16Array, I8: Int8Array, U8: Uint8Array, BOOL: Uint8Array,
};

function dtypeOf(data: SafetensorsArray): SafetensorsDType {
  return (Object.keys(ARRAYS) as SafetensorsDType[]).find((dtype) => data instanceof ARRAYS[dtype]) ?? 'U8';
}

const HOST_IS_LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Python's safetensors refuses headers over 100 MB (HeaderTooLarge); so does this reader. */
export const MAX_HEADER_BYTES = 100_000_000;

/** A tensor name in a message: as is when plain, JSON-quoted otherwise. */
function label(key: string): string {
  return /^[\w.\-/:]+$/.test(key) ? key : JSON.stringify(key);
}

function isDType(value: unknown): value is SafetensorsDType {
  return typeof value === 'string' && Object.hasOwn(ARRAYS, value);
}

function isIndex(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 && !Object.is(value, -0);
}

/** Product of `shape`, or Infinity once it passes `limit` (no float overflow, no 2^53 rounding). */
function elementCount(shape: readonly number[], limit: number): number {
  if (shape.includes(0)) return 0;
  let count = 1;
  for (const d of shape) {
    count *= d;
    if (count > limit) return Infinity;
  }
  return count;
}

/**
 * Parses a safetensors file held in memory, as strictly as Python's reader: the header is a UTF-8
 * JSON object of at most 100 MB; every entry has a known dtype, a shape of non-negative integers and
 * integer data_offsets whose span is exactly shape × dtype bytes; the spans tile the data section
 * from 0 to its end, in some order, without gaps or overlaps. Anything else is an INVALID_ARGUMENT
 * naming the tensor and the field. Tensors are copied into aligned arrays.
 */
export function parseSafetensors(bytes: Uint8Array, name = '<buffer>'): SafetensorsFile {
  if (!HOST_IS_LE) throw new DoveError('safetensors: big-endian hosts are not supported', 'INTERNAL');
  const bad: (why: string) => never = (why) => {
    throw new DoveError(`${name}: not a valid safetensors file (${why})`, 'INVALID_ARGUMENT');
  };
  if (!(bytes instanceof Uint8Array)) {
    throw new DoveError(`Expected a Uint8Array or Buffer of safetensors bytes but received ${preview(bytes)}`, 'INVALID_ARGUMENT');
  }
  if (bytes.length < 8) bad(`${bytes.length} bytes, shorter than the 8-byte header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = view.getBigUint64(0, true);
  if (headerLen > BigInt(bytes.length - 8)) bad(`header length ${headerLen} exceeds the file`);
  if (headerLen > BigInt(MAX_HEADER_BYTES)) bad(`header length ${headerLen} is over the ${MAX_HEADER_BYTES}-byte limit`);
  const dataStart = 8 + Number(headerLen);
  let headerText = '';
  try {
    // A copy: TextDecoder refuses views of a SharedArrayBuffer.
    headerText = new TextDecoder('utf-8', { fatal: true }).decode(bytes.slice(8, dataStart));
  } catch {
    bad('header is not UTF-8');
  }
  if (!headerText.startsWith('{')) bad(`header does not start with '{'`);
  const header = parseJson(headerText, 'header', bad);
  if (!isJsonObject(header)) return bad('header is not a JSON object');
  const dataLen = bytes.length - dataStart;
  const tensors = new Map<string, SafetensorsTensor>();
  const spans: { key: string; begin: number; end: number }[] = [];
  let metadata: { [key: string]: string } = {};
  for (const [key, value] of Object.entries(header)) {
    const tensor = `tensor ${label(key)}`;
    if (key === '__metadata__') {
      if (value === null) continue;
      if (!isJsonObject(value)) bad(`__metadata__ is ${preview(value)}, expected an object of strings`);
      for (const [k, v] of Object.entries(value)) if (typeof v !== 'string') bad(`__metadata__ ${JSON.stringify(k)} is ${preview(v)}, expected a string`);
      metadata = { ...(value as { [key: string]: string }) };
      continue;
    }
    if (!isJsonObject(value)) bad(`${tensor} is ${preview(value)}, expected {dtype, shape, data_offsets}`);
    const entry = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (!isDType(entry.dtype)) bad(`${tensor} has dtype ${preview(entry.dtype)}, expected one of ${Object.keys(ARRAYS).join(', ')}`);
    const dtype = entry.dtype as SafetensorsDType;
    if (!Array.isArray(entry.shape) || !entry.shape.every(isIndex)) bad(`${tensor} has shape ${preview(entry.shape)}, expected a list of non-negative integers`);
    const shape = entry.shape as number[];
    const offsets = entry.data_offsets;
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isIndex)) {
      bad(`${tensor} has data_offsets ${preview(offsets)}, expected [begin, end] of non-negative integers`);
    }
    const [begin, end] = offsets as [number, number];
    if (begin > end || end > dataLen) bad(`${tensor} has data_offsets [${begin}, ${end}] outside the ${dataLen}-byte data section`);
    const count = elementCount(shape, dataLen);
    if (end - begin !== count * ARRAYS[dtype].BYTES_PER_ELEMENT) {
      bad(`${tensor} offsets [${begin}, ${end}] do not match shape [${shape.join(', ')}] ${dtype}`);
    }
    spans.push({ key, begin, end });
    // Copy so the array is aligned for its element size whatever the header length was.
    const copy = new ArrayBuffer(end - begin);
    new Uint8Array(copy).set(bytes.subarray(dataStart + begin, dataStart + end));
    tensors.set(key, { dtype, shape: [...shape], data: new ARRAYS[dtype](copy, 0, count) });
  }
  spans.sort((x, y) => x.begin - y.begin || x.end - y.end);
  let covered = 0;
  for (const span of spans) {
    if (span.begin < covered) bad(`tensor ${label(span.key)} data_offsets [${span.begin}, ${span.end}] overlap another tensor's bytes`);
    if (span.begin > covered) bad(`no tensor covers data bytes [${covered}, ${span.begin})`);
    covered = span.end;
  }
  if (covered !== dataLen) bad(`no tensor covers data bytes [${covered}, ${dataLen})`);
  return { tensors, metadata };
}

export async function readSafetensors(path: string): Promise<SafetensorsFile> {
  return parseSafetensors(await readFileChecked(path), displayPath(path));
}

export interface TensorToWrite {
  data: SafetensorsArray;
  shape: number[];
  /** Overrides the dtype inferred from the array (e.g. BF16 for a Uint16Array, BOOL for a Uint8Array). */
  dtype?: SafetensorsDType;
}

/** Serialises tensors (sorted by name, as Python does) into safetensors bytes. */
export function serializeSafetensors(tensors: { [name: string]: TensorToWrite }, metadata: { [key: string]: string } = {}): Buffer {
  if (!isJsonObject(tensors)) throw new DoveError(`safetensors: expected an object of tensors but received ${preview(tensors)}`, 'INVALID_ARGUMENT');
  if (!isJsonObject(metadata)) throw new DoveError(`safetensors: expected an object of strings for metadata but received ${preview(metadata)}`, 'INVALID_ARGUMENT');
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v !== 'string') throw new DoveError(`safetensors: metadata ${JSON.stringify(k)} is ${preview(v)}, expected a string`, 'INVALID_ARGUMENT');
  }
  const names = Object.keys(tensors).sort();
  const header: { [key: string]: unknown } = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const name of names) {
    if (name === '__metadata__') throw new DoveError('safetensors: a tensor cannot be named __metadata__', 'INVALID_ARGUMENT');
    const t = tensors[name];
    if (!isJsonObject(t) || !ArrayBuffer.isView(t.data) || t.data instanceof DataView || !Array.isArray(t.shape)) {
      throw new DoveError(`safetensors: tensor ${label(name)} is ${preview(t)}, expected { data: typed array, shape: number[], dtype? }`, 'INVALID_ARGUMENT');
    }
    if (t.dtype !== undefined && !isDType(t.dtype)) {
      throw new DoveError(`safetensors: tensor ${label(name)} has dtype ${preview(t.dtype)}, expected one of ${Object.keys(ARRAYS).join(', ')}`, 'INVALID_ARGUMENT');
    }
    const dtype = t.dtype ?? dtypeOf(t.data);
    const count = t.shape.every(isIndex) ? elementCount(t.shape, t.data.length) : Number.NaN;
    if (count !== t.data.length || ARRAYS[dtype].BYTES_PER_ELEMENT !== t.data.BYTES_PER_ELEMENT) {
      throw new DoveError(`safetensors: tensor ${label(name)} has ${t.data.length} ${dtype} elements, which does not match shape [${preview(t.shape).slice(1, -1)}]`, 'SHAPE_MISMATCH');
    }
    header[name] = { dtype, shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  // Pad with spaces so the data section starts 8-byte aligned (what the Python writer does).
  const pad = (8 - ((Buffer.byteLength(json) + 8) % 8)) % 8;
  json += ' '.repeat(pad);
  const headerBytes = Buffer.from(json, 'utf8');
  const out = Buffer.allocUnsafe(8 + headerBytes.length + offset);
  out.writeBigUInt64LE(BigInt(headerBytes.length), 0);
  headerBytes.copy(out, 8);
  let at = 8 + headerBytes.length;
  for (const name of names) {
    const d = tensors[name]!.data;
    out.set(new Uint8Array(d.buffer, d.byteOffset, d.byteLength), at);
    at += d.byteLength;
  }
  return out;
}

/** Writes atomically (temp file + rename) so readers never see a half-written file. */
export async function writeSafetensors(path: string, tensors: { [name: string]: TensorToWrite }, metadata: { [key: string]: string } = {}): Promise<void> {
  await writeFileAtomic(path, serializeSafetensors(tensors, metadata));
}
