// Reader and writer for the safetensors format (https://github.com/huggingface/safetensors):
// 8-byte little-endian header length, a JSON header {name: {dtype, shape, data_offsets}, __metadata__},
// then the raw little-endian tensor bytes. Files written here load with Python's `safetensors`.
import { promises as fs } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { DoveError } from './errors';

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

const BYTES: Record<SafetensorsDType, number> = { F32: 4, F64: 8, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };

function arrayFor(dtype: SafetensorsDType, buffer: ArrayBuffer, offset: number, count: number): SafetensorsArray {
  switch (dtype) {
    case 'F32':
      return new Float32Array(buffer, offset, count);
    case 'F64':
      return new Float64Array(buffer, offset, count);
    case 'F16':
    case 'BF16':
      return new Uint16Array(buffer, offset, count);
    case 'I64':
      return new BigInt64Array(buffer, offset, count);
    case 'I32':
      return new Int32Array(buffer, offset, count);
    case 'I16':
      return new Int16Array(buffer, offset, count);
    case 'I8':
      return new Int8Array(buffer, offset, count);
    case 'U8':
    case 'BOOL':
      return new Uint8Array(buffer, offset, count);
  }
}

function dtypeOf(data: SafetensorsArray): SafetensorsDType {
  if (data instanceof Float32Array) return 'F32';
  if (data instanceof Float64Array) return 'F64';
  if (data instanceof BigInt64Array) return 'I64';
  if (data instanceof Int32Array) return 'I32';
  if (data instanceof Int16Array) return 'I16';
  if (data instanceof Int8Array) return 'I8';
  if (data instanceof Uint16Array) return 'F16';
  return 'U8';
}

const HOST_IS_LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Parses a safetensors file held in memory. Tensors are copied into aligned arrays. */
export function parseSafetensors(bytes: Uint8Array, name = '<buffer>'): SafetensorsFile {
  if (!HOST_IS_LE) throw new DoveError('safetensors: big-endian hosts are not supported', 'INTERNAL');
  const bad = (why: string): never => {
    throw new DoveError(`${name}: not a valid safetensors file (${why})`, 'INVALID_ARGUMENT');
  };
  if (bytes.length < 8) bad(`${bytes.length} bytes, shorter than the 8-byte header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = view.getBigUint64(0, true);
  if (headerLen > BigInt(bytes.length - 8)) bad(`header length ${headerLen} exceeds the file`);
  const headerText = Buffer.from(bytes.buffer, bytes.byteOffset + 8, Number(headerLen)).toString('utf8');
  let header: { [key: string]: unknown };
  try {
    header = JSON.parse(headerText) as { [key: string]: unknown };
  } catch {
    return bad('header is not JSON');
  }
  const dataStart = 8 + Number(headerLen);
  const dataLen = bytes.length - dataStart;
  const tensors = new Map<string, SafetensorsTensor>();
  let metadata: { [key: string]: string } = {};
  for (const [key, value] of Object.entries(header)) {
    if (key === '__metadata__') {
      metadata = (value ?? {}) as { [key: string]: string };
      continue;
    }
    const entry = value as { dtype?: string; shape?: number[]; data_offsets?: [number, number] };
    const dtype = entry.dtype as SafetensorsDType;
    if (!(dtype in BYTES)) bad(`tensor ${key} has unsupported dtype ${String(entry.dtype)}`);
    const shape = entry.shape ?? [];
    const [begin, end] = entry.data_offsets ?? [-1, -1];
    const count = shape.reduce((a, b) => a * b, 1);
    if (!(begin >= 0 && end <= dataLen && end - begin === count * BYTES[dtype])) {
      bad(`tensor ${key} offsets [${begin}, ${end}] do not match shape [${shape.join(', ')}] ${dtype}`);
    }
    // Copy so the array is aligned for its element size whatever the header length was.
    const copy = new ArrayBuffer(end - begin);
    new Uint8Array(copy).set(bytes.subarray(dataStart + begin, dataStart + end));
    tensors.set(key, { dtype, shape: [...shape], data: arrayFor(dtype, copy, 0, count) });
  }
  return { tensors, metadata };
}

export async function readSafetensors(path: string): Promise<SafetensorsFile> {
  let bytes: Buffer;
  try {
    bytes = await fs.readFile(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new DoveError(`${path}: cannot read (${code ?? String(error)})`, code === 'ENOENT' ? 'FILE_NOT_FOUND' : 'IO_ERROR');
  }
  return parseSafetensors(bytes, path);
}

export interface TensorToWrite {
  data: SafetensorsArray;
  shape: number[];
  /** Overrides the dtype inferred from the array (e.g. BF16 for a Uint16Array, BOOL for a Uint8Array). */
  dtype?: SafetensorsDType;
}

/** Serialises tensors (sorted by name, as Python does) into safetensors bytes. */
export function serializeSafetensors(tensors: { [name: string]: TensorToWrite }, metadata: { [key: string]: string } = {}): Buffer {
  const names = Object.keys(tensors).sort();
  const header: { [key: string]: unknown } = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const name of names) {
    const t = tensors[name]!;
    const dtype = t.dtype ?? dtypeOf(t.data);
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (t.shape.some((d) => !Number.isInteger(d) || d < 0) || count !== t.data.length || BYTES[dtype] !== t.data.BYTES_PER_ELEMENT) {
      throw new DoveError(`safetensors: tensor ${name} has ${t.data.length} ${dtype} elements, which does not match shape [${t.shape.join(', ')}]`, 'SHAPE_MISMATCH');
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
  const bytes = serializeSafetensors(tensors, metadata);
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  try {
    await fs.writeFile(tmp, bytes);
    await fs.rename(tmp, path);
  } catch (error) {
    await fs.rm(tmp, { force: true });
    throw new DoveError(`${path}: cannot write (${(error as NodeJS.ErrnoException).code ?? String(error)})`, 'IO_ERROR');
  }
}
