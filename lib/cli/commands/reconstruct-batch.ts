import { existsSync, promises as fs } from 'node:fs';
import { basename, join } from 'node:path';
import type { Command } from '../command';
import { asUsage, checkIntRange, getFlag, getIntList, getNumber, getString, MODEL_OPTIONS, MODEL_OPTIONS_HELP, parseArgs, UsageError, withUsage } from '../args';
import { ProgressBar } from '../progress';
import { formatCsv, parseCsv } from '../../base/csv';
import { DoveError } from '../../base/errors';
import { outputNames } from '../../eval/folders';
import { appendFileChecked, decodeFsBytes, displayPath, fsError, fsPath, listImageFiles, readFileChecked, writeFileAtomic } from '../../base/files';
import { loadReadable, psnr, type ResizeFit } from '../../io/images';
import { parseJson, preview } from '../../base/json';
import { defaultLengths } from '../../model/model-file';
import { Reconstructor, RgbImage } from '../../model/reconstructor';
import { resolveTokenizeOptions } from '../../model/tokenizer';

const SPECS = {
  ...MODEL_OPTIONS,
  lengths: { type: 'intList' },
  questions: { type: 'string' },
  'batch-size': { type: 'int', min: 1, max: 1024 },
  output: { type: 'string', alias: 'o' },
  quiet: { type: 'flag' },
} as const;

const help = `Usage: dove reconstruct-batch <dir> -o <out/> [options]

Reconstructs every image in <dir> (not recursive) at each token length and at the length the EOS
head chooses. Writes out/<length>/<name>.png, out/auto/<name>.png and out/lengths.csv (image,
eos_length, psnr_<length>..., psnr_auto; PSNR in dB against the resized input). <name> is the file
name without its extension, or with it when that would be ambiguous (a.jpg beside a.png or a.jpg.png).
Re-running skips images that are already finished; a re-run with other --lengths adds their columns
and keeps the earlier ones. An image that cannot be read is reported and skipped; the others still
complete and the exit code is 3.

Options:
  -o, --output <dir>        output folder (created if missing; required)
      --lengths <a,b,...>   token lengths, each 1..maxTokens (default: powers of two up to maxTokens)
      --questions <file>    Q-DOVE queries: JSON {"<image file name>": "question", ...} or a list of
                            {"image_id": "...", "question": "..."} entries
      --batch-size <n>      images per forward (default 8)
      --quiet               no progress bar
${MODEL_OPTIONS_HELP}

Exit codes: 0 all images done, 2 bad flags, 3 some images failed, 1 other errors.

Examples:
  dove reconstruct-batch photos/ -o recon/
  dove reconstruct-batch photos/ --lengths 16,64,256 --model dove-70m.pt --batch-size 16 -o recon/
  dove reconstruct-batch photos/ --model qdove.pt --questions questions.json -o recon/
`;

interface Entry {
  /** Path of the input (escaped bytes allowed, lib/base/files.ts). */
  path: string;
  /** Its file name, the key of its lengths.csv row. */
  file: string;
  /** The name its reconstructions get (outputNames). */
  name: string;
}

async function listEntries(dir: string): Promise<Entry[]> {
  const stat = await fs.stat(fsPath(dir)).catch((error: unknown) => {
    throw fsError(dir, error, 'list folder');
  });
  if (!stat.isDirectory()) throw new UsageError(`Expected a directory of images but ${displayPath(dir)} is not a directory`);
  const paths = await listImageFiles(dir, { everyEntry: true });
  const names = outputNames(paths.map((p) => basename(p)));
  return paths.map((path, i) => ({ path, file: basename(path), name: names[i]! }));
}

async function readQuestions(path: string): Promise<Map<string, string>> {
  const notJson = (message: string): UsageError => new UsageError(`Expected a JSON file for --questions but ${path} could not be read as JSON (${message})`);
  const text = await fs.readFile(path, 'utf8').catch((error: Error) => {
    throw notJson(error.message);
  });
  const parsed = parseJson(text, path, notJson);
  const out = new Map<string, string>();
  if (Array.isArray(parsed)) {
    for (const item of parsed) {
      if (typeof item !== 'object' || item === null) continue;
      const entry = item as { image_id?: unknown; question?: unknown };
      if (typeof entry.image_id !== 'string' && typeof entry.image_id !== 'number') continue;
      if (typeof entry.question === 'string') out.set(String(entry.image_id), entry.question);
    }
  } else if (typeof parsed === 'object' && parsed !== null) {
    for (const [k, v] of Object.entries(parsed)) if (typeof v === 'string') out.set(k, v);
  } else {
    throw new UsageError(`Expected an object or a list in --questions ${path}`);
  }
  return out;
}

function formatPsnr(value: number): string {
  return Number.isFinite(value) ? value.toFixed(3) : 'inf';
}

const PSNR_COLUMN = /^psnr_([1-9]\d*)$/;

