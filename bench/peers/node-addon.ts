// Runtime worker (bench/lib/worker.ts): our addon through binding.d.ts, the layer the public API sits on.
//   --runtime node-addon  the TorchScript export: encode(images, K=maxTokens), decode(tokens, lengths=K),
//                         both in a row (tokens handed over inside JS, zero copy), and one AdamW step
//                         with the C++ train engine
//   --runtime node-aoti   the export's AOTInductor package (<model>.aoti.pt2, python -m dove.export
//                         --compiled), what the Tokenizer / Reconstructor run when it matches the file:
//                         encode(uint8 pixels) and decode(tokens, lengths) -> uint8 pixels. Inference only.
import type { IValue, NativeBinding, NativeCompiledPackage, NativeModule, NativeTensor } from '../../binding';
import { batchOneMethods, modelFor, packageModels, type CompiledMethod } from '../../lib/model/compiled';
import { inSlices, loadBinding, seededFloats, tensorAt } from '../lib/addon';
import type { CaseSpec, Op } from '../lib/schema';
import { serveWorker, type Prepared, type RuntimeWorker } from '../lib/worker';

function int64s(n: number, value: number): BigInt64Array {
  return new BigInt64Array(n).fill(BigInt(value));
}

function runtimeArg(): 'node-addon' | 'node-aoti' {
  const i = process.argv.indexOf('--runtime');
  const v = i >= 0 ? process.argv[i + 1] : 'node-addon';
  if (v !== 'node-addon' && v !== 'node-aoti') throw new Error(`Expected --runtime node-addon or node-aoti but received ${String(v)}`);
  return v;
}

/**
 * On CUDA a method returns once its kernels are queued; copying the output the caller would read
 * (eos logits, images) to the CPU waits for them. The python peers copy the same tensors.
 */
function settle(binding: NativeBinding, t: NativeTensor, device: string): void {
  if (device !== 'cpu') binding.tensorDispose(binding.tensorTo(t, 'cpu', null));
}

interface Inputs {
  images: NativeTensor;
  tokens: NativeTensor;
  lengths: NativeTensor;
  done: () => void;
}

function inputs(binding: NativeBinding, c: CaseSpec, seed: number, device: string): Inputs {
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
  return { images, tokens, lengths, done: () => [images, tokens, lengths].forEach((t) => binding.tensorDispose(t)) };
}

