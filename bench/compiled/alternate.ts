// Two models called in turn (an encode, then a decode on another model object, as a Tokenizer and a
// Reconstructor do) against each model's calls back to back: shows whether a call pays for the
// other model's thread (native/openmp_team.h). Batch 1, 2 threads; both paths a user gets: the
// TorchScript file loaded twice, and the compiled package's encode and decode (one package object, one
// thread: native/compiled_model.cpp).
//   node dist/bench/compiled/alternate.js MODEL.pt [--calls 300] [--rounds 3]
import { existsSync } from 'node:fs';
import { disposeAll, loadBinding, seededFloats } from '../lib/addon';

type Call = () => Promise<void>;

async function msPerCall(f: Call, calls: number): Promise<number> {
  for (let i = 0; i < 20; i++) await f();
  const started = process.hrtime.bigint();
  for (let i = 0; i < calls; i++) await f();
  return Number(process.hrtime.bigint() - started) / 1e6 / calls;
}

async function report(name: string, encode: Call, decode: Call, calls: number, rounds: number): Promise<void> {
  for (let r = 0; r < rounds; r++) {
    const e = await msPerCall(encode, calls);
    const d = await msPerCall(decode, calls);
    const both = await msPerCall(async () => {
      await encode();
      await decode();
    }, calls);
    console.log(`${name}: encode ${e.toFixed(2)} ms, decode ${d.toFixed(2)} ms, sum ${(e + d).toFixed(2)} ms; in turn ${both.toFixed(2)} ms per pair (${(both / (e + d)).toFixed(2)}x the sum)`);
  }
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const pt = args.find((a) => !a.startsWith('--'));
  const flag = (name: string, fallback: number): number => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? Number(args[i + 1]) : fallback;
  };
  if (pt === undefined) throw new Error('Expected MODEL.pt (a DOVE export; its .aoti.pt2 beside it is used when present)');
  const calls = flag('calls', 300);
  const rounds = flag('rounds', 3);
  const b = loadBinding('cpu');
  b.setNumThreads(2);
  const first = await b.loadModule(pt, 'cpu', ['dove.json'], true);
  const second = await b.loadModule(pt, 'cpu', ['dove.json'], true);
  const meta = JSON.parse(first.extraFiles['dove.json'] ?? '{}') as { imageSize: number; maxTokens: number; tokenDim: number };
  const { imageSize: s, maxTokens: k, tokenDim: d } = meta;
  const lengths = b.tensorFromArray(new BigInt64Array([BigInt(k)]), [1], 'int64');
  const tokens = b.tensorFromArray(seededFloats(k * d, 1, 2, -1), [1, k, d], 'float32');
  const images = b.tensorFromArray(seededFloats(3 * s * s, 0), [1, 3, s, s], 'float32');
  await report(
    'TorchScript, two modules',
    async () => disposeAll(await first.run('encode', [images, k])),
    async () => disposeAll(await second.run('decode', [tokens, lengths])),
    calls,
    rounds,
  );
  const pkg = `${pt.slice(0, -3)}.aoti.pt2`;
  if (existsSync(pkg)) {
    const models = await b.loadCompiled(pkg, ['encode', 'decode'], 'cpu', true);
    const pixels = b.tensorFromArray(Uint8Array.from(seededFloats(s * s * 3, 2, 256), Math.floor), [1, s, s, 3], 'uint8');
    await report(
      'compiled encode and decode',
      async () => disposeAll(await models.run('encode', [pixels])),
      async () => disposeAll(await models.run('decode', [tokens, lengths])),
      calls,
      rounds,
    );
  }
}

main()
  .then(() => process.exit(0))
  .catch((e: unknown) => {
    console.error(e instanceof Error ? (e.stack ?? e.message) : String(e));
    process.exit(1);
  });
