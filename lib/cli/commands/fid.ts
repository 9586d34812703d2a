import { join } from 'node:path';
import type { Command } from '../command';
import { getFlag, getNumber, getString, parseArgs, realAndFakeDirs, withUsage } from '../args';
import { ProgressBar } from '../progress';
import { FID_SETUP_HELP, FidFeatureExtractor, folderFid, perLengthFid } from '../../eval/fid';
import { formatNumber, formatTable, lengthCurvePng, toCsv, writeReport } from '../../eval/report';

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
  const { realDir, fakeDir, root } = realAndFakeDirs(args);
  const featuresPath = getString(args, 'features') ?? process.env.DOVE_FID_FEATURES;
  if (featuresPath === undefined || featuresPath === '') {
    process.stderr.write(`dove fid: no FID feature extractor given (--features).\n${FID_SETUP_HELP}\n`);
    return 2;
  }
  const extractor = await FidFeatureExtractor.load(featuresPath, { device: getString(args, 'device'), trustModel: getFlag(args, 'trust-model') });
  const quiet = args.options.get('quiet') === true;
  const batchSize = getNumber(args, 'batch-size') ?? 16;
  try {
    if (root === undefined) {
      const bar = new ProgressBar(1, { label: 'fid', silent: quiet });
      const result = await folderFid(extractor, realDir, fakeDir, { batchSize });
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
    const plotPath = getString(args, 'plot') ?? join(root, 'fid.png');
    const plot = await lengthCurvePng(results, (r) => r.fid, { name: 'FID', title: 'FID vs number of tokens', yLabel: 'FID (lower is better)', digits: 2 });
    if (plot !== null) await writeReport(plotPath, plot);
    process.stdout.write(`wrote ${csvPath}${plot === null ? '' : ` and ${plotPath}`}\n`);
    return 0;
  } finally {
    extractor.dispose();
  }
}

const command: Command = { name: 'fid', summary: 'FID between two image folders, or per token length', help, specs: SPECS, run: (argv) => withUsage('fid', () => run(argv)) };
export default command;
