import { existsSync, promises as fs } from 'node:fs';
import { basename, extname, join } from 'node:path';
import type { Command } from '../command';
import { checkIntRange, defaultLengths, getIntList, getNumber, getString, MODEL_OPTIONS, MODEL_OPTIONS_HELP, parseArgs, UsageError, withUsage } from '../args';
import { ProgressBar } from '../progress';
import { DoveError } from '../../errors';
import { IMAGE_EXTENSIONS, loadImage, psnr, type ResizeFit } from '../../images';
import { Reconstructor } from '../../reconstructor';
import { Tensor } from '../../tensor';
import { TokenBatch, resolveTokenizeOptions } from '../../tokenizer';

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
eos_length, psnr_<length>..., psnr_auto; PSNR in dB against the resized input). Re-running skips
images that are already finished. An image that cannot be read is reported and skipped; the others
still complete and the exit code is 3.

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
  path: string;
  file: string;
  name: string;
}

async function listImages(dir: string): Promise<Entry[]> {
  let names: string[];
  try {
    const stat = await fs.stat(dir);
    if (!stat.isDirectory()) throw new UsageError(`Expected a directory of images but ${dir} is not a directory`);
    names = await fs.readdir(dir);
  } catch (error) {
    if (error instanceof UsageError) throw error;
    throw new DoveError(`${dir}: cannot list directory (${(error as NodeJS.ErrnoException).code ?? String(error)})`, 'IO_ERROR');
  }
  const files = names.filter((n) => IMAGE_EXTENSIONS.includes(extname(n).toLowerCase())).sort();
  const stems = new Map<string, number>();
  for (const f of files) stems.set(basename(f, extname(f)), (stems.get(basename(f, extname(f))) ?? 0) + 1);
  // a.jpg and a.png would both write a.png: keep the extension in the name when stems collide.
  return files.map((file) => {
    const stem = basename(file, extname(file));
    return { path: join(dir, file), file, name: stems.get(stem)! > 1 ? file : stem };
  });
}

