// The pages in a real browser: Debian's chromium driven by playwright-core. The explorer on the
// embedded model (upload, chosen length, charts, slider, several images) and the run monitor on a
// `dove train` that is still running (its curve grows while the page watches).
import test from 'ava';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import sharp from 'sharp';
import { defaultModelPath } from '../../lib/model/model-file';
import { readSafetensors } from '../../lib/io/safetensors';
import { fixtureExists, maxAbsDiff, pngOf, tempDir, TINY_QDOVE } from '../api/helpers';
import { chromiumPath, SAMPLE_JPG, startServer, startTraining, TRAIN_IMAGES, TRAIN_MINI, waitFor, type Running } from './helpers';

const executable = chromiumPath();
const haveModels = existsSync(defaultModelPath()) && fixtureExists(TRAIN_MINI) && fixtureExists(TRAIN_IMAGES);
const why = executable === undefined
  ? ' (skipped: no chromium; scripts/setup installs Debian\'s chromium when it runs as root with apt-get, or set CHROMIUM=/path)'
  : !haveModels ? ' (skipped: no embedded model or training fixtures; run scripts/setup)' : '';
const browserTest = why === '' ? test.serial : test.skip;

let browser: Browser;
let s: Running;
let tmp: { dir: string; cleanup: () => void };

