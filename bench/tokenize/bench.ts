// Node side of bench/tokenize: images/s of tokenize + reconstruct from files on disk (decode
// included) through the public API, on the same export the Python side runs.
//   node dist/bench/tokenize/bench.js --model m.pt --images DIR --batch 16 [--seconds 10]
// Prints one JSON line like bench_python.py.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { loadBatch } from '../../lib/io/images';
import { Reconstructor } from '../../lib/model/reconstructor';
import { getNumThreads, setNumThreads } from '../../lib/core/runtime';
import { Tokenizer } from '../../lib/model/tokenizer';

function arg(name: string, fallback?: string): string {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? process.argv[i + 1] : fallback;
  if (v === undefined) throw new Error(`missing --${name}`);
  return v;
}

async function main(): Promise<void> {
  const model = arg('model');
  const dir = arg('images');
  const batch = Number(arg('batch', '1'));
  const seconds = Number(arg('seconds', '10'));
  const warmup = Number(arg('warmup', '2'));
  const warmupBatch = Number(arg('warmup-batch', String(batch)));
  const minImages = Number(arg('min-images', String(2 * batch)));
  const threads = Number(arg('threads', '0'));
  if (threads > 0) setNumThreads(threads);
  const files = readdirSync(dir).sort().map((f) => join(dir, f));
  const tokenizer = await Tokenizer.load(model);
  const reconstructor = new Reconstructor(tokenizer.model);
  const size = tokenizer.imageSize;
  const opts = { mode: 'auto' as const, budget: tokenizer.maxTokens, threshold: tokenizer.model.meta.eosThreshold, queries: undefined };
  const pick = (i: number, n = batch) => Array.from({ length: n }, (_, j) => files[(i + j) % files.length]!);

  // Decoding batch i+1 (sharp, libuv threads) overlaps the model's work on batch i (native worker).
  const step = async (pixels: Promise<Uint8Array>, i: number, prefetch: boolean, n = batch) => {
    const px = await pixels;
    const next = prefetch ? loadBatch(pick(i + n), { size }) : undefined;
    const tokens = await tokenizer.tokenizePixels(px, n, opts);
    const images = await reconstructor.reconstruct(tokens);
    if (images.length !== n || images[0]!.data.length !== size * size * 3) throw new Error('bad output');
    tokens.dispose();
    return { next };
  };
  // TorchScript's profiling executor optimises after the first calls: untimed warm-up runs.
  for (let w = 0; w < warmup; w++) await step(loadBatch(pick(0, warmupBatch), { size }), 0, false, warmupBatch);
  let done = 0;
  let i = 0;
  const start = performance.now();
  let pending: Promise<Uint8Array> | undefined = loadBatch(pick(0), { size });
  while ((performance.now() - start) / 1000 < seconds || done < minImages) {
    pending = (await step(pending!, i, true)).next;
    i += batch;
    done += batch;
  }
  const elapsed = (performance.now() - start) / 1000;
  await pending?.catch(() => undefined);
  process.stdout.write(`${JSON.stringify({ side: 'node', model: tokenizer.model.meta.configName, batch, images: done, seconds: Number(elapsed.toFixed(3)), images_per_s: Number((done / elapsed).toFixed(3)), threads: getNumThreads(), path: tokenizer.model.compiled !== null ? 'AOTInductor package' : 'TorchScript' })}\n`);
  tokenizer.dispose();
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});
