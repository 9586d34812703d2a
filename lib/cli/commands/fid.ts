import { join } from 'node:path';
import type { Command } from '../command';
import { getFlag, getNumber, getString, parseArgs, UsageError, withUsage } from '../args';
import { ProgressBar } from '../progress';
import { FID_SETUP_HELP, FidFeatureExtractor, folderFid, perLengthFid } from '../../eval/fid';
import { lineChartPng } from '../../render/plot';
import { formatNumber, formatTable, toCsv, writeReport } from '../../eval/report';

const SPECS = {
  features: { type: 'string' },
  'per-length': { type: 'string' },
  device: { type: 'string' },
  'trust-model': { type: 'flag' },
  'batch-size': { type: 'int', min: 1, max: 1024 },
  csv: { type: 'string' },
  plot: { type: 'string' },
  quiet: { type: 'flag' },
} as const;

const help = `Usage: dove fid <real-dir> <fake-dir> [--features inception.pt]
       dove fid <real-dir> --per-length <root> [--features inception.pt] [--csv f.csv] [--plot f.png]

Fréchet Inception Distance (as pytorch-fid): 2048-d pool features of the FID Inception network,
mean and covariance per set, Fréchet distance in float64 (libtorch). Each image is read at its own
size and resized to 299 inside the network, as pytorch-fid does. With --per-length, <root> is the
output of \`dove reconstruct-batch\` (root/<len>/, root/auto/): one FID per length against
<real-dir>, whose images are first brought to the reconstructions' size (short side + centre crop,
the Tokenizer's policy), printed as a table and written as CSV and a plot.

FID is biased upwards for small sets (the covariance of 2048-d features needs thousands of images);
compare numbers only between runs with the same number of images.

Options:
      --features <file>     FID Inception export (default: $DOVE_FID_FEATURES); see below to make one
      --per-length <root>   reconstruct-batch output folder
      --csv <file>          per-length CSV (default <root>/fid.csv)
      --plot <file.png>     per-length plot (default <root>/fid.png)
      --batch-size <n>      images per forward (default 16)
      --device <dev>        cpu (default), cuda, cuda:N
      --trust-model         load a feature extractor whose TorchScript touches files or the process
      --quiet               no progress bar

${FID_SETUP_HELP}

Examples:
  dove fid photos/ recon/64/ --features inception.pt
  dove fid photos/ --per-length recon/ --features inception.pt
`;

async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv, SPECS);
  const root = getString(args, 'per-length');
  const expected = root === undefined ? 2 : 1;
  if (args.positionals.length !== expected) {
    throw new UsageError(
      root === undefined
        ? `Expected <real-dir> <fake-dir> but received ${args.positionals.length} folder(s)`
        : `Expected only <real-dir> with --per-length but received ${args.positionals.length} folder(s)`,
    );
  }
  const featuresPath = getString(args, 'features') ?? process.env.DOVE_FID_FEATURES;
  if (featuresPath === undefined || featuresPath === '') {
    process.stderr.write(`dove fid: no FID feature extractor given (--features).\n${FID_SETUP_HELP}\n`);
    return 2;
  }
  const extractor = await FidFeatureExtractor.load(featuresPath, { device: getString(args, 'device'), trustModel: getFlag(args, 'trust-model') });
  const quiet = args.options.get('quiet') === true;
  const batchSize = getNumber(args, 'batch-size') ?? 16;
  try {
    const realDir = args.positionals[0]!;
    if (root === undefined) {
      const bar = new ProgressBar(1, { label: 'fid', silent: quiet });
      const result = await folderFid(extractor, realDir, args.positionals[1]!, { batchSize });
      bar.tick();
      bar.finish();
      process.stdout.write(`FID ${formatNumber(result.fid, 4)} (${result.realCount} real, ${result.fakeCount} generated images)\n`);
      return 0;
    }
    const results = await perLengthFid(extractor, realDir, root, {
      batchSize,
      onLength: (r) => {
        if (!quiet) process.stderr.write(`dove fid: ${r.label} tokens: FID ${formatNumber(r.fid, 4)} over ${r.count} images\n`);
      },
    });
    const headers = ['tokens', 'images', 'fid'];
    const rows = results.map((r) => [r.label, r.count, r.fid]);
    process.stdout.write(formatTable(headers, rows) + '\n');
    const csvPath = getString(args, 'csv') ?? join(root, 'fid.csv');
    await writeReport(csvPath, toCsv(headers, rows));
    const fixed = results.filter((r) => Number.isFinite(r.tokens));
    const auto = results.find((r) => r.label === 'auto');
    const plotPath = getString(args, 'plot') ?? join(root, 'fid.png');
    if (fixed.length > 0) {
      await writeReport(
        plotPath,
        await lineChartPng([{ name: 'FID', points: fixed.map((r) => ({ x: r.tokens, y: r.fid })) }], {
          title: 'FID vs number of tokens',
          xLabel: 'tokens',
          yLabel: 'FID (lower is better)',
          references: auto ? [{ y: auto.fid, label: `auto (EOS): ${formatNumber(auto.fid, 2)}` }] : [],
        }),
      );
      process.stdout.write(`wrote ${csvPath} and ${plotPath}\n`);
    } else {
      process.stdout.write(`wrote ${csvPath}\n`);
    }
    return 0;
  } finally {
    extractor.dispose();
  }
}

const command: Command = { name: 'fid', summary: 'FID between two image folders, or per token length', help, specs: SPECS, run: (argv) => withUsage('fid', () => run(argv)) };
export default command;
