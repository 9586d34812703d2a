// Issue 15 row 12: every failure on these inputs is a DoveError with a stable code: SharedArrayBuffer
// views, null safetensors headers and entries, deeply nested annotations and CIFAR pickles, a bad
// history in trainer.json, a full disk, out-of-range lengths (and other contract breaks) from a model.
import test from 'ava';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DoveError } from '../../lib/base/errors';
import { readDataset } from '../../lib/eval/cifar';
import { Reconstructor } from '../../lib/model/reconstructor';
import { parseSafetensors } from '../../lib/io/safetensors';
import { Tokenizer } from '../../lib/model/tokenizer';
import { loadAnnotations } from '../../lib/trainer/annotations';
import { readState } from '../../lib/trainer/checkpoint';
import { pngOf, tempDir, TINY_DOVE } from '../api/helpers';
import { HARDENING_FIXTURES, mountTinyFs, ROOT, runDove, runSnippet } from './helpers';

test('row 12: SharedArrayBuffer views: tensors refuse them with INVALID_ARGUMENT, parsers and images read them', async (t) => {
  // In a child: before the fix the native side could be handed shared memory.
  const r = await runSnippet(`
    const { Tensor } = require('./dist/lib/core/tensor');
    const { parseSafetensors, serializeSafetensors } = require('./dist/lib/io/safetensors');
    const { readPickle } = require('./dist/lib/eval/pickle');
    const { loadImage, psnr } = require('./dist/lib/io/images');
    const { Tokenizer } = require('./dist/lib/model/tokenizer');
    const shared = (n) => new Uint8Array(new SharedArrayBuffer(n));
    const outcome = async (f) => { try { await f(); return 'ok'; } catch (e) { return e && e.name === 'DoveError' ? e.code : 'NOT A DOVEERROR: ' + (e && e.constructor && e.constructor.name) + ' ' + (e && e.message); } };
    (async () => {
      const st = serializeSafetensors({ x: { data: new Float32Array([1, 2]), shape: [2] } });
      const stShared = shared(st.length); stShared.set(st);
      const pk = shared(5); pk.set([0x80, 0x02, 0x4e, 0x2e, 0]);
      const tok = await Tokenizer.load(${JSON.stringify(TINY_DOVE)}, { optimize: false });
      const px = shared(64 * 64 * 3);
      const out = {
        tensorFloat32: await outcome(() => Tensor.fromArray(new Float32Array(new SharedArrayBuffer(16)))),
        tensorUint8: await outcome(() => Tensor.fromArray(shared(12), [3, 4], 'uint8')),
        tokenizePixels: await outcome(() => tok.tokenizePixels(px, 1, { mode: 'auto', budget: 64, threshold: 0.5, queries: undefined })),
        safetensors: await outcome(() => parseSafetensors(stShared)),
        pickle: await outcome(() => readPickle(pk.subarray(0, 4), 'x')),
        rawPixels: await outcome(() => loadImage({ data: shared(8 * 8 * 3), width: 8, height: 8, channels: 3 }, { size: 16 })),
        psnr: await outcome(() => psnr(shared(3), shared(3))),
      };
      tok.dispose();
      process.stdout.write(JSON.stringify(out));
    })();
  `);
  t.is(r.signal, null, r.stderr);
  t.is(r.code, 0, r.stderr);
  t.deepEqual(JSON.parse(r.stdout), {
    tensorFloat32: 'INVALID_ARGUMENT',
    tensorUint8: 'INVALID_ARGUMENT',
    tokenizePixels: 'INVALID_ARGUMENT',
    safetensors: 'ok',
    pickle: 'ok',
    rawPixels: 'ok',
    psnr: 'ok',
  });
});

function safetensorsWithHeader(header: string, data = Buffer.alloc(0)): Buffer {
  const text = Buffer.from(header);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(text.length));
  return Buffer.concat([len, text, data]);
}

test('row 12: null and other non-object safetensors headers and entries are INVALID_ARGUMENT', (t) => {
  const cases: [string, RegExp][] = [
    ['null', /header does not start with '\{'/],
    ['[]', /header does not start with '\{'/],
    ['{"x": null}', /tensor x is null, expected \{dtype, shape, data_offsets\}/],
    ['{"x": 5}', /tensor x is 5/],
    ['{"x": {"dtype": null, "shape": [1], "data_offsets": [0, 4]}}', /tensor x has dtype null/],
    ['{"x": {"dtype": "toString", "shape": [1], "data_offsets": [0, 4]}}', /tensor x has dtype "toString"/],
    ['{"x": {"dtype": "F32", "shape": null, "data_offsets": [0, 4]}}', /tensor x has shape null/],
    ['{"x": {"dtype": "F32", "shape": [1], "data_offsets": null}}', /tensor x has data_offsets null/],
    ['{"__metadata__": 5}', /__metadata__ is 5/],
    ['{"__metadata__": {"k": null}}', /__metadata__ "k" is null, expected a string/],
    [`{"x": ${'['.repeat(100_000)}${']'.repeat(100_000)}}`, /nested deeper than 64 levels/],
  ];
  for (const [header, message] of cases) {
    const error = t.throws(() => parseSafetensors(safetensorsWithHeader(header, Buffer.alloc(4)), 'f.safetensors'), { instanceOf: DoveError }, header.slice(0, 60));
    t.is(error?.code, 'INVALID_ARGUMENT', header.slice(0, 60));
    t.regex(error?.message ?? '', message);
  }
  // A null __metadata__ is what Python writes for "no metadata": accepted.
  t.deepEqual(parseSafetensors(safetensorsWithHeader('{"__metadata__": null}')).metadata, {});
});

