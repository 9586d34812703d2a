import { promises as fs } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from '../command';
import { asUsage, checkIntRange, getFlag, getNumber, getString, MODEL_OPTIONS, MODEL_OPTIONS_HELP, parseArgs, UsageError, withUsage } from '../args';
import { appendAll, maxOf, minOf } from '../../base/arrays';
import { DoveError } from '../../base/errors';
import { writeReport } from '../../eval/report';
import { displayPath, fsPath, listImageFiles } from '../../base/files';
import { loadReadable, type ResizeFit } from '../../io/images';
import { serializeSafetensors } from '../../io/safetensors';
import { Tokenizer, resolveTokenizeOptions, type LengthMode } from '../../model/tokenizer';

const SPECS = {
  ...MODEL_OPTIONS,
  mode: { type: 'string', choices: ['auto', 'fixed', 'capped'] },
  'max-tokens': { type: 'int' },
  question: { type: 'string', alias: 'q' },
  'batch-size': { type: 'int', min: 1, max: 1024 },
  json: { type: 'flag' },
  output: { type: 'string', alias: 'o' },
} as const;

const help = `Usage: dove tokenize <images or folders...> -o tokens.safetensors [options]

Turns images into DOVE tokens. The safetensors file holds:
  tokens             float32 (N, K, D), zero after each image's length (K = the longest length)
  lengths            int64 (N,)
  eos_probabilities  float32 (N, S), p(EOS) for each slot that was run
and metadata (images as a JSON list, model, mode, ...). Read it in Python with
  safetensors.numpy.load_file("tokens.safetensors")
With --json the same data is printed as JSON (or written to -o file.json), for small outputs.

Options:
  -o, --output <file>       .safetensors (or .json with --json) output path
      --json                JSON instead of safetensors (stdout when -o is not given)
      --mode <m>            auto (EOS chooses, default), fixed (exactly --max-tokens), capped (EOS, at most --max-tokens)
      --max-tokens <k>      budget, 1..maxTokens of the model (default maxTokens)
  -q, --question <text>     Q-DOVE query for every image
      --batch-size <n>      images per forward (default 8)
${MODEL_OPTIONS_HELP}

A folder argument stands for the image files directly inside it. Unreadable images are reported and
left out; the exit code is then 3.

Examples:
  dove tokenize photo.jpg other.png -o tokens.safetensors
  dove tokenize photos/ --mode fixed --max-tokens 32 -o tokens.safetensors
  dove tokenize photo.jpg --json
`;

async function expandInputs(paths: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const p of paths) {
    const stat = await fs.stat(fsPath(p)).catch(() => undefined);
    if (stat?.isDirectory()) appendAll(out, await listImageFiles(p, { everyEntry: true }));
    else out.push(p); // missing or odd files fail later with a message naming them
  }
  return out;
}

/** Refuses an --output that is one of the inputs (same file by device and inode, or by path). */
async function checkOutputIsNotInput(output: string, inputs: readonly string[]): Promise<void> {
  const target = await fs.stat(fsPath(output)).catch(() => undefined);
  const resolvedOutput = resolve(output);
  for (const input of inputs) {
    const same = target !== undefined
      ? await fs.stat(fsPath(input)).then((s) => s.dev === target.dev && s.ino === target.ino, () => false)
      : resolve(input) === resolvedOutput;
    if (same) throw new UsageError(`--output ${displayPath(output)} is also an input; choose another output path`);
  }
}

interface Row {
  image: string;
  length: number;
  tokens: Float32Array;
  eos: Float32Array;
}

