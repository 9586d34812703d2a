// bench/memory: what loading the addon and the embedded model costs a CPU process: RSS (VmRSS)
// after Tokenizer.load(), and the CUDA libraries in /proc/self/maps, in a fresh process.
//   node dist/bench/memory/load-rss.js [PACKAGE]
// PACKAGE: the dove-encoder entry to require (default: this checkout's dist/lib/index.js; another
// checkout's dist/lib/index.js or an installed node_modules/dove-encoder compares the two).
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { CUDA_LIBRARY_FILE } from '../../lib/core/cuda-libtorch';

interface Dove {
  Tokenizer: { load(): Promise<{ dispose(): void }> };
  versions(): { libtorchPath: string };
}


function rssMiB(): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? NaN) / 1024;
}

function mapped(): string[] {
  return [...new Set(readFileSync('/proc/self/maps', 'utf8').split('\n').map((l) => l.split(/\s+/)[5] ?? '').filter((p) => p.startsWith('/')))];
}

async function main(): Promise<void> {
  const entry = resolve(process.argv[2] ?? join(__dirname, '..', '..', 'lib', 'index.js'));
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const dove = require(entry) as Dove;
  const before = rssMiB();
  const started = process.hrtime.bigint();
  const tokenizer = await dove.Tokenizer.load();
  const loadMs = Number(process.hrtime.bigint() - started) / 1e6;
  const cuda = mapped().filter((p) => CUDA_LIBRARY_FILE.test(p));
  // The stand-ins carry two CUDA names; they live in a cuda-stubs folder and are a few KB.
  const real = cuda.filter((p) => !/\/cuda-stubs\//.test(p));
  console.log(JSON.stringify({ entry, rssBeforeMiB: +before.toFixed(1), rssAfterLoadMiB: +rssMiB().toFixed(1), loadMs: Math.round(loadMs),
    cudaLibrariesMapped: real.length, standInsMapped: cuda.length - real.length, libtorchPath: dove.versions().libtorchPath }));
  tokenizer.dispose();
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? (e.stack ?? e.message) : String(e));
  process.exitCode = 1;
});