test.before(async () => {
  if (why !== '') return;
  tmp = tempDir('browser');
  browser = await chromium.launch({ executablePath: executable, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
  s = await startServer(undefined);
});
test.after.always(async () => {
  if (why !== '') return;
  await browser?.close();
  await s?.close();
  tmp?.cleanup();
});

/** A page whose uncaught script errors are collected, for the test to require none. */
async function openPage(): Promise<{ page: Page; errors: string[] }> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  return { page, errors };
}

// Page-side code is passed as text: this project compiles without the DOM's types.
/** RGB bytes of a canvas at its own resolution. */
async function canvasPixels(page: Page, selector: string): Promise<Buffer> {
  const values = await page.evaluate<number[]>(`(() => {
    const c = document.querySelector(${JSON.stringify(selector)});
    return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data);
  })()`);
  const rgb = Buffer.alloc((values.length / 4) * 3);
  for (let i = 0, j = 0; i < values.length; i += 4, j += 3) {
    rgb[j] = values[i]!;
    rgb[j + 1] = values[i + 1]!;
    rgb[j + 2] = values[i + 2]!;
  }
  return rgb;
}

/** Pixels of a chart's canvas that are neither white nor transparent: something was drawn. */
async function inkedPixels(page: Page, chart: string): Promise<number> {
  return page.evaluate<number>(`(() => {
    const c = document.querySelector(${JSON.stringify(`${chart} canvas`)});
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 0 && (d[i] < 200 || d[i + 1] < 200 || d[i + 2] < 200)) n++;
    return n;
  })()`);
}

async function apiReconstruction(length: number, image: Buffer): Promise<Buffer> {
  const tokens = await fetch(`${s.url}/v1/tokenize?mode=fixed&maxTokens=${length}`, { method: 'POST', body: image, headers: { 'content-type': 'image/jpeg', accept: 'application/octet-stream' } });
  const png = await fetch(`${s.url}/v1/reconstruct`, { method: 'POST', body: Buffer.from(await tokens.arrayBuffer()), headers: { 'content-type': 'application/octet-stream' } });
  return sharp(Buffer.from(await png.arrayBuffer())).raw().toBuffer();
}

browserTest(`explorer: upload a photo, read the EOS length and charts, move the slider${why}`, async (t) => {
  const { page, errors } = await openPage();
  await page.goto(`${s.url}/`);
  await page.waitForSelector('body[data-state=idle]');
  const m = s.tokenizer.model;
  t.regex(await page.textContent('#model-info') ?? '', new RegExp(`up to ${m.maxTokens} tokens of ${m.tokenDim}`));
  t.is(await page.isVisible('#question'), m.isQDove, 'the question box only for a Q-DOVE');
  await page.setInputFiles('#file', SAMPLE_JPG);
  await page.waitForSelector('body[data-state=ready]', { timeout: 120_000 });

  const image = readFileSync(SAMPLE_JPG);
  const expected = await s.tokenizer.tokenize(image);
  t.is(await page.textContent('#chosen'), String(expected.length));
  t.is(await page.getAttribute('#length', 'max'), String(m.maxTokens));
  t.is(await page.inputValue('#length'), String(expected.length), 'the slider starts at the EOS choice');
  t.is(await page.getAttribute('#eos-chart', 'data-points'), String(m.maxTokens));
  t.is(await page.getAttribute('#quality-chart', 'data-points'), String(m.maxTokens));
  t.true((await inkedPixels(page, '#eos-chart')) > 500, 'the p(EOS) chart is drawn');
  t.true((await inkedPixels(page, '#quality-chart')) > 500, 'the quality chart is drawn');

  // Keyboard on the slider: Home = 1 token, then three steps right = 4 tokens.
  await page.focus('#length');
  await page.keyboard.press('Home');
  t.is(await page.textContent('#length-value'), '1');
  const one = await canvasPixels(page, '#recon');
  for (let i = 0; i < 3; i++) await page.keyboard.press('ArrowRight');
  t.is(await page.inputValue('#length'), '4');
  t.is(await page.textContent('#length-value'), '4');
  t.regex(await page.textContent('#psnr-value') ?? '', /^\d+\.\d\d$/);
  const four = await canvasPixels(page, '#recon');
  t.is(four.length, m.imageSize * m.imageSize * 3);
  t.true(maxAbsDiff(four, await apiReconstruction(4, image)) <= 2, 'the canvas shows the 4-token reconstruction');
  t.true(maxAbsDiff(one, await apiReconstruction(1, image)) <= 2, 'and showed the 1-token one before');
  t.not(maxAbsDiff(one, four), 0, 'the slider changed the picture');
  t.true((await page.getAttribute('#download-grid', 'href'))!.startsWith('data:image/png;base64,'));
  // The tokens button downloads the slider's length as safetensors.
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download-tokens')]);
  t.is(download.suggestedFilename(), 'sample-4-tokens.safetensors');
  const saved = join(tmp.dir, 'tokens.safetensors');
  await download.saveAs(saved);
  const file = await readSafetensors(saved);
  t.deepEqual(file.tensors.get('tokens')!.shape, [1, 4, m.tokenDim]);
  const four4 = await s.tokenizer.tokenize(image, { mode: 'fixed', maxTokens: 4 });
  t.true(maxAbsDiff(file.tensors.get('tokens')!.data as Float32Array, four4.tokens) < 1e-5);

  const shot = join(tmp.dir, 'explorer.png');
  await page.screenshot({ path: shot, fullPage: true });
  const meta = await sharp(shot).metadata();
  t.is(meta.width, 1280);
  t.true((meta.height ?? 0) >= 1000);
  t.deepEqual(errors, []);
  await page.close();
});

browserTest(`explorer: several images fill the table of EOS lengths and the histogram${why}`, async (t) => {
  const files = [SAMPLE_JPG];
  for (let i = 0; i < 2; i++) {
    const file = join(tmp.dir, `pattern-${i}.png`);
    writeFileSync(file, await pngOf(80 + 16 * i, 64, i));
    files.push(file);
  }
  const { page, errors } = await openPage();
  await page.goto(`${s.url}/`);
  await page.waitForSelector('body[data-state=idle]');
  await page.setInputFiles('#file', files);
  await page.waitForSelector('body[data-state=ready]', { timeout: 120_000 });
  const rows = await page.evaluate<string[][]>(`Array.from(document.querySelectorAll('#lengths-table tbody tr'), (tr) => Array.from(tr.cells, (td) => td.textContent))`);
  t.is(rows.length, 3);
  for (let i = 0; i < files.length; i++) {
    const expected = await s.tokenizer.tokenize(files[i]!);
    t.is(rows[i]![1], String(expected.length), files[i]);
  }
  t.is(await page.getAttribute('#histogram', 'data-points'), '3');
  t.true((await inkedPixels(page, '#histogram')) > 100, 'the histogram is drawn');
  t.deepEqual(errors, []);
  await page.close();
});

browserTest(`explorer on a Q-DOVE model: the question box appears and the question reaches the model${why}`, async (t) => {
  const q = await startServer(TINY_QDOVE);
  t.teardown(() => q.close());
  const { page, errors } = await openPage();
  await page.goto(`${q.url}/`);
  await page.waitForSelector('body[data-state=idle]');
  t.true(await page.isVisible('#question'));
  const asked = 'what colour is the roof?';
  await page.fill('#question', asked);
  await page.setInputFiles('#file', SAMPLE_JPG);
  await page.waitForSelector('body[data-state=ready]', { timeout: 120_000 });
  const expected = await q.tokenizer.tokenize(readFileSync(SAMPLE_JPG), { query: asked });
  t.is(await page.textContent('#chosen'), String(expected.length));
  t.deepEqual(errors, []);
  await page.close();
});

browserTest(`run monitor: the loss curve of a run still training grows on the page${why}`, async (t) => {
  const out = join(tmp.dir, 'run');
  const training = startTraining(out);
  t.teardown(() => training.stop());
  const monitor = await startServer(undefined, { runs: [await waitFor('the run folder', () => (existsSync(out) ? out : undefined), 60_000)] });
  t.teardown(() => monitor.close());
  const { page, errors } = await openPage();
  await page.goto(`${monitor.url}/runs`);
  const points = async (): Promise<number> => Number((await page.getAttribute('#loss-chart', 'data-points')) ?? '0');
  const first = await waitFor('two points on the curve', async () => ((await points()) >= 2 ? points() : undefined), 180_000);
  const later = await waitFor('the curve to grow', async () => {
    const n = await points();
    return n > first ? n : undefined;
  }, 180_000);
  t.true(later > first, `${first} -> ${later} points`);
  t.is(training.child.exitCode, null, 'the run was still training');
  t.is(await page.textContent('#run-state'), 'training');
  t.true((await inkedPixels(page, '#loss-chart')) > 200, 'the curve is drawn');
  t.regex(await page.textContent('#run-facts') ?? '', /step \d+ of \d+/);
  const shot = join(tmp.dir, 'runs.png');
  await page.screenshot({ path: shot, fullPage: true });
  t.is((await sharp(shot).metadata()).width, 1280);
  t.deepEqual(errors, []);
  await page.close();
});