async function run(argv: string[]): Promise<number> {
  return withUsage('tokenize', async () => {
    const args = parseArgs(argv, SPECS);
    if (args.positionals.length === 0) throw new UsageError('Expected at least one image or folder');
    const json = getFlag(args, 'json');
    const output = getString(args, 'output');
    if (!json && output === undefined) throw new UsageError('Missing -o/--output <tokens.safetensors> (or use --json)');
    if (!json && output !== undefined && !output.endsWith('.safetensors')) throw new UsageError(`Expected a .safetensors path for --output but received ${output} (use --json for JSON)`);
    const images = await expandInputs(args.positionals);
    if (images.length === 0) throw new UsageError(`No image files found in ${args.positionals.map(displayPath).join(', ')}`);
    if (output !== undefined) await checkOutputIsNotInput(output, images);

    const tokenizer = await Tokenizer.load(getString(args, 'model'), { device: getString(args, 'device') ?? 'cpu', trustModel: getFlag(args, 'trust-model') });
    const model = tokenizer.model;
    try {
      const maxTokens = getNumber(args, 'max-tokens');
      if (maxTokens !== undefined) checkIntRange([maxTokens], '--max-tokens', 1, model.maxTokens);
      const question = getString(args, 'question');
      if (question !== undefined) asUsage(() => model.requireQDove('--question'));
      const opts = resolveTokenizeOptions(model, 1, { mode: getString(args, 'mode') as LengthMode | undefined, maxTokens, threshold: getNumber(args, 'threshold') });
      const fit = getString(args, 'fit') as ResizeFit | undefined;
      const maxInputPixels = getNumber(args, 'max-input-pixels');
      const batchSize = getNumber(args, 'batch-size') ?? 8;
      const s = model.imageSize;
      const rows: Row[] = [];
      let failed = 0;
      for (let i = 0; i < images.length; i += batchSize) {
        const chunk = images.slice(i, i + batchSize);
        // At most 4 images decode at once (loadBatchSettled, under loadReadable), whatever the batch size.
        const { kept, pixels, failures } = await loadReadable(chunk, { size: s, fit, maxInputPixels });
        for (const f of failures) {
          failed++;
          process.stderr.write(`dove tokenize: skipped ${f.error.message}\n`);
        }
        const ok = kept.map((j) => chunk[j]!);
        if (ok.length === 0) continue;
        const queries = question === undefined ? undefined : ok.map(() => question);
        const batch = await tokenizer.tokenizePixels(pixels, ok.length, { ...opts, queries });
        // Copy out of the batch tensor: rows outlive it and are re-packed to the final padding.
        batch.items.forEach((item, j) => rows.push({ image: ok[j]!, length: item.length, tokens: Float32Array.from(item.tokens), eos: Float32Array.from(item.eosProbabilities) }));
        batch.dispose();
      }
      if (rows.length === 0) throw new DoveError(`None of the ${images.length} images could be read`, 'INVALID_IMAGE');

      const n = rows.length;
      const d = model.tokenDim;
      const k = maxOf(rows.map((r) => r.length));
      const slots = rows[0]!.eos.length;
      const tokens = new Float32Array(n * k * d);
      const eos = new Float32Array(n * slots);
      rows.forEach((r, i) => {
        tokens.set(r.tokens, i * k * d);
        eos.set(r.eos, i * slots);
      });
      const metadata = {
        format: 'dove-encoder/tokens',
        images: JSON.stringify(rows.map((r) => r.image)),
        model: model.path,
        configName: model.meta.configName,
        variant: model.meta.variant,
        mode: opts.mode,
        maxTokens: String(opts.budget),
        threshold: String(opts.threshold),
        imageSize: String(s),
        tokenDim: String(d),
        ...(question === undefined ? {} : { question }),
      };
      if (json) {
        const doc = {
          ...metadata,
          images: rows.map((r) => ({ image: r.image, length: r.length, tokens: Array.from({ length: r.length }, (_, t) => Array.from(r.tokens.subarray(t * d, (t + 1) * d))), eos_probabilities: Array.from(r.eos) })),
        };
        const text = JSON.stringify(doc) + '\n';
        if (output === undefined) process.stdout.write(text);
        else await writeReport(output, text);
      } else {
        await writeReport(output!, serializeSafetensors({
          tokens: { data: tokens, shape: [n, k, d] },
          lengths: { data: BigInt64Array.from(rows, (r) => BigInt(r.length)), shape: [n] },
          eos_probabilities: { data: eos, shape: [n, slots] },
        }, metadata));
      }
      if (output !== undefined) {
        process.stdout.write(`${displayPath(output)}: ${n} images, lengths ${minOf(rows.map((r) => r.length))}..${k} (${opts.mode}), ${d}-dim tokens${failed > 0 ? `, ${failed} failed` : ''}\n`);
      }
      return failed > 0 ? 3 : 0;
    } finally {
      tokenizer.dispose();
    }
  });
}

const command: Command = { name: 'tokenize', summary: 'turn images into DOVE tokens (safetensors or JSON)', help, specs: SPECS, run };
export default command;
