// Issue 15 row 13: dove.json numbers are checked strictly at load (type, integer, range), and
// safetensors offsets must be integers that tile the data section; messages name the field.
import test from 'ava';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DoveError } from '../../lib/base/errors';
import { DoveModel } from '../../lib/model/model-file';
import { readSafetensors } from '../../lib/io/safetensors';
import { pngOf, tempDir, TINY_DOVE, TINY_QDOVE } from '../api/helpers';
import { runDove, withDoveJson } from './helpers';

/** dove.json of `src` with `path` (a.b) set to the raw JSON text `literal` (e.g. 1e400, -0). */
function patched(dir: string, src: string, path: string, literal: string): string {
  const dst = join(dir, `${path}=${literal.replace(/[^\w.-]/g, '_')}.pt`);
  withDoveJson(src, dst, (meta) => {
    const keys = path.split('.');
    let at: Record<string, unknown> = meta;
    for (const k of keys.slice(0, -1)) at = at[k] as Record<string, unknown>;
    at[keys[keys.length - 1]!] = '@@LITERAL@@';
    return JSON.stringify(meta).replace('"@@LITERAL@@"', literal);
  });
  return dst;
}

const CASES: [string, string, string][] = [
  [TINY_DOVE, 'maxTokens', '1.5'],
  [TINY_DOVE, 'maxTokens', '1e400'],
  [TINY_DOVE, 'maxTokens', '-0'],
  [TINY_DOVE, 'maxTokens', '9007199254740993'],
  [TINY_DOVE, 'maxTokens', '"64"'],
  [TINY_DOVE, 'imageSize', '64.5'],
  [TINY_DOVE, 'imageSize', '1e400'],
  [TINY_DOVE, 'imageSize', '100000'],
  [TINY_DOVE, 'tokenDim', '128.25'],
  [TINY_DOVE, 'tokenDim', '-128'],
  [TINY_DOVE, 'eosThreshold', '1.5'],
  [TINY_DOVE, 'eosThreshold', '1e400'],
  [TINY_DOVE, 'eosThreshold', '0'],
  [TINY_DOVE, 'variant', 'null'],
  [TINY_QDOVE, 'queryTokenizer.padId', '0.5'],
  [TINY_QDOVE, 'queryTokenizer.maxLength', '1e400'],
  [TINY_QDOVE, 'queryTokenizer.maxLength', '0'],
  [TINY_QDOVE, 'queryTokenizer', 'null'],
];

test('row 13: fractional, huge, negative and mistyped dove.json numbers are NOT_DOVE_EXPORT naming the field', async (t) => {
  const { dir, cleanup } = tempDir('meta');
  t.teardown(cleanup);
  for (const [src, field, literal] of CASES) {
    const file = patched(dir, src, field, literal);
    const error = await t.throwsAsync(DoveModel.load(file, { optimize: false }), { instanceOf: DoveError }, `${field} = ${literal}`);
    t.is(error?.code, 'NOT_DOVE_EXPORT', `${field} = ${literal}`);
    t.regex(error?.message ?? '', new RegExp(`dove\\.json: .*${field.replace('.', '\\.')}`), `${field} = ${literal}`);
  }
  // The unpatched files still load (the patching itself changes nothing else).
  const ok = await DoveModel.load(patched(dir, TINY_DOVE, 'maxTokens', '64'), { optimize: false });
  t.is(ok.maxTokens, 64);
  ok.dispose();
});

test('row 13: dove reconstruct-batch with a fractional maxTokens names the field, not --lengths', async (t) => {
  const { dir, cleanup } = tempDir('meta-cli');
  t.teardown(cleanup);
  mkdirSync(join(dir, 'in'));
  writeFileSync(join(dir, 'in', 'a.png'), await pngOf(64, 64));
  const model = patched(dir, TINY_DOVE, 'maxTokens', '1.5');
  const r = await runDove(['reconstruct-batch', join(dir, 'in'), '--model', model, '-o', join(dir, 'out')]);
  t.is(r.code, 1, r.stderr);
  t.regex(r.stderr, /dove\.json: maxTokens must be an integer between 1 and 65536 but is 1\.5\b.*\[NOT_DOVE_EXPORT\]\n$/);
  t.notRegex(r.stderr, /--lengths/);
});

function safetensorsFile(header: object, dataBytes: number): Buffer {
  const text = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(text.length));
  return Buffer.concat([len, text, Buffer.alloc(dataBytes)]);
}

test('row 13: overlapping, fractional, gapped, out-of-bounds and negative safetensors layouts are INVALID_ARGUMENT', async (t) => {
  const { dir, cleanup } = tempDir('st-offsets');
  t.teardown(cleanup);
  const f32 = (shape: number[], offsets: number[]): object => ({ dtype: 'F32', shape, data_offsets: offsets });
  const cases: [string, object, number, RegExp][] = [
    ['overlap', { a: f32([2], [0, 8]), b: f32([2], [4, 12]) }, 12, /tensor b data_offsets \[4, 12\] overlap/],
    ['same bytes twice', { a: f32([2], [0, 8]), b: f32([2], [0, 8]) }, 8, /overlap/],
    ['fractional', { a: f32([2], [0.5, 8.5]) }, 9, /tensor a has data_offsets \[0\.5,8\.5\], expected \[begin, end\] of non-negative integers/],
    ['gap', { a: f32([2], [0, 8]), b: f32([2], [12, 20]) }, 20, /no tensor covers data bytes \[8, 12\)/],
    ['trailing bytes', { a: f32([2], [0, 8]) }, 16, /no tensor covers data bytes \[8, 16\)/],
    ['past the end', { a: f32([4], [0, 16]) }, 8, /outside the 8-byte data section/],
    ['negative shape', { a: f32([-2, -2], [0, 16]) }, 16, /tensor a has shape \[-2,-2\]/],
    ['fractional shape', { a: f32([0.5, 8], [0, 16]) }, 16, /tensor a has shape \[0\.5,8\]/],
    ['huge shape', { a: f32([2 ** 31, 2 ** 31, 2 ** 31], [0, 16]) }, 16, /do not match shape/],
    ['begin after end', { a: f32([0], [8, 0]) }, 8, /outside/],
  ];
  for (const [name, header, bytes, message] of cases) {
    const file = join(dir, `${name.replace(/ /g, '-')}.safetensors`);
    writeFileSync(file, safetensorsFile(header, bytes));
    const error = await t.throwsAsync(readSafetensors(file), { instanceOf: DoveError }, name);
    t.is(error?.code, 'INVALID_ARGUMENT', name);
    t.regex(error?.message ?? '', message, name);
  }
  // Tensors in any order, zero-size ones included, are fine as long as they tile the data.
  const ok = join(dir, 'ok.safetensors');
  writeFileSync(ok, safetensorsFile({ b: f32([1], [8, 12]), a: f32([2], [0, 8]), e: f32([0, 3], [12, 12]) }, 12));
  t.deepEqual([...(await readSafetensors(ok)).tensors.keys()], ['b', 'a', 'e']);
});
