// A batch decoded (or encoded) in one call against the same batch in slices, through the public
// DoveModel on the path the API takes for the model (its compiled package or its TorchScript file),
// in alternating rounds: the measurement behind PIXELS_PER_CALL (lib/model/model-file.ts).
//
// node dist/bench/compiled/slices.js MODEL.pt [--op decode|encode] [--batch 16] [--slices 16,2,1] [--rounds 2] [--compiled true|false]
// Prints img/s per slice size and round, each slice size's median ratio to one call (min-max over rounds),
// and the peak RSS after decoding one image per call, then after the rounds (one call of the batch among them).
import { DoveModel } from '../../lib/model/model-file';
import { Tensor } from '../../lib/core/tensor';
import { roundRatio } from '../lib/ratios';

function option(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}

/** Decodes `tokens` / `lengths` `slice` images per call, the way a caller without slicing would split them. */
async function decodeIn(model: DoveModel, tokens: Tensor, lengths: Tensor, slice: number): Promise<number> {
  const batch = tokens.shape[0]!;
  const start = process.hrtime.bigint();
  for (let i = 0; i < batch; i += slice) {
    const views = [tokens.slice(i, Math.min(batch, i + slice)), lengths.slice(i, Math.min(batch, i + slice))] as const;
    const output = await model.decodeOnce(views[0], views[1]);
    Tensor.disposeAll([output, ...views]);
  }
  return batch / (Number(process.hrtime.bigint() - start) / 1e9);
}

/** Encodes `pixels` `slice` images per call (all slots, fixed budget). */
async function encodeIn(model: DoveModel, pixels: Tensor, slice: number): Promise<number> {
  const batch = pixels.shape[0]!;
  const start = process.hrtime.bigint();
  for (let i = 0; i < batch; i += slice) {
    const view = pixels.slice(i, Math.min(batch, i + slice));
    const out = await model.encodeOnce(view, 'fixed', model.maxTokens, 0.5);
    Tensor.disposeAll([view, out.tokens, out.eosProbabilities, out.lengths]);
  }
  return batch / (Number(process.hrtime.bigint() - start) / 1e9);
}

async function main(): Promise<void> {
  const path = process.argv[2];
  if (path === undefined || path.startsWith('--')) throw new Error('usage: node dist/bench/compiled/slices.js MODEL.pt [--batch 16] [--slices 16,2,1] [--rounds 2]');
  const batch = Number(option('batch', '16'));
  const slices = option('slices', `${batch},2,1`).split(',').map(Number);
  const rounds = Number(option('rounds', '2'));
  const model = await DoveModel.load(path, { trustModel: true, compiled: option('compiled', 'true') === 'true' });
  try {
    const op = option('op', 'decode');
    if (op !== 'decode' && op !== 'encode') throw new Error(`Expected --op decode or encode but received ${op}`);
    console.log(`${path}: ${model.compiledNote}; ${op}, batch ${batch}`);
    const [k, d, px] = [model.maxTokens, model.tokenDim, model.imageSize];
    const tokens = Tensor.fromArray(Float32Array.from({ length: batch * k * d }, (_, i) => Math.sin(i) * 0.5), [batch, k, d]);
    const lengths = Tensor.fromArray(new BigInt64Array(batch).fill(BigInt(k)), [batch], 'int64');
    const pixels = Tensor.fromArray(Uint8Array.from({ length: batch * px * px * 3 }, (_, i) => (i * 7919) % 256), [batch, px, px, 3], 'uint8');
    const run = (slice: number): Promise<number> => (op === 'encode' ? encodeIn(model, pixels, slice) : decodeIn(model, tokens, lengths, slice));
    // Peak RSS (the process's high-water mark) after one image per call, then after all rounds.
    const peakMb = (): string => (process.resourceUsage().maxRSS / 1024).toFixed(0);
    await run(1);
    console.log(`peak RSS after one image per call: ${peakMb()} MB`);
    const rates = new Map<number, number[]>(slices.map((s) => [s, []]));
    for (let r = 0; r < rounds; r++) {
      for (const s of r % 2 === 0 ? slices : [...slices].reverse()) {
        const rate = await run(s);
        rates.get(s)!.push(rate);
        console.log(`round ${r + 1}: ${s} per call: ${rate.toFixed(3)} img/s`);
      }
    }
    const whole = rates.get(batch) ?? rates.get(slices[0]!)!;
    for (const [s, v] of rates) console.log(`${s} per call: ratio to one call ${roundRatio(v, whole)} (median, min–max over rounds)`);
    console.log(`peak RSS after every round (${slices.join(', ')} per call): ${peakMb()} MB`);
    Tensor.disposeAll([tokens, lengths, pixels]);
  } finally {
    model.dispose();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
