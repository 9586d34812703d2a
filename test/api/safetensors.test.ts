import test from 'ava';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DoveError } from '../../lib/base/errors';
import { parseSafetensors, readSafetensors, writeSafetensors } from '../../lib/io/safetensors';
import { API_FIXTURES, pythonPath, tempDir } from './helpers';

test('reads a file written by Python safetensors', async (t) => {
  const file = await readSafetensors(join(API_FIXTURES, 'python_written.safetensors'));
  const expected = JSON.parse(readFileSync(join(API_FIXTURES, 'python_written.json'), 'utf8')) as { [k: string]: { shape: number[]; values: (number | string)[] } };
  t.deepEqual(file.metadata, { writer: 'python', n: '7' });
  t.deepEqual([...file.tensors.keys()].sort(), Object.keys(expected).sort());
  for (const [name, { shape, values }] of Object.entries(expected)) {
    const tensor = file.tensors.get(name)!;
    t.deepEqual(tensor.shape, shape, name);
    const got = Array.from(tensor.data as ArrayLike<number | bigint>, (v) => (typeof v === 'bigint' ? v.toString() : v));
    if (tensor.dtype === 'F32') t.deepEqual(got, values.map((v) => Math.fround(Number(v))), name);
    else t.deepEqual(got, values, name);
  }
  t.is(file.tensors.get('i64')!.dtype, 'I64');
});

test('writes a file that Node and Python read back equal', async (t) => {
  const { dir, cleanup } = tempDir('st');
  t.teardown(cleanup);
  const path = join(dir, 'node.safetensors');
  const tokens = Float32Array.from({ length: 2 * 3 * 4 }, (_, i) => i / 7 - 1);
  const lengths = BigInt64Array.from([3n, 1n]);
  await writeSafetensors(path, { tokens: { data: tokens, shape: [2, 3, 4] }, lengths: { data: lengths, shape: [2] }, mask: { data: Uint8Array.from([1, 0, 1]), shape: [3], dtype: 'BOOL' } }, { model: 'x' });
  const back = await readSafetensors(path);
  t.deepEqual(back.tensors.get('tokens')!.data, tokens);
  t.deepEqual(back.tensors.get('lengths')!.data, lengths);
  t.is(back.tensors.get('mask')!.dtype, 'BOOL');
  const py = execFileSync(pythonPath(), ['-c', [
    'import sys, json, numpy as np',
    'from safetensors.numpy import load_file',
    'from safetensors import safe_open',
    'd = load_file(sys.argv[1])',
    'meta = safe_open(sys.argv[1], "np").metadata()',
    'print(json.dumps({"tokens": d["tokens"].astype(float).ravel().tolist(), "shape": list(d["tokens"].shape), "dtype": str(d["tokens"].dtype), "lengths": d["lengths"].tolist(), "mask": d["mask"].tolist(), "meta": meta}))',
  ].join('\n'), path], { encoding: 'utf8' });
  const parsed = JSON.parse(py) as { tokens: number[]; shape: number[]; dtype: string; lengths: number[]; mask: boolean[]; meta: { [k: string]: string } };
  t.deepEqual(parsed.shape, [2, 3, 4]);
  t.is(parsed.dtype, 'float32');
  t.deepEqual(parsed.tokens, Array.from(tokens));
  t.deepEqual(parsed.lengths, [3, 1]);
  t.deepEqual(parsed.mask, [true, false, true]);
  t.deepEqual(parsed.meta, { model: 'x' });
});

test('corrupt files are DoveErrors', async (t) => {
  const { dir, cleanup } = tempDir('stbad');
  t.teardown(cleanup);
  t.throws(() => parseSafetensors(Buffer.alloc(3), 'short'), { instanceOf: DoveError, message: /short: not a valid safetensors file/ });
  const big = Buffer.alloc(16);
  big.writeBigUInt64LE(1000n, 0);
  t.throws(() => parseSafetensors(big, 'big'), { message: /header length 1000 exceeds the file/ });
  const bad = join(dir, 'bad.safetensors');
  const header = Buffer.from(JSON.stringify({ x: { dtype: 'F32', shape: [4], data_offsets: [0, 8] } }));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(header.length));
  writeFileSync(bad, Buffer.concat([len, header, Buffer.alloc(8)]));
  await t.throwsAsync(readSafetensors(bad), { message: /tensor x offsets \[0, 8\] do not match shape \[4\] F32/ });
  await t.throwsAsync(readSafetensors(join(dir, 'none.safetensors')), { instanceOf: DoveError, message: /none\.safetensors: file not found/ });
});