test('row 12: deeply nested annotations are INVALID_ANNOTATION', async (t) => {
  const { dir, cleanup } = tempDir('deep-ann');
  t.teardown(cleanup);
  const deep = `${'['.repeat(200_000)}${']'.repeat(200_000)}`;
  for (const [name, text] of [
    ['boxes.json', `[{"image_id": "a", "question": "q", "answer": null, "bounding_box": ${deep}}]`],
    ['entry.json', `[${deep}]`],
    ['question.json', `[{"image_id": "a", "question": ${deep}, "answer": null, "bounding_box": [[0, 0, 1, 1]]}]`],
  ] as const) {
    writeFileSync(join(dir, name), text);
    const error = await t.throwsAsync(loadAnnotations(join(dir, name)), { instanceOf: DoveError }, name);
    t.is(error?.code, 'INVALID_ANNOTATION', name);
  }
});

/** A protocol-2 pickle of {"labels": [<list nested `depth` deep>]} (no recursion needed to write it). */
function nestedLabelsPickle(depth: number): Buffer {
  const key = Buffer.from('labels');
  const len = Buffer.alloc(4);
  len.writeUInt32LE(key.length);
  return Buffer.concat([
    Buffer.from([0x80, 0x02, 0x7d]), // PROTO 2, EMPTY_DICT
    Buffer.from([0x58]), len, key, // BINUNICODE "labels"
    Buffer.alloc(depth + 1, 0x5d), // EMPTY_LIST × (depth + 1)
    Buffer.alloc(depth, 0x61), // APPEND × depth: each list into the one below
    Buffer.from([0x73, 0x2e]), // SETITEM, STOP
  ]);
}

