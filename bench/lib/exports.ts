// The models every runtime measures: one TorchScript export per config plus its fixed-budget ONNX
// graphs and its AOTInductor package, written by the project's exporter into bench/results/tmp/models
// and reused while the exporter's sources are unchanged (official-70m takes a while to script, to
// export to ONNX and, most of all, to compile).
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pythonPath, repoRoot, tmpDir } from './paths';
import type { ModelFiles } from './schema';

/** The exporter's sources (python/dove) and the operator its packages call (native/small_linear.cpp). */
function sourcesHash(dir: string): string {
  const h = createHash('sha256');
  h.update(readFileSync(join(repoRoot(), 'native', 'small_linear.cpp')));
  const walk = (d: string): void => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) {
        if (name !== '__pycache__') walk(p);
      } else if (/\.(py|json)$/.test(name)) {
        h.update(p);
        h.update(readFileSync(p));
      }
    }
  };
  walk(dir);
  return h.digest('hex').slice(0, 16);
}

interface DoveJson {
  imageSize: number;
  maxTokens: number;
  tokenDim: number;
}

export interface ExportOutcome {
  files: ModelFiles | null;
  /** Why the ONNX graphs, the package (or the whole export) are missing. */
  note: string | null;
  seconds: number;
}

/** Compiles <pt minus .pt>.aoti.pt2 (python -m dove.aoti_export); -> null or why it failed. */
function runCompiler(config: string, pt: string, log: (s: string) => void): string | null {
  log(`compiling ${config} with AOTInductor (minutes): python -m dove.aoti_export ${pt}`);
  try {
    execFileSync(pythonPath(), ['-m', 'dove.aoti_export', pt], { cwd: join(repoRoot(), 'python'), stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', maxBuffer: 64 * 2 ** 20 });
    return null;
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    return (err.stderr ?? err.message).trim().split('\n').slice(-3).join(' | ');
  }
}

function runExporter(config: string, pt: string, onnxPrefix: string | null, log: (s: string) => void): string | null {
  const args = ['-m', 'dove.export', '--config', config, '--seed', '0', '-o', pt];
  if (onnxPrefix !== null) args.push('--onnx', onnxPrefix);
  log(`exporting ${config}${onnxPrefix ? ' (+ONNX)' : ''}: python ${args.join(' ')}`);
  try {
    execFileSync(pythonPath(), args, { cwd: join(repoRoot(), 'python'), stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
    return null;
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    return (err.stderr ?? err.message).trim().split('\n').slice(-3).join(' | ');
  }
}

/** withPeers: the ONNX graphs and the AOTInductor package too (CPU runs; both are CPU-only peers). */
export function ensureExport(config: string, withPeers: boolean, log: (s: string) => void): ExportOutcome {
  const withOnnx = withPeers;
  const started = Date.now();
  const dir = join(tmpDir(), 'models');
  mkdirSync(dir, { recursive: true });
  const pt = join(dir, `${config}.pt`);
  const prefix = join(dir, config);
  const stamp = join(dir, `${config}.stamp`);
  const hash = sourcesHash(join(repoRoot(), 'python', 'dove'));
  const enc = `${prefix}.encode.onnx`;
  const dec = `${prefix}.decode.onnx`;
  const aoti = `${prefix}.aoti.pt2`;
  let note: string | null = null;
  const [stampHash = '', stampNote = '', stampCompile = ''] = existsSync(stamp) ? readFileSync(stamp, 'utf8').split('\n') : [];
  // An ONNX failure recorded for these sources is not retried on every run.
  const onnxSettled = !withOnnx || (existsSync(enc) && existsSync(dec)) || Boolean(stampNote);
  const fresh = stampHash === hash && existsSync(pt) && onnxSettled;
  if (!fresh) {
    const onnxError = runExporter(config, pt, withOnnx ? prefix : null, log);
    if (onnxError !== null) {
      // ONNX export is the fragile half; without it the TorchScript rows still run.
      const ptError = runExporter(config, pt, null, log);
      if (ptError !== null) return { files: null, note: `export failed: ${ptError}`, seconds: (Date.now() - started) / 1000 };
      note = `ONNX export failed: ${onnxError}`;
    }
    writeFileSync(stamp, `${hash}\n${note ?? ''}`);
  } else {
    note = stampNote || null;
  }
  // The package: compiled from the file just written (a fresh export has the same seeded weights, but
  // a package is only trusted for sources it was compiled with). A recorded failure is not retried.
  let compileNote = fresh ? stampCompile : '';
  if (withPeers && !(fresh && (existsSync(aoti) || compileNote))) {
    compileNote = runCompiler(config, pt, log) ?? '';
    writeFileSync(stamp, `${hash}\n${note ?? ''}\n${compileNote}`);
  }
  if (compileNote) note = [note, `AOTInductor compile failed: ${compileNote}`].filter(Boolean).join('; ');
  // The export's dove.json copies these from the config (python/dove/export.py): no need to start python.
  const meta = JSON.parse(readFileSync(join(repoRoot(), 'python', 'dove', 'configs', `${config}.json`), 'utf8')) as DoveJson;
  const haveOnnx = existsSync(enc) && existsSync(dec);
  return {
    files: {
      config,
      pt,
      onnxEncode: haveOnnx ? enc : null,
      onnxDecode: haveOnnx ? dec : null,
      aoti: withPeers && !compileNote && existsSync(aoti) ? aoti : null,
      imageSize: meta.imageSize,
      maxTokens: meta.maxTokens,
      tokenDim: meta.tokenDim,
    },
    note: haveOnnx || !withOnnx ? note : note ?? 'the exporter wrote no ONNX graphs',
    seconds: (Date.now() - started) / 1000,
  };
}
