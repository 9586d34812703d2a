import { maxOf } from '../../base/arrays';
import type { Command } from '../command';
import { getFlag, parseArgs, UsageError, withUsage } from '../args';
import type { Versions } from '../../core/runtime';

const SPECS = {
  json: { type: 'flag' },
  config: { type: 'flag' },
} as const;

const help = `Usage: dove doctor [--json] [--config]

Checks that the native addon and its libtorch load, and prints what was found and where each part
came from: the addon file (a local build or the prebuilt one), libtorch's CPU libraries (the
platform package, LIBTORCH, the setup's cache or the build's RUNPATH), the CUDA stand-ins, libtorch's
CUDA libraries (or where they were looked for), devices, intra-op threads and the BLAS / OpenMP
configuration. When the addon cannot load it prints what was looked for and the command that fixes
it, and exits with code 1.

Options:
      --json     machine-readable output
      --config   also print libtorch's full build configuration (at::show_config)

Examples:
  dove doctor
  dove doctor --json | jq .devices
`;

interface Report extends Partial<Omit<Versions, 'nccl'>> {
  ok: boolean;
  node: string;
  platform: string;
  builtAgainst?: string | null;
  addonFile?: string;
  prebuilt?: boolean;
  libtorchFrom?: string;
  cudaStandIns?: string[];
  cudaLibtorch?: { loaded: boolean; dir: string | null; from: string | null; runtime: string[]; tried: string[] };
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

/** Where libtorch's CUDA libraries came from, or every place they were looked for. */
function cudaRows(cuda: Report['cudaLibtorch']): [string, string][] {
  if (cuda === undefined) return [];
  if (cuda.loaded) return [['CUDA libtorch', `${cuda.dir} (${cuda.from})`], ['CUDA runtime', cuda.runtime.join(', ') || '(found by libtorch_cuda.so itself)']];
  return [['CUDA libtorch', 'not loaded; looked in:'], ...cuda.tried.map((t): [string, string] => ['', `  ${t}`])];
}

async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv, SPECS);
  if (args.positionals.length > 0) throw new UsageError(`Expected no arguments but received ${args.positionals.join(' ')}`);
  const report: Report = { ok: false, node: process.version, platform: `${process.platform}-${process.arch}` };
  try {
    // Loaded here, not at the top: a broken addon must still give a report, not a crash.
    const native = await import('../../core/native');
    const runtime = await import('../../core/runtime');
    const { loadCudaLibtorch } = await import('../../core/cuda-libtorch');
    const load = native.addonLoad();
    // Before anything else reads libtorch's CUDA support (it is settled once per process).
    const cuda = loadCudaLibtorch();
    const { nccl: _nccl, ...versions } = runtime.versions();
    const info = runtime.buildInfo();
    report.addonFile = load.addon;
    report.prebuilt = load.prebuilt;
    report.libtorchFrom = `${load.libtorch.dir} (${load.libtorch.from})`;
    report.cudaStandIns = load.standIns;
    report.cudaLibtorch = { loaded: cuda.loaded, dir: cuda.libtorch?.dir ?? null, from: cuda.libtorch?.from ?? null, runtime: cuda.runtime, tried: cuda.tried };
    Object.assign(report, versions);
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
      ['addon file', `${report.addonFile ?? '?'} (${report.prebuilt ? 'prebuilt' : 'local build'})`],
      ['libtorch', `${report.libtorch}${report.cuda ? ` with CUDA ${report.cudaVersion}` : ' (CPU only)'}`],
      ['libtorch path', report.libtorchPath ?? '?'],
      ['libtorch from', report.libtorchFrom ?? '?'],
      ['built against', report.builtAgainst ?? '(no build record: prebuilt addon)'],
      ['CUDA stand-ins', report.cudaStandIns?.length ? report.cudaStandIns.join(', ') : 'none (libtorch_cpu.so names no CUDA library, or none were found)'],
      ...cudaRows(report.cudaLibtorch),
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