/** The rows of an earlier run's lengths.csv, by image file name: column -> cell. */
export interface CsvState {
  /** psnr_<n> lengths present in the file. */
  lengths: number[];
  rows: Map<string, Map<string, string>>;
}

/**
 * Reads out/lengths.csv of an earlier run. A file this command did not write (another header) is
 * refused, never overwritten; a row cut short by a crash is dropped (that image is simply redone).
 */
async function readPreviousCsv(csvPath: string): Promise<CsvState> {
  const bytes = await readFileChecked(csvPath).catch((error: unknown) => {
    if (error instanceof DoveError && error.code === 'FILE_NOT_FOUND') return undefined;
    throw error;
  });
  return bytes === undefined ? { lengths: [], rows: new Map() } : parseBatchCsv(decodeFsBytes(bytes), csvPath);
}

/** The state held in lengths.csv text (see readPreviousCsv); exported for the CSV fuzzing in test/fuzz. */
export function parseBatchCsv(text: string, csvPath: string): CsvState {
  const { records, complete } = parseCsv(text);
  if (records.length === 0) return { lengths: [], rows: new Map() };
  const header = records[0]!;
  const lengths = header.slice(2, -1).map((c) => PSNR_COLUMN.exec(c)?.[1]).map(Number);
  const ours =
    header.length >= 3 && header[0] === 'image' && header[1] === 'eos_length' && header[header.length - 1] === 'psnr_auto' &&
    lengths.every((l) => Number.isSafeInteger(l)) && new Set(lengths).size === lengths.length;
  if (!ours) {
    throw new DoveError(
      `${displayPath(csvPath)} exists but was not written by dove reconstruct-batch (header ${preview(header.join(','))}); move it away or choose another -o`,
      'INVALID_ARGUMENT',
    );
  }
  const rows = new Map<string, Map<string, string>>();
  const last = complete ? records.length : records.length - 1;
  for (let r = 1; r < last; r++) {
    const cells = records[r]!;
    if (cells.length !== header.length) continue;
    rows.set(cells[0]!, new Map(header.map((column, i) => [column, cells[i]!])));
  }
  return { lengths, rows };
}

function csvLine(header: readonly string[], image: string, row: Map<string, string>): string[] {
  return header.map((column) => (column === 'image' ? image : (row.get(column) ?? '')));
}

/** Refuses an -o whose <length>/ or auto/ folder is the input folder: writing there would replace inputs. */
async function checkOutputFolders(dir: string, out: string, folders: readonly string[]): Promise<void> {
  const input = await fs.realpath(fsPath(dir)).then((p) => p.toString(), () => undefined);
  for (const f of folders) {
    const target = await fs.realpath(fsPath(join(out, f))).then((p) => p.toString(), () => undefined);
    if (input !== undefined && target === input) {
      throw new UsageError(`-o ${displayPath(out)}: its ${f}/ folder is the input folder ${displayPath(dir)}, so reconstructions would overwrite the inputs; choose another -o`);
    }
  }
}

