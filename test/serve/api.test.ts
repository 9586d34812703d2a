// The HTTP API of `dove serve` against the seeded fixture exports: every route, every error status,
// results equal to the library's own, batching that is both real and correct, and limits.
import test from 'ava';
import { readFileSync } from 'node:fs';
import sharp from 'sharp';
import { parseSafetensors } from '../../lib/io/safetensors';
import { Reconstructor } from '../../lib/model/reconstructor';
import { bombPng, fixtureExists, maxAbsDiff, pngOf, TINY_DOVE, TINY_QDOVE } from '../api/helpers';
import { rawRequest, SAMPLE_JPG, startServer, type Running } from './helpers';

const ready = fixtureExists(TINY_DOVE) && fixtureExists(TINY_QDOVE);
const serial = ready ? test.serial : test.skip;
const title = (t: string): string => (ready ? t : `${t} (skipped: no fixtures in test/fixtures/generated; run scripts/setup)`);

let s: Running;
let png: Buffer;

test.before(async () => {
  if (!ready) return;
  s = await startServer(TINY_DOVE, { bodyLimit: 256 * 1024, maxInputPixels: 4096 * 4096 });
  png = await pngOf(96, 80, 1);
});
test.after.always(async () => {
  if (ready) await s.close();
});

function post(path: string, body: Buffer | string, type: string, accept?: string): Promise<Response> {
  return fetch(`${s.url}${path}`, { method: 'POST', body, headers: { 'content-type': type, ...(accept ? { accept } : {}) } });
}

interface ErrorBody {
  code: string;
  message: string;
}

async function expectError(t: import('ava').ExecutionContext, response: Response, status: number, code: string, message?: RegExp): Promise<ErrorBody> {
  t.is(response.status, status, `expected ${status} ${code}`);
  t.regex(response.headers.get('content-type') ?? '', /application\/json/);
  const body = (await response.json()) as ErrorBody;
  t.deepEqual(Object.keys(body).sort(), ['code', 'message'], 'an error carries its code and message only');
  t.is(body.code, code, body.message);
  t.notRegex(body.message, /\n\s+at /, 'no stack trace in a response');
  if (message) t.regex(body.message, message);
  return body;
}

interface TokensJson {
  length: number;
  dim: number;
  slots: number;
  eosProbabilities: number[];
  tokens: number[][];
}

serial(title('GET /healthz and /v1/model report the loaded model from its metadata'), async (t) => {
  const health = await fetch(`${s.url}/healthz`);
  t.is(health.status, 200);
  t.is(((await health.json()) as { status: string }).status, 'ok');
  const model = (await (await fetch(`${s.url}/v1/model`)).json()) as Record<string, unknown>;
  const m = s.tokenizer.model;
  t.like(model, { variant: 'dove', imageSize: m.imageSize, maxTokens: m.maxTokens, tokenDim: m.tokenDim, eosThreshold: m.meta.eosThreshold, name: 'tiny-dove.pt' });
  t.like(model.limits as object, { bodyLimit: 256 * 1024, maxBatch: 16, maxQueue: 64 });
});

