// bench/memory: RSS over N single-image tokenize calls (PNG decode + resize + encode + EOS lengths)
// on the tiny model, in a fresh process. Results are dropped right away, as an application would, and
// left to the GC: "flat after warm-up" has to hold without explicit dispose().
//   node dist/bench/memory/tokenize-rss.js --plan plan.json --out out.json
//   plan: { model, calls, every, warmup, threads }
import { readFileSync, writeFileSync } from 'node:fs';
import { Tokenizer } from '../../lib/model/tokenizer';
import { loadBinding } from '../lib/addon';
import { sectionArgs } from '../lib/child';
import { seededPngs } from '../lib/images';
import { sample, summarizeRss } from '../lib/rss';
import type { MemorySample } from '../lib/schema';

interface RssPlan {
  model: string;
  calls: number;
  every: number;
  warmup: number;
  threads: number;
}

async function main(): Promise<void> {
  const args = sectionArgs(process.argv);
  const plan = JSON.parse(readFileSync(args.plan, 'utf8')) as RssPlan;
  loadBinding().setNumThreads(plan.threads);
  const tokenizer = await Tokenizer.load(plan.model);
  const images = await seededPngs(8, 80, 72);
  const samples: MemorySample[] = [sample(0)];
  const started = Date.now();
  for (let i = 1; i <= plan.calls; i++) {
    const t = await tokenizer.tokenize(images[i % images.length], { mode: 'auto' });
    if (t.length < 1) throw new Error(`tokenize returned length ${t.length}`);
    if (i % plan.every === 0) {
      samples.push(sample(i));
      if (i % (plan.every * 10) === 0) console.log(`${i} calls, RSS ${samples[samples.length - 1].rssMiB.toFixed(1)} MiB`);
    }
  }
  const result = summarizeRss('tokenize (tiny, 80x72 PNG, auto mode)', samples, plan.calls, plan.warmup, (Date.now() - started) / 1000);
  tokenizer.dispose();
  writeFileSync(args.out, JSON.stringify(result, null, 2));
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? (e.stack ?? e.message) : String(e));
  process.exitCode = 1;
});
