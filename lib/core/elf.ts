// The dynamic-linking facts of an ELF shared library (DT_NEEDED, DT_SONAME, DT_RPATH/DT_RUNPATH),
// read from its program headers without loading it. The loader uses them to load libtorch's
// libraries in dependency order and to find the real CUDA runtime a libtorch_cuda.so was built with.
// Only the headers and the dynamic string table are read, never the whole file (libtorch_cuda.so
// is ~450 MB).
import { closeSync, openSync, readSync } from 'node:fs';
import { dirname } from 'node:path';

export interface ElfDynamic {
  needed: string[];
  soname: string | null;
  /** DT_RUNPATH, else DT_RPATH, split on ':' with $ORIGIN expanded. */
  searchPath: string[];
}

const PT_LOAD = 1;
const PT_DYNAMIC = 2;
const DT_NULL = 0;
const DT_NEEDED = 1;
const DT_STRTAB = 5;
const DT_STRSZ = 10;
const DT_SONAME = 14;
const DT_RPATH = 15;
const DT_RUNPATH = 29;
// Bounds for sizes read from the file: a program header table or dynamic section larger than this
// is not a shared library we can use.
const MAX_TABLE_BYTES = 1 << 20;
const MAX_STRTAB_BYTES = 64 << 20;

function readAt(fd: number, offset: number, length: number): Buffer {
  const out = Buffer.alloc(length);
  const got = readSync(fd, out, 0, length, offset);
  if (got !== length) throw new Error(`short read: ${got} of ${length} bytes at offset ${offset}`);
  return out;
}

function bounded(value: bigint, max: number, what: string): number {
  if (value < 0n || value > BigInt(max)) throw new Error(`${what} ${value} is out of range`);
  return Number(value);
}

/** Reads a 64-bit little-endian ELF file's dynamic section. Throws on anything else. */
export function readElfDynamic(path: string): ElfDynamic {
  const fd = openSync(path, 'r');
  try {
    const header = readAt(fd, 0, 64);
    if (header.readUInt32BE(0) !== 0x7f454c46) throw new Error('not an ELF file');
    if (header[4] !== 2 || header[5] !== 1) throw new Error('not a 64-bit little-endian ELF file');
    const phoff = bounded(header.readBigUInt64LE(32), Number.MAX_SAFE_INTEGER, 'program header offset');
    const phentsize = header.readUInt16LE(54);
    const phnum = header.readUInt16LE(56);
    if (phentsize < 56 || phentsize * phnum > MAX_TABLE_BYTES) throw new Error('bad program header table');
    const table = readAt(fd, phoff, phentsize * phnum);
    const loads: { vaddr: bigint; offset: bigint; filesz: bigint }[] = [];
    let dynamic: { offset: number; size: number } | null = null;
    for (let i = 0; i < phnum; i++) {
      const at = i * phentsize;
      const type = table.readUInt32LE(at);
      const offset = table.readBigUInt64LE(at + 8);
      const vaddr = table.readBigUInt64LE(at + 16);
      const filesz = table.readBigUInt64LE(at + 32);
      if (type === PT_LOAD) loads.push({ vaddr, offset, filesz });
      if (type === PT_DYNAMIC) dynamic = { offset: bounded(offset, Number.MAX_SAFE_INTEGER, 'dynamic offset'), size: bounded(filesz, MAX_TABLE_BYTES, 'dynamic size') };
    }
    if (dynamic === null) return { needed: [], soname: null, searchPath: [] };
    const entries = readAt(fd, dynamic.offset, dynamic.size - (dynamic.size % 16));
    const names: { tag: number; value: bigint }[] = [];
    let strtab: bigint | null = null;
    let strsz: bigint | null = null;
    for (let at = 0; at + 16 <= entries.length; at += 16) {
      const tag = Number(entries.readBigInt64LE(at));
      const value = entries.readBigUInt64LE(at + 8);
      if (tag === DT_NULL) break;
      if (tag === DT_STRTAB) strtab = value;
      else if (tag === DT_STRSZ) strsz = value;
      else if (tag === DT_NEEDED || tag === DT_SONAME || tag === DT_RPATH || tag === DT_RUNPATH) names.push({ tag, value });
    }
    if (strtab === null || strsz === null) throw new Error('dynamic section without a string table');
    // DT_STRTAB is a virtual address: find the loadable segment that maps it.
    const segment = loads.find((l) => strtab! >= l.vaddr && strtab! < l.vaddr + l.filesz);
    if (segment === undefined) throw new Error('string table outside every loadable segment');
    const strings = readAt(fd, bounded(segment.offset + (strtab - segment.vaddr), Number.MAX_SAFE_INTEGER, 'string table offset'), bounded(strsz, MAX_STRTAB_BYTES, 'string table size'));
    const text = (offset: bigint): string => {
      const start = bounded(offset, strings.length - 1, 'string offset');
      const end = strings.indexOf(0, start);
      return strings.toString('utf8', start, end < 0 ? strings.length : end);
    };
    const origin = dirname(path);
    const pathOf = (tag: number): string[] =>
      names
        .filter((n) => n.tag === tag)
        .flatMap((n) => text(n.value).split(':'))
        .filter((p) => p.length > 0)
        .map((p) => p.replace(/\$(ORIGIN|\{ORIGIN\})/g, origin));
    const runpath = pathOf(DT_RUNPATH);
    return {
      needed: names.filter((n) => n.tag === DT_NEEDED).map((n) => text(n.value)),
      soname: names.filter((n) => n.tag === DT_SONAME).map((n) => text(n.value))[0] ?? null,
      searchPath: runpath.length > 0 ? runpath : pathOf(DT_RPATH),
    };
  } finally {
    closeSync(fd);
  }
}