serial(title('POST /v1/tokenize: JSON, raw float32 and safetensors carry the tokens the Tokenizer gives'), async (t) => {
  const expected = await s.tokenizer.tokenize(png);
  const json = (await (await post('/v1/tokenize', png, 'image/png')).json()) as TokensJson;
  t.is(json.length, expected.length);
  t.is(json.dim, s.tokenizer.tokenDim);
  t.is(json.slots, s.tokenizer.maxTokens);
  t.is(json.tokens.length, expected.length);
  t.true(maxAbsDiff(json.tokens.flat(), expected.tokens) < 1e-5);
  t.true(maxAbsDiff(json.eosProbabilities, expected.eosProbabilities) < 1e-6);

  const raw = await post('/v1/tokenize', png, 'image/png', 'application/octet-stream');
  t.is(raw.status, 200);
  t.is(raw.headers.get('content-type'), 'application/octet-stream');
  t.is(raw.headers.get('x-dove-length'), String(expected.length));
  t.is(raw.headers.get('x-dove-dim'), String(s.tokenizer.tokenDim));
  const floats = new Float32Array(await raw.arrayBuffer());
  t.is(floats.length, expected.length * s.tokenizer.tokenDim);
  t.true(maxAbsDiff(floats, expected.tokens) < 1e-5);

  const st = await post('/v1/tokenize', png, 'image/png', 'application/x-safetensors');
  t.is(st.status, 200);
  const file = parseSafetensors(new Uint8Array(await st.arrayBuffer()));
  t.deepEqual(file.tensors.get('tokens')!.shape, [1, expected.length, s.tokenizer.tokenDim]);
  t.deepEqual(Array.from(file.tensors.get('lengths')!.data as BigInt64Array, Number), [expected.length]);
  t.deepEqual(file.tensors.get('eos_probabilities')!.shape, [1, s.tokenizer.maxTokens]);
  t.true(maxAbsDiff(file.tensors.get('tokens')!.data as Float32Array, expected.tokens) < 1e-5);

  // Content negotiation follows q-values; no acceptable type is a 406.
  const preferred = await post('/v1/tokenize', png, 'image/png', 'application/json;q=0.5, application/octet-stream');
  t.is(preferred.headers.get('content-type'), 'application/octet-stream');
  await expectError(t, await post('/v1/tokenize', png, 'image/png', 'text/html'), 406, 'NOT_ACCEPTABLE', /Accept/);
});

serial(title('POST /v1/tokenize: multipart upload, octet-stream and query options'), async (t) => {
  const form = new FormData();
  form.append('image', new Blob([png], { type: 'image/png' }), 'pattern.png');
  const multi = (await (await fetch(`${s.url}/v1/tokenize`, { method: 'POST', body: form })).json()) as TokensJson;
  const plain = (await (await post('/v1/tokenize', png, 'application/octet-stream')).json()) as TokensJson;
  t.is(multi.length, plain.length);
  t.deepEqual(multi.tokens, plain.tokens);

  const fixed = (await (await post('/v1/tokenize?mode=fixed&maxTokens=5', png, 'image/png')).json()) as TokensJson;
  t.is(fixed.length, 5);
  t.is(fixed.slots, 5);
  const expected = await s.tokenizer.tokenize(png, { mode: 'fixed', maxTokens: 5 });
  t.true(maxAbsDiff(fixed.tokens.flat(), expected.tokens) < 1e-5);
  const capped = (await (await post('/v1/tokenize?mode=capped&maxTokens=2', png, 'image/png')).json()) as TokensJson;
  t.true(capped.length <= 2);
  const contain = (await (await post('/v1/tokenize?fit=contain&threshold=0.9', png, 'image/png')).json()) as TokensJson;
  const containExpected = await s.tokenizer.tokenize(png, { fit: 'contain', threshold: 0.9 });
  t.is(contain.length, containExpected.length);
});