async function readQuestions(path: string): Promise<Map<string, string>> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await fs.readFile(path, 'utf8'));
  } catch (error) {
    throw new UsageError(`Expected a JSON file for --questions but ${path} could not be read as JSON (${(error as Error).message})`);
  }
  const out = new Map<string, string>();
  if (Array.isArray(parsed)) {
    for (const item of parsed) {
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

function csvCell(text: string): string {
  return /[",\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

function parseCsvLine(line: string): string[] {
  const cells: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') {
        cur += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cur += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      cells.push(cur);
      cur = '';
    } else cur += c;
  }
  cells.push(cur);
  return cells;
}

function formatPsnr(value: number): string {
  return Number.isFinite(value) ? value.toFixed(3) : 'inf';
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
    const entries = await listImages(dir);

    const reconstructor = await Reconstructor.load(getString(args, 'model'), { device: getString(args, 'device') ?? 'cpu' });
    const model = reconstructor.model;
    try {
      const max = model.maxTokens;
      const lengths = getIntList(args, 'lengths') ?? defaultLengths(max);
      checkIntRange(lengths, '--lengths', 1, max);
      if (questions !== undefined && !model.isQDove) throw new UsageError(`--questions needs a Q-DOVE model; ${model.path} is a DOVE export`);
      const opts = resolveTokenizeOptions(model, 1, { threshold: getNumber(args, 'threshold') });
      const fit = getString(args, 'fit') as ResizeFit | undefined;
      const maxInputPixels = getNumber(args, 'max-input-pixels');
      const folders = [...lengths.map(String), 'auto'];
      for (const f of folders) await fs.mkdir(join(out, f), { recursive: true });

      // Resume: keep rows of images whose every output exists (and whose CSV has the same columns).
      const header = ['image', 'eos_length', ...lengths.map((l) => `psnr_${l}`), 'psnr_auto'];
      const csvPath = join(out, 'lengths.csv');
      const rows = new Map<string, string[]>();
      if (existsSync(csvPath)) {
        const lines = (await fs.readFile(csvPath, 'utf8')).split('\n').filter((l) => l.length > 0);
        if (lines.length > 0 && lines[0] === header.join(',')) {
          for (const line of lines.slice(1)) {
            const cells = parseCsvLine(line);
            if (cells.length === header.length) rows.set(cells[0]!, cells);
          }
        }
      }
      const finished = (e: Entry): boolean => rows.has(e.file) && folders.every((f) => existsSync(join(out, f, `${e.name}.png`)));
      const todo = entries.filter((e) => !finished(e));
      for (const e of entries) if (!finished(e)) rows.delete(e.file);
      const skipped = entries.length - todo.length;
      await fs.writeFile(csvPath, [header.join(','), ...[...rows.values()].map((r) => r.map(csvCell).join(','))].join('\n') + '\n');

      const bar = new ProgressBar(todo.length, { label: 'reconstruct-batch', silent: args.options.get('quiet') === true });
      if (skipped > 0) bar.log(`dove reconstruct-batch: ${skipped} of ${entries.length} images already finished in ${out}, skipping them`);
      let failed = 0;
      const s = model.imageSize;
      const frame = s * s * 3;

      const decodeChunk = async (chunk: Entry[]) => {
        const loaded = await Promise.all(
          chunk.map((e) => loadImage(e.path, { size: s, fit, maxInputPixels }).then((px) => ({ e, px }), (error: unknown) => ({ e, error }))),
        );
        const ok: { e: Entry; px: Buffer }[] = [];
        for (const item of loaded) {
          if ('px' in item) ok.push(item);
          else {
            failed++;
            bar.tick(1, 1);
            const message = item.error instanceof Error ? item.error.message : String(item.error);
            bar.log(`dove reconstruct-batch: skipped ${message.startsWith(item.e.path) ? message : `${item.e.path}: ${message}`}`);
          }
        }
        return ok;
      };

      const chunks: Entry[][] = [];
      for (let i = 0; i < todo.length; i += batchSize) chunks.push(todo.slice(i, i + batchSize));
      // Decode the next chunk while the model works on this one.
      let pending = chunks.length > 0 ? decodeChunk(chunks[0]!) : undefined;
      for (let c = 0; c < chunks.length; c++) {
        const ok = await pending!;
        pending = c + 1 < chunks.length ? decodeChunk(chunks[c + 1]!) : undefined;
        if (ok.length === 0) continue;
        const pixels = new Uint8Array(ok.length * frame);
        ok.forEach((item, i) => pixels.set(item.px, i * frame));
        const queries = questions === undefined ? undefined : ok.map((item) => questions.get(item.e.file) ?? questions.get(item.e.name) ?? '');
        const input = Tensor.fromArray(pixels, [ok.length, s, s, 3], 'uint8');
        let batch: TokenBatch;
        try {
          const enc = await model.encodePixels(input, 'auto', max, opts.threshold, queries);
          batch = new TokenBatch(enc.tokens, enc.lengths, enc.eosProbabilities);
        } finally {
          input.dispose();
        }
        try {
          const psnrs: number[][] = ok.map(() => []);
          for (const folder of folders) {
            const lens = folder === 'auto' ? batch.lengths : Tensor.fromArray(new BigInt64Array(ok.length).fill(BigInt(folder)), [ok.length], 'int64');
            try {
              const images = await reconstructor.decode(batch.tokens, lens);
              await Promise.all(
                images.map(async (img, i) => {
                  psnrs[i]!.push(psnr(ok[i]!.px, img.data));
                  await img.toFile(join(out, folder, `${ok[i]!.e.name}.png`));
                }),
              );
            } finally {
              if (lens !== batch.lengths) lens.dispose();
            }
          }
          const lines = ok.map((item, i) => {
            const row = [item.e.file, String(batch.lengthsArray[i]), ...psnrs[i]!.map(formatPsnr)];
            rows.set(item.e.file, row);
            return row.map(csvCell).join(',');
          });
          await fs.appendFile(csvPath, lines.join('\n') + '\n');
          bar.tick(ok.length);
        } finally {
          batch.dispose();
        }
      }
      bar.finish();
      // Final CSV in input order, one row per finished image.
      const ordered = entries.filter((e) => rows.has(e.file)).map((e) => rows.get(e.file)!.map(csvCell).join(','));
      await fs.writeFile(csvPath, [header.join(','), ...ordered].join('\n') + '\n');
      const done = todo.length - failed;
      process.stdout.write(`${out}: ${done} reconstructed, ${skipped} already finished, ${failed} failed (of ${entries.length} images)\n`);
      return failed > 0 ? 3 : 0;
    } finally {
      reconstructor.dispose();
    }
  });
}

const command: Command = { name: 'reconstruct-batch', summary: 'reconstruct a folder of images at several token lengths (one folder per length)', help, run };
export default command;