function scriptedBody(binding: NativeBinding, mod: NativeModule, c: CaseSpec, op: Op, seed: number, device: string): Prepared {
  const k = c.model.maxTokens;
  const { images, tokens, lengths, done } = inputs(binding, c, seed, device);
  // Encoded and decoded in the slices the API uses (inSlices), as the compiled rows are.
  const s = c.model.imageSize;
  const encode = (): Promise<void> => inSlices([images], s, device, (im) => mod.run('encode', [im, k]), (enc) => settle(binding, tensorAt(enc, 1, 'encode'), device));
  const decode = (t: NativeTensor, l: NativeTensor = lengths): Promise<void> => inSlices([t, l], s, device, (tk, ls) => mod.run('decode', [tk, ls]), (out) => {
    if (!binding.isTensor(out)) throw new Error('decode returned no tensor');
    settle(binding, out, device);
  });
  if (op === 'encode') return { body: encode, done };
  if (op === 'decode') return { body: () => decode(tokens), done };
  if (op === 'encode+decode') {
    // Slice by slice: each slice's tokens decoded right after its encode.
    const both = async (im: NativeTensor, l: NativeTensor): Promise<IValue> => {
      const enc = await mod.run('encode', [im, k]);
      await decode(tensorAt(enc, 0, 'encode'), l);
      return enc;
    };
    return { body: () => inSlices([images, lengths], s, device, both), done };
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

/**
 * The compiled models take what the Tokenizer and Reconstructor hand them: uint8 pixels (B,S,S,3) in,
 * uint8 pixels out (the conversions the TorchScript rows leave out cost a few elementwise passes).
 */
function compiledBody(binding: NativeBinding, pkg: NativeCompiledPackage, batchOne: readonly CompiledMethod[], c: CaseSpec, op: Op, seed: number): Prepared {
  const { imageSize: s, maxTokens: k, tokenDim: d } = c.model;
  const b = c.batch;
  const bytes = new Uint8Array(b * s * s * 3);
  seededFloats(bytes.length, seed, 256).forEach((v, i) => (bytes[i] = Math.floor(v)));
  const pixels = binding.tensorFromArray(bytes, [b, s, s, 3], 'uint8');
  const tokens = binding.tensorFromArray(seededFloats(b * k * d, seed + 1, 2, -1), [b, k, d], 'float32');
  const lengths = binding.tensorFromArray(int64s(b, k), [b], 'int64');
  const done = (): void => [pixels, tokens, lengths].forEach((t) => binding.tensorDispose(t));
  // Each slice runs the model the API picks for its batch (a batch-1 model where the package has one).
  const run = (method: CompiledMethod, inputs: NativeTensor[]): Promise<NativeTensor[]> => pkg.run(modelFor(method, binding.tensorShape(inputs[0]!)[0]!, batchOne), inputs);
  const decode = (t: NativeTensor, l: NativeTensor = lengths): Promise<void> => inSlices([t, l], s, 'cpu', (tk, ls) => run('decode', [tk, ls]));
  if (op === 'encode') return { body: () => inSlices([pixels], s, 'cpu', (px) => run('encode', [px])), done };
  if (op === 'decode') return { body: () => decode(tokens), done };
  if (op === 'encode+decode') {
    // Slice by slice: each slice's tokens decoded right after its encode.
    const both = async (px: NativeTensor, l: NativeTensor): Promise<IValue> => {
      const out = await run('encode', [px]);
      await decode(out[0]!, l);
      return out;
    };
    return { body: () => inSlices([pixels, lengths], s, 'cpu', both), done };
  }
  throw new Error('node-aoti runs inference only (the Trainer runs the TorchScript file)');
}

function aotiPath(pt: string): string {
  return `${pt.endsWith('.pt') ? pt.slice(0, -3) : pt}.aoti.pt2`;
}

function worker(runtime: 'node-addon' | 'node-aoti'): RuntimeWorker {
  const device = process.env.DOVE_BENCH_DEVICE ?? 'cpu';
  const binding = loadBinding(device);
  const threads = Number(process.env.OMP_NUM_THREADS ?? '2');
  binding.setNumThreads(threads);
  binding.manualSeed(0);
  // Inference rows run the module the Tokenizer / Reconstructor load (optimize: true, docs/API.md;
  // DOVE_BENCH_OPTIMIZE=0 measures the file as is); train rows the trainable one, as the Trainer loads it.
  const optimize = process.env.DOVE_BENCH_OPTIMIZE !== '0';
  const modules = new Map<string, NativeModule>();
  const compiled = new Map<string, { models: NativeCompiledPackage; batchOne: CompiledMethod[] }>();
  const v = binding.versions();
  return {
    info: () => ({
      versions: { addon: v.addon, libtorch: v.libtorch, node: process.version, napi: String(v.napi), ...(runtime === 'node-addon' ? { optimize: String(optimize) } : { path: 'AOTInductor' }) },
      threads: binding.getNumThreads(),
    }),
    async prepare(c, op) {
      if (runtime === 'node-aoti') {
        const path = aotiPath(c.model.pt);
        let pkg = compiled.get(path);
        if (pkg === undefined) {
          // The Tokenizer loads the TorchScript file beside its package (optimize: true, which installs the
          // CPU block cache for the whole process), so the package's allocations go through that cache: so here.
          if (optimize && !modules.has(c.model.pt)) modules.set(c.model.pt, await binding.loadModule(c.model.pt, device, ['dove.json'], true));
          // The bench's own freshly exported packages: trusted (the Tokenizer needs trustModel: true for the same).
          const batchOne = batchOneMethods((await binding.compiledMetadata(path, 'encode'))['dove.batch_one']);
          if (batchOne === null) throw new Error(`${path}: dove.batch_one names methods other than encode and decode`);
          pkg = { models: await binding.loadCompiled(path, packageModels(batchOne), device, true), batchOne };
          compiled.set(path, pkg);
        }
        return compiledBody(binding, pkg.models, pkg.batchOne, c, op, 0);
      }
      const train = op === 'train';
      const key = `${c.model.pt}\0${train || !optimize ? 'plain' : 'optimized'}`;
      let mod = modules.get(key);
      if (mod === undefined) {
        mod = await binding.loadModule(c.model.pt, device, ['dove.json'], !train && optimize);
        modules.set(key, mod);
      }
      return scriptedBody(binding, mod, c, op, 0, device);
    },
    close() {
      modules.forEach((m) => m.dispose());
      compiled.forEach((pkg) => pkg.models.dispose());
    },
  };
}

serveWorker(worker(runtimeArg())).catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
  process.exitCode = 1;
});