serial(title('POST /v1/tokenize: bad options are 400 with the library wording'), async (t) => {
  const max = s.tokenizer.maxTokens;
  await expectError(t, await post('/v1/tokenize?maxTokens=0', png, 'image/png'), 400, 'INVALID_ARGUMENT', new RegExp(`Expected integer between 1 and ${max} for maxTokens but received 0`));
  await expectError(t, await post(`/v1/tokenize?maxTokens=${max + 1}`, png, 'image/png'), 400, 'INVALID_ARGUMENT', /for maxTokens/);
  await expectError(t, await post('/v1/tokenize?maxTokens=abc', png, 'image/png'), 400, 'INVALID_ARGUMENT', /Expected a number for maxTokens but received 'abc'/);
  await expectError(t, await post('/v1/tokenize?mode=sometimes', png, 'image/png'), 400, 'INVALID_ARGUMENT', /for mode/);
  await expectError(t, await post('/v1/tokenize?threshold=1', png, 'image/png'), 400, 'INVALID_ARGUMENT', /for threshold/);
  await expectError(t, await post('/v1/tokenize?fit=zoom', png, 'image/png'), 400, 'INVALID_ARGUMENT', /for fit/);
  await expectError(t, await post('/v1/tokenize?question=a%20cat', png, 'image/png'), 400, 'INVALID_ARGUMENT', /Q-DOVE/);
  await expectError(t, await post('/v1/tokenize?maxTokns=4', png, 'image/png'), 400, 'INVALID_ARGUMENT', /Unknown query parameter maxTokns/);
  await expectError(t, await post('/v1/tokenize?mode=auto&mode=fixed', png, 'image/png'), 400, 'INVALID_ARGUMENT', /one value for mode/);
  await expectError(t, await post('/v1/tokenize', Buffer.alloc(0), 'image/png'), 400, 'INVALID_ARGUMENT', /empty/);
});

serial(title('POST /v1/tokenize: wrong media types are 415, oversized bodies and images 413'), async (t) => {
  await expectError(t, await post('/v1/tokenize', '{"a":1}', 'application/json'), 415, 'UNSUPPORTED_MEDIA_TYPE', /Expected an image/);
  await expectError(t, await post('/v1/tokenize', 'hello', 'text/plain'), 415, 'UNSUPPORTED_MEDIA_TYPE');
  const big = Buffer.concat([png, Buffer.alloc(300 * 1024)]);
  await expectError(t, await post('/v1/tokenize', big, 'image/png'), 413, 'BODY_TOO_LARGE');
  const form = new FormData();
  form.append('image', new Blob([big], { type: 'image/png' }), 'big.png');
  await expectError(t, await fetch(`${s.url}/v1/tokenize`, { method: 'POST', body: form }), 413, 'BODY_TOO_LARGE');
  // Pixels: a small file whose header claims more than maxInputPixels is refused before decoding.
  await expectError(t, await post('/v1/tokenize', bombPng(5000, 5000), 'image/png'), 413, 'IMAGE_TOO_LARGE', /pixel limit/);
});

serial(title('POST /v1/tokenize: truncated and undecodable images are 422, the server keeps serving'), async (t) => {
  const jpeg = readFileSync(SAMPLE_JPG);
  await expectError(t, await post('/v1/tokenize', jpeg.subarray(0, Math.floor(jpeg.length / 2)), 'image/jpeg'), 422, 'INVALID_IMAGE');
  await expectError(t, await post('/v1/tokenize', png.subarray(0, png.length - 40), 'image/png'), 422, 'INVALID_IMAGE');
  await expectError(t, await post('/v1/tokenize', Buffer.from('definitely not an image'), 'image/png'), 422, 'INVALID_IMAGE');
  const after = await post('/v1/tokenize', jpeg, 'image/jpeg');
  t.is(after.status, 200);
});

