// Mutation fuzzing of model archives (issue 15, the model-file side): fast-check mutates the pickles
// (data.pkl, constants.pkl) of small exports byte by byte, re-zips them with valid CRCs, and loads
// each result the way an application would (loaded, optimized, parameters read, forward run). Every
// outcome must be a module or a DoveError, never a signal, a hang or another error. One child process
// runs the whole campaign (a crash is a signal there). DOVE_FUZZ_MODEL_RUNS (default 150) and
// DOVE_FUZZ_SEED set the run; a failure prints the seed and the mutation.
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CORE_MODEL, describeExit, HOSTILE, ROOT, runChild } from './helpers';

const RUNS = Number(process.env.DOVE_FUZZ_MODEL_RUNS ?? 150);
const SEED = process.env.DOVE_FUZZ_SEED;

test(`${RUNS} mutated model archives load or fail with a DoveError, never a signal`, (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dove-model-fuzz-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const r = runChild(`
const fc = require(${JSON.stringify(join(ROOT, 'node_modules', 'fast-check'))});
const fs = require('node:fs');
const path = require('node:path');
const { loadModule, Tensor, DoveError } = lib;

const CRC = new Int32Array(256).map((_, n) => { let c = n; for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1; return c; });
const crc32 = (buf) => { let c = -1; for (const b of buf) c = CRC[(c ^ b) & 0xff] ^ (c >>> 8); return (c ^ -1) >>> 0; };

// Entries of a zip (stored or deflated; PyTorch deflates code records), from its central directory.
function readZip(bytes) {
  let eocd = bytes.length - 22;
  while (bytes.readUInt32LE(eocd) !== 0x06054b50) eocd--;
  const count = bytes.readUInt16LE(eocd + 10);
  let at = bytes.readUInt32LE(eocd + 16);
  const entries = [];
  for (let i = 0; i < count; i++) {
    const method = bytes.readUInt16LE(at + 10);
    const size = bytes.readUInt32LE(at + 20);
    const nameLength = bytes.readUInt16LE(at + 28);
    const skip = nameLength + bytes.readUInt16LE(at + 30) + bytes.readUInt16LE(at + 32);
    const name = bytes.subarray(at + 46, at + 46 + nameLength).toString('utf8');
    const local = bytes.readUInt32LE(at + 42);
    const start = local + 30 + bytes.readUInt16LE(local + 26) + bytes.readUInt16LE(local + 28);
    const stored = bytes.subarray(start, start + size);
    entries.push({ name, data: method === 8 ? require('node:zlib').inflateRawSync(stored) : Buffer.from(stored) });
    at += 46 + skip;
  }
  return entries;
}

function writeZip(entries) {
  const parts = [];
  const central = [];
  let offset = 0;
  for (const { name, data } of entries) {
    const nameBytes = Buffer.from(name);
    const header = Buffer.alloc(30);
    header.writeUInt32LE(0x04034b50, 0); header.writeUInt16LE(20, 4);
    header.writeUInt32LE(crc32(data), 14); header.writeUInt32LE(data.length, 18); header.writeUInt32LE(data.length, 22);
    header.writeUInt16LE(nameBytes.length, 26);
    const dirEntry = Buffer.alloc(46);
    dirEntry.writeUInt32LE(0x02014b50, 0); dirEntry.writeUInt16LE(20, 4); dirEntry.writeUInt16LE(20, 6);
    dirEntry.writeUInt32LE(crc32(data), 16); dirEntry.writeUInt32LE(data.length, 20); dirEntry.writeUInt32LE(data.length, 24);
    dirEntry.writeUInt16LE(nameBytes.length, 28); dirEntry.writeUInt32LE(offset, 42);
    parts.push(header, nameBytes, data);
    central.push(dirEntry, nameBytes);
    offset += 30 + nameBytes.length + data.length;
  }
  const cd = Buffer.concat(central);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0); end.writeUInt16LE(entries.length, 8); end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(cd.length, 12); end.writeUInt32LE(offset, 16);
  return Buffer.concat([...parts, cd, end]);
}

// Offsets of the integer operands (BININT1/BININT2/BININT) of a pickle, found by walking its opcodes.
function intOperands(pickle) {
  const found = [];
  let at = 2;
  const fixed = { 0x71: 1, 0x68: 1, 0x72: 4, 0x6a: 4, 0x47: 8 };
  while (at < pickle.length) {
    const op = pickle[at++];
    if (op === 0x2e) break;
    // An operand cut off by the end of a mutated pickle is not one to rewrite.
    if (op === 0x4b) { if (at + 1 <= pickle.length) found.push({ at, width: 1 }); at += 1; }
    else if (op === 0x4d) { if (at + 2 <= pickle.length) found.push({ at, width: 2 }); at += 2; }
    else if (op === 0x4a) { if (at + 4 <= pickle.length) found.push({ at, width: 4 }); at += 4; }
    else if (op === 0x8a) at += 1 + pickle[at];
    else if (op === 0x58) { if (at + 4 > pickle.length) break; at += 4 + pickle.readUInt32LE(at); }
    else if (op === 0x63) {
      // GLOBAL: two newline-terminated names; a mutant may have lost a newline (then the walk ends).
      const first = pickle.indexOf(10, at);
      const second = first < 0 ? -1 : pickle.indexOf(10, first + 1);
      if (second < 0) break;
      at = second + 1;
    }
    else at += fixed[op] ?? 0;
  }
  return found;
}

const BASES = ${JSON.stringify([join(HOSTILE, 'plain.pt'), join(HOSTILE, 'with-constant.pt'), CORE_MODEL])}.map((file) => ({ file, entries: readZip(fs.readFileSync(file)) }));
// Interesting bytes: pickle opcodes, small and boundary integers.
const byteArb = fc.oneof(fc.integer({ min: 0, max: 255 }), fc.constantFrom(0x28, 0x29, 0x2e, 0x4b, 0x4a, 0x4d, 0x51, 0x52, 0x62, 0x63, 0x64, 0x65, 0x68, 0x71, 0x72, 0x73, 0x74, 0x75, 0x7d, 0x5d, 0x80, 0x81, 0x85, 0x86, 0x87, 0x88, 0x8a, 0xff, 0x7f));
const mutation = fc.record({
  base: fc.integer({ min: 0, max: BASES.length - 1 }),
  archive: fc.constantFrom('data.pkl', 'constants.pkl'),
  edits: fc.array(fc.record({ kind: fc.constantFrom('set', 'insert', 'delete', 'int', 'int', 'int'), at: fc.nat(), value: byteArb,
    int: fc.oneof(fc.integer({ min: -2, max: 300 }), fc.constantFrom(2 ** 31 - 1, -(2 ** 31), 65535, 4096, 123 * 4, 122, 124)) }), { minLength: 1, maxLength: 3 }),
});
const outcomes = {};
let n = 0;
const property = fc.asyncProperty(mutation, async (m) => {
  const base = BASES[m.base];
  const entries = base.entries.map((e) => ({ name: e.name, data: Buffer.from(e.data) }));
  const target = entries.find((e) => e.name.endsWith('/' + m.archive));
  let data = target.data;
  for (const edit of m.edits) {
    if (edit.kind === 'int') {
      // Rewrite one integer operand in place (a shape, stride, offset, element count, dtype, memo id...).
      const ints = intOperands(data);
      if (ints.length === 0) continue;
      const { at, width } = ints[edit.at % ints.length];
      if (width === 1) data[at] = edit.int & 0xff;
      else if (width === 2) data.writeUInt16LE(edit.int & 0xffff, at);
      else data.writeInt32LE(edit.int | 0, at);
      continue;
    }
    const at = data.length === 0 ? 0 : edit.at % data.length;
    if (edit.kind === 'set') data[at] = edit.value;
    else if (edit.kind === 'insert') data = Buffer.concat([data.subarray(0, at), Buffer.from([edit.value]), data.subarray(at)]);
    else data = Buffer.concat([data.subarray(0, at), data.subarray(at + 1)]);
  }
  target.data = data;
  const file = path.join(${JSON.stringify(dir)}, 'mutant-' + (n++ % 4) + '.pt');
  fs.writeFileSync(file, writeZip(entries));
  let outcome = 'loaded';
  try {
    const module = await loadModule(file, { optimize: true });
    try {
      for (const p of module.parameters()) p.data();
      if (module.hasMethod('forward')) {
        await module.run('forward', [Tensor.fromArray(new Float32Array(123).fill(1), [123])]).catch((e) => { if (!(e instanceof DoveError)) throw e; });
      }
    } finally {
      module.dispose();
    }
  } catch (e) {
    if (!(e instanceof DoveError)) throw new Error('not a DoveError: ' + (e && e.stack || e));
    outcome = e.code;
  }
  outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
});
const seed = ${SEED === undefined ? 'Date.now() % 2147483647' : Number(SEED)};
const result = await fc.check(property, { numRuns: ${RUNS}, seed, interruptAfterTimeLimit: 150000 });
report({ failed: result.failed, seed, numRuns: result.numRuns, outcomes,
  counterexample: result.failed ? fc.stringify(result.counterexample) : null,
  error: result.failed ? String(result.errorInstance && result.errorInstance.message || result.error) : null });
`, { timeoutMs: 300_000 });
  t.is(r.signal, null, describeExit(r));
  t.is(r.status, 0, describeExit(r));
  const out = r.result as { failed: boolean; seed: number; numRuns: number; outcomes: Record<string, number>; counterexample: string | null; error: string | null };
  t.false(out.failed, `seed ${out.seed}: ${out.error} for ${out.counterexample}`);
  t.log(`seed ${out.seed}: ${out.numRuns} mutants: ${JSON.stringify(out.outcomes)}`);
});
