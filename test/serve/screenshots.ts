// The two screenshots in the README, taken with headless chromium:
//
//   node dist/test/serve/screenshots.js [docs/images]
//
// The explorer on the embedded model with assets/sample.jpg loaded and the slider moved off the EOS
// choice, and the run monitor on a `dove train` that is still running: the embedded model fine-tuned
// on 64 of the wallpaper crops `bash scripts/get-data` prepares (the training fixtures' flat test
// images when those are absent).
import { copyFileSync, existsSync, mkdirSync, readdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright-core';
import { ROOT, tempDir } from '../api/helpers';
import { chromiumPath, SAMPLE_JPG, startServer, startTraining, waitFor } from './helpers';

async function main(): Promise<void> {
  const outDir = resolve(process.argv[2] ?? join(ROOT, 'docs', 'images'));
  mkdirSync(outDir, { recursive: true });
  const executable = chromiumPath();
  if (executable === undefined) throw new Error('No chromium: apt-get install chromium, or set CHROMIUM=/path');
  const tmp = tempDir('shots');
  const runDir = join(tmp.dir, 'embedded-finetune');
  const crops = join(process.env.DOVE_DATA ?? join(homedir(), '.cache', 'dove-encoder', 'data'), 'crops-64', 'train');
  let images: string | undefined;
  if (existsSync(crops)) {
    images = join(tmp.dir, 'photos');
    mkdirSync(images);
    for (const name of readdirSync(crops).filter((n) => n.endsWith('.png')).sort().slice(0, 64)) copyFileSync(join(crops, name), join(images, name));
  }
  const training = startTraining(runDir, { model: join(ROOT, 'models', 'dove-tiny.pt'), images, epochs: 40, batchSize: 8, threads: 2, sampleImages: 4, extra: ['--lr', '3e-5'] });
  const browser = await chromium.launch({ executablePath: executable, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
  try {
    await waitFor('the run folder', () => (existsSync(runDir) ? true : undefined), 60_000);
    const s = await startServer(undefined, { runs: [runDir] });
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
      await page.goto(`${s.url}/`);
      await page.waitForSelector('body[data-state=idle]');
      await page.setInputFiles('#file', SAMPLE_JPG);
      await page.waitForSelector('body[data-state=ready]', { timeout: 300_000 });
      const chosen = Number(await page.textContent('#chosen'));
      const target = Math.max(1, Math.round(chosen / 3));
      await page.focus('#length');
      for (let i = chosen; i > target; i--) await page.keyboard.press('ArrowLeft');
      await page.screenshot({ path: join(outDir, 'serve-explorer.png'), fullPage: true });
      process.stdout.write(`serve-explorer.png: EOS ${chosen}, slider at ${await page.inputValue('#length')}\n`);

      const runs = await browser.newPage({ viewport: { width: 1280, height: 1100 } });
      await runs.goto(`${s.url}/runs`);
      const points = async (): Promise<number> => Number((await runs.getAttribute('#loss-chart', 'data-points')) ?? '0');
      await waitFor('two epoch grids and 24 steps', async () => ((await points()) >= 24 && (await runs.$$('#grids img')).length >= 2 ? true : undefined), 1_800_000, 1000);
      await runs.waitForTimeout(1500);
      if (training.child.exitCode !== null) throw new Error('the training run ended before the screenshot');
      await runs.screenshot({ path: join(outDir, 'serve-runs.png'), fullPage: true });
      process.stdout.write(`serve-runs.png: ${await points()} steps, ${await runs.textContent('#run-state')}\n`);
    } finally {
      await s.close();
    }
  } finally {
    await browser.close();
    await training.stop();
    tmp.cleanup();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});