serial(title('POST /v1/reconstruct: JSON, raw and safetensors tokens give the Reconstructor\'s image'), async (t) => {
  const tokens = await s.tokenizer.tokenize(png, { mode: 'fixed', maxTokens: 6 });
  const expected = await new Reconstructor(s.tokenizer.model).reconstruct(tokens);
  const size = s.tokenizer.imageSize;
  const check = async (response: Response, what: string): Promise<void> => {
    t.is(response.status, 200, what);
    t.is(response.headers.get('content-type'), 'image/png', what);
    const { data, info } = await sharp(Buffer.from(await response.arrayBuffer())).raw().toBuffer({ resolveWithObject: true });
    t.deepEqual([info.width, info.height, info.channels], [size, size, 3], what);
    t.true(maxAbsDiff(data, expected.data) <= 1, what);
  };
  const dim = s.tokenizer.tokenDim;
  const rows = Array.from({ length: tokens.length }, (_, i) => Array.from(tokens.tokens.subarray(i * dim, (i + 1) * dim)));
  await check(await post('/v1/reconstruct', JSON.stringify({ tokens: rows }), 'application/json'), 'json rows');
  await check(await post('/v1/reconstruct', JSON.stringify({ tokens: rows.flat() }), 'application/json'), 'json flat');
  const raw = Buffer.from(tokens.tokens.buffer, tokens.tokens.byteOffset, tokens.tokens.byteLength);
  await check(await post('/v1/reconstruct', raw, 'application/octet-stream'), 'raw');
  const st = await post('/v1/tokenize?mode=fixed&maxTokens=6', png, 'image/png', 'application/x-safetensors');
  await check(await post('/v1/reconstruct', Buffer.from(await st.arrayBuffer()), 'application/x-safetensors'), 'safetensors');
  // ?length=L keeps the first L tokens: the same image as L fixed tokens.
  const full = await post('/v1/tokenize?mode=fixed', png, 'image/png', 'application/octet-stream');
  const cut = await post('/v1/reconstruct?length=6', Buffer.from(await full.arrayBuffer()), 'application/octet-stream');
  t.is(cut.headers.get('x-dove-length'), '6');
  await check(cut, '?length=6 of the full code');
});

serial(title('POST /v1/reconstruct: wrong shapes are 422, bad values 400, other media 415'), async (t) => {
  const dim = s.tokenizer.tokenDim;
  const max = s.tokenizer.maxTokens;
  await expectError(t, await post('/v1/reconstruct', JSON.stringify({ tokens: [[1, 2, 3]] }), 'application/json'), 422, 'SHAPE_MISMATCH', new RegExp(`${dim} floats per token`));
  await expectError(t, await post('/v1/reconstruct', Buffer.alloc(dim * 4 + 2), 'application/octet-stream'), 422, 'SHAPE_MISMATCH', /multiple of 4/);
  await expectError(t, await post('/v1/reconstruct', Buffer.alloc(dim * 4 * (max + 1)), 'application/octet-stream'), 422, 'SHAPE_MISMATCH', new RegExp(`between 1 and ${max}`));
  const nan = new Float32Array(dim).fill(Number.NaN);
  await expectError(t, await post('/v1/reconstruct', Buffer.from(nan.buffer), 'application/octet-stream'), 400, 'INVALID_ARGUMENT', /finite/);
  await expectError(t, await post('/v1/reconstruct?length=3', Buffer.alloc(dim * 4 * 2), 'application/octet-stream'), 400, 'INVALID_ARGUMENT', /between 1 and 2 for length/);
  await expectError(t, await post('/v1/reconstruct', '{"tokens": "no"}', 'application/json'), 400, 'INVALID_ARGUMENT');
  await expectError(t, await post('/v1/reconstruct', '{"tokens": [', 'application/json'), 400, 'INVALID_ARGUMENT');
  await expectError(t, await post('/v1/reconstruct', Buffer.from('not safetensors at all'), 'application/x-safetensors'), 400, 'INVALID_ARGUMENT', /safetensors/);
  await expectError(t, await post('/v1/reconstruct', png, 'image/png'), 415, 'UNSUPPORTED_MEDIA_TYPE', /Expected tokens/);
  await expectError(t, await post('/v1/reconstruct', Buffer.alloc(dim * 4), 'application/octet-stream', 'application/json'), 406, 'NOT_ACCEPTABLE');
});

