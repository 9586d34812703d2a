import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from '../command';
import { getFlag, getNumber, getString, MODEL_FILE_OPTIONS, parseArgs, UsageError, withUsage } from '../args';
import { ProgressBar } from '../progress';
import { histogramPng } from '../../render/plot';
import { formatNumber, toCsv, writeReport } from '../../eval/report';
import { folderLengths, lengthStats, readLengthsCsv, type ImageLength } from '../../eval/stats';
import { Tokenizer } from '../../model/tokenizer';

const SPECS = {
  ...MODEL_FILE_OPTIONS,
  threshold: { type: 'float', min: 0, max: 1 },
  'max-tokens': { type: 'int', min: 1, max: 4096 },
  'batch-size': { type: 'int', min: 1, max: 1024 },
  plot: { type: 'string' },
  csv: { type: 'string' },
  quiet: { type: 'flag' },
} as const;

const help = `Usage: dove stats <dir> [--model m.pt] [--plot lengths.png] [--csv lengths.csv]
       dove stats <reconstruct-batch-output>/lengths.csv --max-tokens N

How many tokens the EOS head spends per image: every image in <dir> is encoded in auto mode and its
length recorded. Prints count, mean, median, min, max, std and the compression against the maximum
(1 - mean/maxTokens: the share of tokens saved compared with always using all of them; the paper
reports about 68% for Q-DOVE), and writes a histogram PNG. Given the lengths.csv written by
\`dove reconstruct-batch\` (or a folder holding one, without --model), it reads the lengths from there.

Options:
  -m, --model <file.pt>     DOVE export (default: the embedded model)
      --threshold <p>       EOS threshold (default: the model's)
      --max-tokens <n>      maximum for the compression figure when reading a CSV (default: the
                            model's maxTokens; required without a model)
      --batch-size <n>      images per forward (default 16)
      --plot <file.png>     histogram (default: lengths-hist.png in the current folder)
      --csv <file>          per-image lengths (image,eos_length)
      --device <dev>        cpu (default), cuda, cuda:N
      --trust-model         load a model whose TorchScript touches files or the process (docs/MODEL_FORMAT.md)
      --quiet               no progress bar

Examples:
  dove stats photos/
  dove stats photos/ --model qdove.pt --plot qdove-lengths.png
  dove stats recon/lengths.csv --max-tokens 64
`;

async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv, SPECS);
  if (args.positionals.length !== 1) throw new UsageError(`Expected one folder or lengths.csv but received ${args.positionals.length} arguments`);
  const target = args.positionals[0]!;
  const quiet = args.options.get('quiet') === true;
  const modelPath = getString(args, 'model');
  let lengths: ImageLength[];
  let maxTokens = getNumber(args, 'max-tokens');
  let failed = 0;
  const csvInput = target.endsWith('.csv') ? target : modelPath === undefined && existsSync(join(target, 'lengths.csv')) ? join(target, 'lengths.csv') : undefined;
  if (csvInput !== undefined) {
    lengths = await readLengthsCsv(csvInput);
    if (maxTokens === undefined) {
      const tokenizer = await Tokenizer.load(modelPath, { device: getString(args, 'device'), trustModel: getFlag(args, 'trust-model') }).catch(() => undefined);
      maxTokens = tokenizer?.maxTokens;
      tokenizer?.dispose();
      if (maxTokens === undefined) throw new UsageError(`Reading ${csvInput} needs --max-tokens (or a loadable --model) for the compression figure`);
    }
    if (!quiet) process.stderr.write(`dove stats: ${lengths.length} lengths read from ${csvInput}\n`);
  } else {
    if (!existsSync(target) || !statSync(target).isDirectory()) throw new UsageError(`Expected a folder of images or a lengths.csv but ${target} is neither`);
    const tokenizer = await Tokenizer.load(modelPath, { device: getString(args, 'device'), trustModel: getFlag(args, 'trust-model') });
    try {
      maxTokens = maxTokens ?? tokenizer.maxTokens;
      let bar: ProgressBar | undefined;
      let reported = 0;
      const result = await folderLengths(tokenizer, target, {
        batchSize: getNumber(args, 'batch-size') ?? 16,
        threshold: getNumber(args, 'threshold'),
        onProgress: (done, total) => {
          bar ??= new ProgressBar(total, { label: 'stats', silent: quiet });
          bar.tick(done - reported);
          reported = done;
        },
      });
      bar?.finish();
      for (const f of result.failures) process.stderr.write(`dove stats: skipped ${f.message}\n`);
      failed = result.failures.length;
      lengths = result.lengths;
    } finally {
      tokenizer.dispose();
    }
  }
  if (lengths.length === 0) {
    process.stderr.write('dove stats: no image could be measured\n');
    return 3;
  }
  const s = lengthStats(lengths.map((l) => l.length), maxTokens);
  process.stdout.write(
    [
      `images       ${s.count}`,
      `mean         ${formatNumber(s.mean, 2)} tokens`,
      `median       ${formatNumber(s.median, 1)} tokens`,
      `min / max    ${s.min} / ${s.max}`,
      `std          ${formatNumber(s.std, 2)}`,
      `max tokens   ${s.maxTokens}`,
      `compression  ${(100 * s.compression).toFixed(1)}% (mean uses ${(100 * s.ratio).toFixed(1)}% of the maximum)`,
    ].join('\n') + '\n',
  );
  const plotPath = getString(args, 'plot') ?? 'lengths-hist.png';
  await writeReport(
    plotPath,
    await histogramPng(lengths.map((l) => l.length), {
      title: `EOS token lengths (${s.count} images, max ${s.maxTokens})`,
      xLabel: 'tokens chosen by the EOS head',
      markers: [
        { x: s.mean, label: `mean ${formatNumber(s.mean, 1)}` },
        { x: s.median, label: `median ${formatNumber(s.median, 1)}` },
      ],
    }),
  );
  const csvPath = getString(args, 'csv');
  if (csvPath !== undefined) await writeReport(csvPath, toCsv(['image', 'eos_length'], lengths.map((l) => [l.image, l.length])));
  process.stdout.write(`wrote ${plotPath}${csvPath ? ` and ${csvPath}` : ''}\n`);
  return failed > 0 ? 3 : 0;
}

const command: Command = { name: 'stats', summary: 'EOS token-length distribution over a folder (histogram, mean, median, compression)', help, specs: SPECS, run: (argv) => withUsage('stats', () => run(argv)) };
export default command;
