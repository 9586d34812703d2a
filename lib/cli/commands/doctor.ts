import { maxOf } from '../../arrays';
import type { Command } from '../command';
import { getFlag, parseArgs, UsageError, withUsage } from '../args';

const SPECS = {
  json: { type: 'flag' },
  config: { type: 'flag' },
} as const;

const help = `Usage: dove doctor [--json] [--config]

Checks that the native addon and its libtorch load, and prints what was found: addon, libtorch,
N-API and Node versions, the libtorch library that was loaded, CUDA support, devices, intra-op
threads and the BLAS / OpenMP configuration. When the addon cannot load it prints what was looked
for and the command that fixes it, and exits with code 1.

Options:
      --json     machine-readable output
      --config   also print libtorch's full build configuration (at::show_config)

Examples:
  dove doctor
  dove doctor --json | jq .devices
`;

interface Report {
  ok: boolean;
  node: string;
  platform: string;
  addon?: string;
  libtorch?: string;
  napi?: number;
  cuda?: boolean;
  cudaVersion?: string | null;
  libtorchPath?: string;
  builtAgainst?: string | null;
  devices?: string[];
  threads?: number;
  blas?: string;
  parallel?: string;
  config?: string;
  error?: string;
}

/** First line of show_config that names a thing (BLAS, LAPACK, CPU capability...). */
function configLine(config: string, pattern: RegExp): string | undefined {
  return config
    .split('\n')
    .map((l) => l.trim())
    .find((l) => pattern.test(l));
}

async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv, SPECS);
  if (args.positionals.length > 0) throw new UsageError(`Expected no arguments but received ${args.positionals.join(' ')}`);
  const report: Report = { ok: false, node: process.version, platform: `${process.platform}-${process.arch}` };
  try {
    // Loaded here, not at the top: a broken addon must still give a report, not a crash.
    const native = await import('../../native');
    const runtime = await import('../../runtime');
    const v = runtime.versions();
    const info = runtime.buildInfo();
    report.addon = v.addon;
    report.libtorch = v.libtorch;
    report.napi = v.napi;
    report.cuda = v.cuda;
    report.cudaVersion = v.cudaVersion;
    report.libtorchPath = v.libtorchPath;
    report.builtAgainst = native.buildRecord()?.libtorchDir ?? null;
    report.devices = runtime.devices();
    report.threads = runtime.getNumThreads();
    const blasInfo = /BLAS_INFO=([^,\s]+)/.exec(info)?.[1];
    const lapackInfo = /LAPACK_INFO=([^,\s]+)/.exec(info)?.[1];
    const library = configLine(info, /^- (Intel\(R\)|OpenBLAS|BLIS)/)?.replace(/^- /, '');
    const blas = [blasInfo && `BLAS ${blasInfo}`, lapackInfo && `LAPACK ${lapackInfo}`, library].filter((l): l is string => typeof l === 'string' && l.length > 0);
    report.blas = blas.length > 0 ? blas.join('; ') : 'unknown';
    report.parallel = [configLine(info, /^ATen parallel backend/), configLine(info, /^OpenMP \d/), configLine(info, /CPU capability/)?.replace(/^- /, '')]
      .filter((l): l is string => l !== undefined)
      .join('; ');
    if (getFlag(args, 'config')) report.config = info;
    report.ok = true;
  } catch (error) {
    report.error = error instanceof Error ? error.message : String(error);
  }
  if (getFlag(args, 'json')) {
    process.stdout.write(JSON.stringify(report, null, 2) + '\n');
    return report.ok ? 0 : 1;
  }
  const rows: [string, string][] = [
    ['node', `${report.node} (${report.platform})`],
  ];
  if (report.ok) {
    rows.push(
      ['addon', `${report.addon} (N-API ${report.napi})`],
      ['libtorch', `${report.libtorch}${report.cuda ? ` with CUDA ${report.cudaVersion}` : ' (CPU only)'}`],
      ['libtorch path', report.libtorchPath ?? '?'],
      ['built against', report.builtAgainst ?? '(no build record: prebuilt addon)'],
      ['devices', (report.devices ?? []).join(', ')],
      ['threads', String(report.threads)],
      ['BLAS', report.blas ?? 'unknown'],
      ['parallel', report.parallel ?? ''],
    );
  }
  const width = maxOf(rows.map(([k]) => k.length));
  for (const [k, v] of rows) process.stdout.write(`${k.padEnd(width)}  ${v}\n`);
  if (report.config !== undefined) process.stdout.write(`\n${report.config}\n`);
  if (!report.ok) {
    process.stderr.write(`\n${report.error ?? 'the native addon did not load'}\n`);
    return 1;
  }
  process.stdout.write('ok\n');
  return 0;
}

const command: Command = { name: 'doctor', summary: 'check the native addon and libtorch: versions, paths, devices, threads, BLAS', help, specs: SPECS, run: (argv) => withUsage('doctor', () => run(argv)) };
export default command;