serial(title('POST /v1/explore: one encode, every length, tiles equal to /v1/reconstruct'), async (t) => {
  const r = await post('/v1/explore', png, 'image/png');
  t.is(r.status, 200);
  const e = (await r.json()) as { length: number; maxTokens: number; imageSize: number; columns: number; eosProbabilities: number[]; psnr: (number | null)[]; ssim: (number | null)[]; sprite: string; grid: string; input: string };
  const max = s.tokenizer.maxTokens;
  const size = s.tokenizer.imageSize;
  const expected = await s.tokenizer.tokenize(png);
  t.is(e.length, expected.length);
  t.is(e.maxTokens, max);
  t.is(e.eosProbabilities.length, max);
  t.is(e.psnr.length, max);
  t.is(e.ssim.length, max);
  t.true(e.psnr.every((v) => v === null || Number.isFinite(v)));
  const sprite = await sharp(Buffer.from(e.sprite.split(',')[1]!, 'base64')).raw().toBuffer({ resolveWithObject: true });
  t.is(sprite.info.width, e.columns * size);
  t.is(sprite.info.height, Math.ceil(max / e.columns) * size);
  const tile = (length: number): Buffer => {
    const out = Buffer.alloc(size * size * 3);
    const x0 = ((length - 1) % e.columns) * size;
    const y0 = Math.floor((length - 1) / e.columns) * size;
    for (let y = 0; y < size; y++) sprite.data.copy(out, y * size * 3, ((y0 + y) * sprite.info.width + x0) * 3, ((y0 + y) * sprite.info.width + x0 + size) * 3);
    return out;
  };
  for (const length of [1, Math.ceil(max / 2), max]) {
    const tokens = await post(`/v1/tokenize?mode=fixed&maxTokens=${length}`, png, 'image/png', 'application/octet-stream');
    const image = await post('/v1/reconstruct', Buffer.from(await tokens.arrayBuffer()), 'application/octet-stream');
    const { data } = await sharp(Buffer.from(await image.arrayBuffer())).raw().toBuffer({ resolveWithObject: true });
    t.true(maxAbsDiff(tile(length), data) <= 2, `tile ${length}`);
  }
  t.regex(e.grid, /^data:image\/png;base64,/);
  await expectError(t, await post('/v1/explore?mode=fixed', png, 'image/png'), 400, 'INVALID_ARGUMENT', /Unknown query parameter mode/);
});

serial(title('concurrent requests share forwards and each gets its own result'), async (t) => {
  const before = s.server.service.queue.stats();
  const images = await Promise.all(Array.from({ length: 12 }, (_, i) => pngOf(64 + i * 4, 64, i + 2)));
  const results = await Promise.all(images.map(async (img) => (await (await post('/v1/tokenize', img, 'image/png', 'application/octet-stream')).arrayBuffer())));
  const after = s.server.service.queue.stats();
  t.is(after.rows - before.rows, 12);
  t.true(after.batches - before.batches < 12, `12 requests ran in ${after.batches - before.batches} forwards`);
  for (let i = 0; i < images.length; i++) {
    const alone = await s.tokenizer.tokenize(images[i]!);
    const got = new Float32Array(results[i]!);
    t.is(got.length, alone.length * s.tokenizer.tokenDim, `image ${i} length`);
    t.true(maxAbsDiff(got, alone.tokens) < 1e-4, `image ${i} tokens`);
  }
});