async function run(argv: string[]): Promise<number> {
  return withUsage('reconstruct-batch', async () => {
    const args = parseArgs(argv, SPECS);
    if (args.positionals.length !== 1) throw new UsageError(`Expected exactly one input directory but received ${args.positionals.length}`);
    const dir = args.positionals[0]!;
    const out = getString(args, 'output');
    if (out === undefined) throw new UsageError('Missing -o/--output <dir>');
    const batchSize = getNumber(args, 'batch-size') ?? 8;
    const questionsPath = getString(args, 'questions');
    const questions = questionsPath === undefined ? undefined : await readQuestions(questionsPath);
    const entries = await listEntries(dir);

    const reconstructor = await Reconstructor.load(getString(args, 'model'), { device: getString(args, 'device') ?? 'cpu', trustModel: getFlag(args, 'trust-model') });
    const model = reconstructor.model;
    try {
      const max = model.maxTokens;
      const lengths = getIntList(args, 'lengths') ?? defaultLengths(max);
      checkIntRange(lengths, '--lengths', 1, max);
      if (questions !== undefined) asUsage(() => model.requireQDove('--questions'));
      const opts = resolveTokenizeOptions(model, 1, { threshold: getNumber(args, 'threshold') });
      const fit = getString(args, 'fit') as ResizeFit | undefined;
      const maxInputPixels = getNumber(args, 'max-input-pixels');
      const folders = [...new Set(lengths)].map(String).concat('auto');
      await checkOutputFolders(dir, out, folders);
      const csvPath = join(out, 'lengths.csv');
      const previous = await readPreviousCsv(csvPath);
      for (const f of folders) {
        await fs.mkdir(fsPath(join(out, f)), { recursive: true }).catch((error: unknown) => {
          throw fsError(join(out, f), error, 'create folder');
        });
      }

      // Columns: every length of this run and of earlier runs into the same folder (their values are
      // kept, never dropped), ascending.
      const allLengths = [...new Set([...previous.lengths, ...lengths])].sort((a, b) => a - b);
      const header = ['image', 'eos_length', ...allLengths.map((l) => `psnr_${l}`), 'psnr_auto'];
      const kept = previous.lengths.filter((l) => !lengths.includes(l));
      const rows = previous.rows;
      const wanted = ['eos_length', ...lengths.map((l) => `psnr_${l}`), 'psnr_auto'];
      const finished = (e: Entry): boolean => {
        const row = rows.get(e.file);
        return row !== undefined && wanted.every((c) => (row.get(c) ?? '') !== '') && folders.every((f) => existsSync(fsPath(join(out, f, `${e.name}.png`))));
      };
      const todo = entries.filter((e) => !finished(e));
      const skipped = entries.length - todo.length;
      const inputOrder = new Set(entries.map((e) => e.file));
      const ordered = (): string[][] => [
        header,
        ...entries.filter((e) => rows.has(e.file)).map((e) => csvLine(header, e.file, rows.get(e.file)!)),
        // Rows of images no longer in the folder stay: their reconstructions are still on disk.
        ...[...rows.keys()].filter((image) => !inputOrder.has(image)).map((image) => csvLine(header, image, rows.get(image)!)),
      ];
      await writeFileAtomic(csvPath, formatCsv(ordered()));

      const bar = new ProgressBar(todo.length, { label: 'reconstruct-batch', silent: args.options.get('quiet') === true });
      if (skipped > 0) bar.log(`dove reconstruct-batch: ${skipped} of ${entries.length} images already finished in ${displayPath(out)}, skipping them`);
      if (kept.length > 0) bar.log(`dove reconstruct-batch: keeping the psnr_${kept.join(', psnr_')} column${kept.length > 1 ? 's' : ''} of an earlier run in ${displayPath(csvPath)}`);
      let failed = 0;
      const s = model.imageSize;

      // At most 4 images decode at once (loadBatchSettled, under loadReadable), whatever the batch size.
      const decodeChunk = async (chunk: Entry[]): Promise<{ ok: Entry[]; pixels: Uint8Array }> => {
        const { kept, pixels, failures } = await loadReadable(chunk.map((e) => e.path), { size: s, fit, maxInputPixels });
        for (const f of failures) {
          failed++;
          bar.tick(1, 1);
          bar.log(`dove reconstruct-batch: skipped ${f.error.message}`);
        }
        return { ok: kept.map((i) => chunk[i]!), pixels };
      };

      const chunks: Entry[][] = [];
      for (let i = 0; i < todo.length; i += batchSize) chunks.push(todo.slice(i, i + batchSize));
      // Decode the next chunk while the model works on this one.
      let pending = chunks.length > 0 ? decodeChunk(chunks[0]!) : undefined;
      for (let c = 0; c < chunks.length; c++) {
        const { ok, pixels } = await pending!;
        pending = c + 1 < chunks.length ? decodeChunk(chunks[c + 1]!) : undefined;
        if (ok.length === 0) continue;
        const queries = questions === undefined ? undefined : ok.map((e) => questions.get(e.file) ?? questions.get(e.name) ?? '');
        const result = await model.reconstructAtLengths(pixels, ok.length, folders.map((f) => (f === 'auto' ? 'auto' : Number(f))), { threshold: opts.threshold, queries });
        const psnrs: Map<string, string>[] = ok.map(() => new Map());
        for (const [c, folder] of folders.entries()) {
          await Promise.all(
            result.frames[c]!.map(async (frame, i) => {
              psnrs[i]!.set(`psnr_${folder}`, formatPsnr(psnr(pixels.subarray(i * frame.length, (i + 1) * frame.length), frame)));
              await new RgbImage(frame, s, s).toFile(join(out, folder, `${ok[i]!.name}.png`));
            }),
          );
        }
        const done = ok.map((e, i) => {
          const row = new Map(rows.get(e.file) ?? []);
          row.set('eos_length', String(result.autoLengths[i]));
          for (const [column, value] of psnrs[i]!) row.set(column, value);
          rows.set(e.file, row);
          return csvLine(header, e.file, row);
        });
        // Progress survives a crash: a later run reads these rows (the last one wins).
        await appendFileChecked(csvPath, formatCsv(done));
        bar.tick(ok.length);
      }
      bar.finish();
      // Final CSV: one row per image, input order first.
      await writeFileAtomic(csvPath, formatCsv(ordered()));
      const done = todo.length - failed;
      process.stdout.write(`${displayPath(out)}: ${done} reconstructed, ${skipped} already finished, ${failed} failed (of ${entries.length} images)\n`);
      return failed > 0 ? 3 : 0;
    } finally {
      reconstructor.dispose();
    }
  });
}

const command: Command = { name: 'reconstruct-batch', summary: 'reconstruct a folder of images at several token lengths (one folder per length)', help, specs: SPECS, run };
export default command;
