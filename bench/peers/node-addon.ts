// Section child: our addon (binding.d.ts) running the TorchScript export, one row per (case, op).
// encode = encode(images, K=maxTokens); decode = decode(tokens, lengths=K); encode+decode = both in a
// row with the tokens handed over inside JS (zero copy); train = one AdamW step via the train engine.
import { readFileSync, writeFileSync } from 'node:fs';
import type { NativeBinding, NativeModule, NativeTensor } from '../../binding';
import { disposeAll, loadBinding, seededFloats, tensorAt } from '../lib/addon';
import { sectionArgs } from '../lib/child';
import { errorText, toRow, type CaseSpec, type Op, type Plan, type SectionOutput } from '../lib/schema';
import { timeLoop } from '../lib/timing';

function int64s(n: number, value: number): BigInt64Array {
  return new BigInt64Array(n).fill(BigInt(value));
}

/**
 * On CUDA a method returns once its kernels are queued; copying the output the caller would read
 * (eos logits, images) to the CPU waits for them. The python peers copy the same tensors.
 */
function settle(binding: NativeBinding, t: NativeTensor, device: string): void {
  if (device !== 'cpu') binding.tensorDispose(binding.tensorTo(t, 'cpu', null));
}

async function opBody(
  binding: NativeBinding,
  mod: NativeModule,
  c: CaseSpec,
  op: Op,
  seed: number,
  device: string,
): Promise<{ body: () => Promise<void>; done: () => void }> {
  const { imageSize: s, maxTokens: k, tokenDim: d } = c.model;
  const b = c.batch;
  const onDevice = (t: NativeTensor): NativeTensor => {
    if (device === 'cpu') return t;
    const moved = binding.tensorTo(t, device, null);
    binding.tensorDispose(t);
    return moved;
  };
  const images = onDevice(binding.tensorFromArray(seededFloats(b * 3 * s * s, seed), [b, 3, s, s], 'float32'));
  const tokens = onDevice(binding.tensorFromArray(seededFloats(b * k * d, seed + 1, 2, -1), [b, k, d], 'float32'));
  const lengths = onDevice(binding.tensorFromArray(int64s(b, k), [b], 'int64'));
  const held: NativeTensor[] = [images, tokens, lengths];
  const done = (): void => held.forEach((t) => binding.tensorDispose(t));
  if (op === 'encode') {
    return {
      body: async () => {
        const enc = await mod.run('encode', [images, k]);
        settle(binding, tensorAt(enc, 1, 'encode'), device);
        disposeAll(enc);
      },
      done,
    };
  }
  if (op === 'decode') {
    return {
      body: async () => {
        const out = await mod.run('decode', [tokens, lengths]);
        if (!binding.isTensor(out)) throw new Error('decode returned no tensor');
        settle(binding, out, device);
        disposeAll(out);
      },
      done,
    };
  }
  if (op === 'encode+decode') {
    return {
      body: async () => {
        const enc = await mod.run('encode', [images, k]);
        const out = await mod.run('decode', [tensorAt(enc, 0, 'encode'), lengths]);
        if (!binding.isTensor(out)) throw new Error('decode returned no tensor');
        settle(binding, out, device);
        disposeAll(out);
        disposeAll(enc);
      },
      done,
    };
  }
  // Same optimizer settings as the python loop (bench/peers/python_torch.py): AdamW(0.9, 0.95),
  // lr 1e-4 (VQGAN x0.1), weight decay 0.01, clip 1.0; bf16 autocast on CUDA as the Trainer does.
  mod.train(true);
  const engine = binding.createTrainEngine(mod, {
    lr: 1e-4,
    betas: [0.9, 0.95],
    eps: 1e-8,
    groups: [{ prefixes: ['vqgan.'], lrScale: 0.1, weightDecay: 0.01 }],
    weightDecay: 0.01,
    warmupSteps: 0,
    totalSteps: 1_000_000,
    minLrRatio: 0.1,
    clipGradNorm: 1.0,
    accumulate: 1,
    autocastBf16: device !== 'cpu',
    seed,
  });
  return {
    body: async () => {
      await engine.trainStep([images]);
    },
    done: () => {
      engine.dispose();
      mod.train(false);
      done();
    },
  };
}

async function main(): Promise<void> {
  const args = sectionArgs(process.argv);
  const plan = JSON.parse(readFileSync(args.plan, 'utf8')) as Plan;
  const device = plan.device ?? 'cpu';
  const binding = loadBinding(device);
  binding.setNumThreads(plan.threads);
  binding.manualSeed(plan.seed);
  const v = binding.versions();
  const out: SectionOutput = {
    runtime: 'node-addon',
    versions: { addon: v.addon, libtorch: v.libtorch, node: process.version, napi: String(v.napi), optimize: String(process.env.DOVE_BENCH_OPTIMIZE !== '0') },
    threads: binding.getNumThreads(),
    device,
    rows: [],
    errors: [],
  };
  // Inference rows run the module the Tokenizer / Reconstructor load (optimize: true, docs/API.md;
  // DOVE_BENCH_OPTIMIZE=0 measures the file as is); train rows the trainable one, as the Trainer loads it.
  const optimize = process.env.DOVE_BENCH_OPTIMIZE !== '0';
  const modules = new Map<string, NativeModule>();
  const moduleFor = async (pt: string, train: boolean): Promise<NativeModule> => {
    const key = `${pt}\0${train || !optimize ? 'plain' : 'optimized'}`;
    let mod = modules.get(key);
    if (mod === undefined) {
      mod = await binding.loadModule(pt, device, ['dove.json'], !train && optimize);
      modules.set(key, mod);
    }
    return mod;
  };
  for (const c of plan.cases) {
    for (const op of c.ops) {
      try {
        const mod = await moduleFor(c.model.pt, op === 'train');
        const { body, done } = await opBody(binding, mod, c, op, plan.seed, device);
        try {
          const stats = await timeLoop(c.loop, body);
          const row = toRow('node-addon', c, op, stats);
          out.rows.push(row);
          console.log(`${c.model.config} b${c.batch} ${op}: ${row.medianMs.toFixed(1)} ms, ${row.imagesPerSec.toFixed(2)} img/s`);
        } finally {
          done();
        }
      } catch (e) {
        out.errors.push({ runtime: 'node-addon', config: c.model.config, batch: c.batch, op, error: errorText(e) });
        console.error(`${c.model.config} b${c.batch} ${op}: ${errorText(e)}`);
      }
      writeFileSync(args.out, JSON.stringify(out, null, 2));
    }
  }
  modules.forEach((m) => m.dispose());
  writeFileSync(args.out, JSON.stringify(out, null, 2));
}

main().catch((e: unknown) => {
  console.error(errorText(e));
  process.exitCode = 1;
});
