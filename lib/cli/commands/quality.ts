import { join } from 'node:path';
import type { Command } from '../command';
import { getString, parseArgs, realAndFakeDirs, withUsage } from '../args';
import { folderQuality, perLengthQuality, type FolderQuality } from '../../eval/quality';
import { formatNumber, formatTable, lengthCurvePng, toCsv, writeReport } from '../../eval/report';

const SPECS = {
  'per-length': { type: 'string' },
  csv: { type: 'string' },
  plot: { type: 'string' },
  quiet: { type: 'flag' },
} as const;

const help = `Usage: dove quality <real-dir> <fake-dir> [--csv f.csv]
       dove quality <real-dir> --per-length <root> [--csv f.csv] [--plot f.png]

PSNR (dB) and SSIM of reconstructions against the real images, paired by file name without
extension (photo.jpg <-> photo.png). Computed as scikit-image does for uint8 RGB: data range 255;
SSIM with a Gaussian window (sigma 1.5, 11 taps), population covariance, K1 0.01, K2 0.03, mean over
the image and the channels (Wang et al. 2004). Real images are brought to the reconstruction's
size first (short side + centre crop, the Tokenizer's policy). Identical images have PSNR inf.

With --per-length, <root> is the output of \`dove reconstruct-batch\` (root/<len>/, root/auto/):
mean PSNR and SSIM per length, a table, a CSV with one row per image and length, and a plot.

Options:
      --per-length <root>   reconstruct-batch output folder
      --csv <file>          per-image CSV (default <root>/quality.csv with --per-length; none otherwise)
      --plot <file.png>     quality-vs-tokens plot (default <root>/quality.png)
      --quiet               print only the summary

Examples:
  dove quality photos/ recon/64/
  dove quality photos/ --per-length recon/
`;

function warnUnpaired(q: FolderQuality, fakeDir: string): void {
  const { onlyReal, onlyFake } = q.pairing;
  if (onlyReal.length > 0) process.stderr.write(`dove quality: ${onlyReal.length} real image(s) have no reconstruction in ${fakeDir} (e.g. ${onlyReal[0]})\n`);
  if (onlyFake.length > 0) process.stderr.write(`dove quality: ${onlyFake.length} image(s) in ${fakeDir} have no real counterpart (e.g. ${onlyFake[0]})\n`);
}

async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv, SPECS);
  const quiet = args.options.get('quiet') === true;
  const { realDir, fakeDir, root } = realAndFakeDirs(args);
  const perImageHeaders = ['tokens', 'image', 'psnr', 'ssim'];
  if (root === undefined) {
    const q = await folderQuality(realDir, fakeDir);
    warnUnpaired(q, fakeDir);
    if (!quiet) process.stdout.write(formatTable(['image', 'psnr', 'ssim'], q.images.map((i) => [i.name, i.psnr, i.ssim])) + '\n\n');
    process.stdout.write(
      `mean over ${q.summary.count} images: PSNR ${formatNumber(q.summary.psnr, 3)} dB, SSIM ${formatNumber(q.summary.ssim, 4)}` +
        (q.summary.identical > 0 ? ` (${q.summary.identical} identical, PSNR inf, left out of the PSNR mean)` : '') +
        '\n',
    );
    const csvPath = getString(args, 'csv');
    if (csvPath !== undefined) {
      await writeReport(csvPath, toCsv(['image', 'psnr', 'ssim'], q.images.map((i) => [i.name, i.psnr, i.ssim])));
      process.stdout.write(`wrote ${csvPath}\n`);
    }
    return 0;
  }
  const results = await perLengthQuality(realDir, root, (r) => {
    warnUnpaired(r.result, r.dir);
    if (!quiet) process.stderr.write(`dove quality: ${r.label} tokens: PSNR ${formatNumber(r.result.summary.psnr, 3)} dB, SSIM ${formatNumber(r.result.summary.ssim, 4)}\n`);
  });
  const rows = results.map((r) => [r.label, r.result.summary.count, r.result.summary.psnr, r.result.summary.ssim]);
  process.stdout.write(formatTable(['tokens', 'images', 'psnr_db', 'ssim'], rows) + '\n');
  const csvPath = getString(args, 'csv') ?? join(root, 'quality.csv');
  await writeReport(csvPath, toCsv(perImageHeaders, results.flatMap((r) => r.result.images.map((i) => [r.label, i.name, i.psnr, i.ssim]))));
  const base = getString(args, 'plot') ?? join(root, 'quality.png');
  const psnrPng = await lengthCurvePng(results, (r) => r.result.summary.psnr, { name: 'PSNR', title: 'Reconstruction PSNR vs number of tokens', yLabel: 'PSNR (dB, higher is better)', digits: 2, unit: ' dB' });
  const ssimPng = await lengthCurvePng(results, (r) => r.result.summary.ssim, { name: 'SSIM', title: 'Reconstruction SSIM vs number of tokens', yLabel: 'SSIM (higher is better)', digits: 3 });
  const ssimPlot = base.replace(/(\.png)?$/i, '-ssim.png');
  const plotted = psnrPng !== null && ssimPng !== null;
  if (plotted) {
    await writeReport(base, psnrPng);
    await writeReport(ssimPlot, ssimPng);
  }
  process.stdout.write(`wrote ${csvPath}${plotted ? `, ${base} and ${ssimPlot}` : ''}\n`);
  return 0;
}

const command: Command = { name: 'quality', summary: 'PSNR and SSIM of reconstructions, per image and per token length', help, specs: SPECS, run: (argv) => withUsage('quality', () => run(argv)) };
export default command;