test('row 12: a CIFAR pickle with deeply nested labels is INVALID_DATASET', async (t) => {
  const { dir, cleanup } = tempDir('deep-cifar');
  t.teardown(cleanup);
  const root = join(dir, 'cifar-10-batches-py');
  mkdirSync(root);
  writeFileSync(join(root, 'batches.meta'), readFileSync(join(ROOT, 'test', 'fuzz', 'corpus', 'pickle', 'cifar10-meta.pkl')));
  writeFileSync(join(root, 'data_batch_1'), nestedLabelsPickle(200_000));
  const error = await t.throwsAsync(readDataset(dir), { instanceOf: DoveError });
  t.is(error?.code, 'INVALID_DATASET');
  t.regex(error?.message ?? '', /label 0 under 'labels' is \[\[\[/);
});

test('row 12: a trainer.json with a bad history is an IO_ERROR naming the field', async (t) => {
  const { dir, cleanup } = tempDir('bad-history');
  t.teardown(cleanup);
  const good = JSON.parse(readFileSync(join(ROOT, 'test', 'fuzz', 'corpus', 'trainer-json', 'trainer.json'), 'utf8')) as Record<string, unknown>;
  await readState(((): string => {
    writeFileSync(join(dir, 'trainer.json'), JSON.stringify(good));
    return dir;
  })());
  for (const history of [5, null, [null], [{ step: '1', loss: 1 }], [{ step: 1 }], [{ step: 1, loss: 1, rec: 'x' }], { length: 1 }]) {
    writeFileSync(join(dir, 'trainer.json'), JSON.stringify({ ...good, history }));
    const error = await t.throwsAsync(readState(dir), { instanceOf: DoveError }, JSON.stringify(history));
    t.is(error?.code, 'IO_ERROR');
    t.regex(error?.message ?? '', /history/);
  }
  writeFileSync(join(dir, 'trainer.json'), JSON.stringify({ ...good, data: null }));
  t.is((await t.throwsAsync(readState(dir), { instanceOf: DoveError }))?.code, 'IO_ERROR');
});

/** Whether this machine lets the tests mount a tmpfs (root with CAP_SYS_ADMIN); decided at load time. */
const canMount = ((): boolean => {
  const probe = mkdtempSync(join(tmpdir(), 'dove-mount-probe-'));
  try {
    const mounted = mountTinyFs(probe, 4);
    mounted?.unmount();
    return mounted !== undefined;
  } finally {
    rmSync(probe, { recursive: true, force: true });
  }
})();

(canMount ? test : test.skip)(`row 12: a full disk is an IO_ERROR naming the path${canMount ? '' : ' (skipped: mounting a tmpfs needs root with CAP_SYS_ADMIN)'}`, async (t) => {
  const { dir, cleanup } = tempDir('enospc');
  const fsMount = mountTinyFs(dir, 4)!;
  t.teardown(() => {
    fsMount.unmount();
    cleanup();
  });
  const image = join(dir, 'in.png');
  writeFileSync(image, await pngOf(64, 64, 5));
  const grid = await runDove(['reconstruct', image, '--model', TINY_DOVE, '--lengths', '1,2,4,8', '-o', join(fsMount.dir, 'grid.png')]);
  t.is(grid.code, 1, grid.stderr);
  t.is(grid.stderr, `dove: ${join(fsMount.dir, 'grid.png')}: cannot write (ENOSPC: no space left on device) [IO_ERROR]\n`);
  const inputs = join(dir, 'inputs');
  mkdirSync(inputs);
  for (let i = 0; i < 3; i++) writeFileSync(join(inputs, `${i}.png`), await pngOf(64, 64, i));
  const batch = await runDove(['reconstruct-batch', inputs, '--model', TINY_DOVE, '--lengths', '1,2,4', '-o', join(fsMount.dir, 'out'), '--quiet']);
  t.is(batch.code, 1, batch.stderr);
  t.regex(batch.stderr, /^dove: .*tiny-fs\/out\/.*: cannot write \(ENOSPC: no space left on device\) \[IO_ERROR\]\n$/);
  // No temporary file is left behind.
  const leftovers = readdirSync(fsMount.dir, { recursive: true }).map(String).filter((n) => n.endsWith('.tmp'));
  t.deepEqual(leftovers, []);
});

const BROKEN: [string, RegExp][] = [
  ['lengths_zero', /encode_pixels broke the DOVE contract .*: length 0 for image 0, expected 1\.\.4/],
  ['lengths_over', /length 5 for image 0, expected 1\.\.4/],
  ['lengths_negative', /length -3 for image 0/],
  ['lengths_huge', /length 4611686018427387904 for image 0/],
  ['tokens_float64', /tokens are float64 \(2, 4, 4\), expected float32/],
  ['tokens_dim', /tokens have 5 values per token, expected 4/],
];

test('row 12: out-of-range lengths and wrong tensors from a model are NOT_DOVE_EXPORT naming the break', async (t) => {
  const image = await pngOf(16, 16, 6);
  const good = await Tokenizer.load(join(HARDENING_FIXTURES, 'bad_output_good.pt'), { optimize: false });
  t.teardown(() => good.dispose());
  t.is((await good.tokenize(image)).length, 4);
  for (const [kind, message] of BROKEN) {
    const tokenizer = await Tokenizer.load(join(HARDENING_FIXTURES, `bad_output_${kind}.pt`), { optimize: false });
    try {
      const error = await t.throwsAsync(tokenizer.tokenize([image, image]), { instanceOf: DoveError }, kind);
      t.is(error?.code, 'NOT_DOVE_EXPORT', kind);
      t.regex(error?.message ?? '', message, kind);
    } finally {
      tokenizer.dispose();
    }
  }
  const rec = await Reconstructor.load(join(HARDENING_FIXTURES, 'bad_output_pixels_shape.pt'), { optimize: false });
  t.teardown(() => rec.dispose());
  const tokens = await good.tokenize(image);
  const error = await t.throwsAsync(rec.reconstruct(tokens), { instanceOf: DoveError });
  t.is(error?.code, 'NOT_DOVE_EXPORT');
  t.regex(error?.message ?? '', /decode_pixels broke the DOVE contract .*: returned uint8 \(1, 8, 8\), expected uint8 \(1, 8, 8, 3\)/);
});

test('row 12: dove tokenize with a model returning out-of-range lengths fails with one line and a code', async (t) => {
  const { dir, cleanup } = tempDir('bad-lengths-cli');
  t.teardown(cleanup);
  writeFileSync(join(dir, 'a.png'), await pngOf(16, 16, 7));
  const r = await runDove(['tokenize', join(dir, 'a.png'), '--model', join(HARDENING_FIXTURES, 'bad_output_lengths_over.pt'), '-o', join(dir, 't.safetensors')]);
  t.is(r.code, 1, r.stderr);
  t.regex(r.stderr, /^dove: .*length 5 for image 0, expected 1\.\.4 \[NOT_DOVE_EXPORT\]\n$/);
});