serial(title('unknown routes are 404, wrong methods 405, pages and assets are served with a policy'), async (t) => {
  await expectError(t, await fetch(`${s.url}/v1/nothing`), 404, 'NOT_FOUND');
  const wrong = await fetch(`${s.url}/v1/tokenize`);
  await expectError(t, wrong, 405, 'METHOD_NOT_ALLOWED');
  t.is(wrong.headers.get('allow'), 'POST');
  await expectError(t, await fetch(`${s.url}/v1/model`, { method: 'POST' }), 405, 'METHOD_NOT_ALLOWED');
  for (const page of ['/', '/runs']) {
    const r = await fetch(`${s.url}${page}`);
    t.is(r.status, 200);
    t.regex(r.headers.get('content-type') ?? '', /text\/html/);
    t.regex(r.headers.get('content-security-policy') ?? '', /default-src 'self'/);
    t.is(r.headers.get('x-content-type-options'), 'nosniff');
    const html = await r.text();
    t.notRegex(html, /https?:\/\//, 'no CDN or other origin');
    for (const [, src] of html.matchAll(/(?:src|href)="(\/assets\/[^"]+)"/g)) t.is((await fetch(`${s.url}${src}`)).status, 200, src);
  }
  await expectError(t, await fetch(`${s.url}/assets/explorer.html`), 404, 'NOT_FOUND');
  await expectError(t, await fetch(`${s.url}/assets/..%2Fpackage.json`), 404, 'NOT_FOUND');
});

serial(title('a full queue answers 503 with Retry-After; a request over its time 503 TIMEOUT'), async (t) => {
  const small = await startServer(TINY_DOVE, { maxQueue: 1, maxBatch: 1 });
  try {
    const responses = await Promise.all(Array.from({ length: 24 }, () => post2(small.url, png)));
    const statuses = responses.map((r) => r.status);
    t.true(statuses.includes(200), statuses.join(','));
    t.true(statuses.includes(503), statuses.join(','));
    t.true(statuses.every((x) => x === 200 || x === 503), statuses.join(','));
    for (const r of responses.filter((x) => x.status === 503)) {
      t.regex(r.headers.get('retry-after') ?? '', /^\d+$/);
      await expectError(t, r, 503, 'QUEUE_FULL', /queue is full/);
    }
    t.is((await post2(small.url, png)).status, 200, 'serves again once the queue drained');
  } finally {
    await small.close();
  }
  const slow = await startServer(TINY_DOVE, { timeoutMs: 1 });
  try {
    const r = await fetch(`${slow.url}/v1/explore`, { method: 'POST', body: png, headers: { 'content-type': 'image/png' } });
    t.regex(r.headers.get('retry-after') ?? '', /^\d+$/);
    await expectError(t, r, 503, 'TIMEOUT', /No result within 1 ms/);
    t.is((await fetch(`${slow.url}/healthz`)).status, 200);
  } finally {
    await slow.close();
  }
});

function post2(url: string, body: Buffer): Promise<Response> {
  return fetch(`${url}/v1/tokenize`, { method: 'POST', body, headers: { 'content-type': 'image/png' } });
}

serial(title('a Q-DOVE server takes the question and gives the Tokenizer\'s answer'), async (t) => {
  const q = await startServer(TINY_QDOVE);
  try {
    const model = (await (await fetch(`${q.url}/v1/model`)).json()) as { variant: string };
    t.is(model.variant, 'qdove');
    const asked = 'what colour is the square?';
    const r = await fetch(`${q.url}/v1/tokenize?question=${encodeURIComponent(asked)}`, { method: 'POST', body: png, headers: { 'content-type': 'image/png', accept: 'application/octet-stream' } });
    t.is(r.status, 200);
    const expected = await q.tokenizer.tokenize(png, { query: asked });
    t.true(maxAbsDiff(new Float32Array(await r.arrayBuffer()), expected.tokens) < 1e-5);
    const e = await fetch(`${q.url}/v1/explore?question=${encodeURIComponent(asked)}`, { method: 'POST', body: png, headers: { 'content-type': 'image/png' } });
    t.is(e.status, 200);
    t.is(((await e.json()) as { length: number }).length, expected.length);
  } finally {
    await q.close();
  }
});

serial(title('a body whose declared length is over the limit is refused before it is read'), async (t) => {
  const r = await rawRequest(s.url, 'POST', '/v1/tokenize', Buffer.alloc(300 * 1024), { 'content-type': 'image/png' });
  t.is(r.status, 413);
  t.is((JSON.parse(r.body.toString()) as ErrorBody).code, 'BODY_TOO_LARGE');
  t.is((await fetch(`${s.url}/healthz`)).status, 200);
});
