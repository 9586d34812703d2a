// Token-length statistics: how many tokens the EOS head spends per image over a folder, from a model
// run or from the lengths.csv that `dove reconstruct-batch` writes.
import { promises as fs } from 'node:fs';
import { DoveError } from '../errors';
import type { Tokenizer } from '../tokenizer';
import { listImages } from './folders';

export interface LengthStats {
  count: number;
  mean: number;
  median: number;
  min: number;
  max: number;
  std: number;
  /** The model's maximum token count. */
  maxTokens: number;
  /** mean / maxTokens: the fraction of the maximum spent on average. */
  ratio: number;
  /** 1 - ratio: the fraction of tokens saved against always using the maximum. */
  compression: number;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function lengthStats(lengths: readonly number[], maxTokens: number): LengthStats {
  if (lengths.length === 0) throw new DoveError('Expected at least one length but received none', 'INVALID_ARGUMENT');
  if (!Number.isInteger(maxTokens) || maxTokens < 1) throw new DoveError(`Expected positive integer for maxTokens but received ${maxTokens}`, 'INVALID_ARGUMENT');
  const bad = lengths.find((l) => !Number.isInteger(l) || l < 1 || l > maxTokens);
  if (bad !== undefined) throw new DoveError(`Expected lengths between 1 and ${maxTokens} but found ${bad}`, 'INVALID_ARGUMENT');
  const n = lengths.length;
  const mean = lengths.reduce((s, v) => s + v, 0) / n;
  const variance = lengths.reduce((s, v) => s + (v - mean) ** 2, 0) / n;
  const ratio = mean / maxTokens;
  return {
    count: n,
    mean,
    median: median(lengths),
    min: Math.min(...lengths),
    max: Math.max(...lengths),
    std: Math.sqrt(variance),
    maxTokens,
    ratio,
    compression: 1 - ratio,
  };
}

export interface ImageLength {
  image: string;
  length: number;
}

/** Reads `image,eos_length,...` rows of a reconstruct-batch lengths.csv. */
export async function readLengthsCsv(file: string): Promise<ImageLength[]> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new DoveError(`${file}: ${code === 'ENOENT' ? 'file not found' : `cannot read (${code ?? String(error)})`}`, code === 'ENOENT' ? 'FILE_NOT_FOUND' : 'IO_ERROR');
  }
  const lines = text.split(/\r?\n/).filter((l) => l.length > 0);
  const header = (lines[0] ?? '').split(',');
  const imageCol = header.indexOf('image');
  const lengthCol = header.indexOf('eos_length');
  if (imageCol < 0 || lengthCol < 0) {
    throw new DoveError(`${file}: expected a header with 'image' and 'eos_length' columns (as written by dove reconstruct-batch) but found '${lines[0] ?? ''}'`, 'INVALID_ARGUMENT');
  }
  return lines.slice(1).map((line, i) => {
    const cells = splitCsvLine(line);
    const length = Number(cells[lengthCol]);
    if (!Number.isInteger(length) || length < 1) {
      throw new DoveError(`${file}: line ${i + 2} has eos_length '${cells[lengthCol] ?? ''}', expected a positive integer`, 'INVALID_ARGUMENT');
    }
    return { image: cells[imageCol] ?? '', length };
  });
}

function splitCsvLine(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!;
    if (quoted) {
      if (ch === '"' && line[i + 1] === '"') {
        cur += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else cur += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  out.push(cur);
  return out;
}

export interface FolderLengths {
  lengths: ImageLength[];
  failures: { image: string; message: string }[];
}

/**
 * EOS lengths of every image in `dir` (auto mode, up to the model's maximum). Images are decoded and
 * encoded `batchSize` at a time; an image that fails to decode is reported and skipped.
 */
export async function folderLengths(
  tokenizer: Tokenizer,
  dir: string,
  options: { batchSize?: number; threshold?: number; onProgress?: (done: number, total: number) => void } = {},
): Promise<FolderLengths> {
  const files = await listImages(dir);
  if (files.length === 0) throw new DoveError(`${dir}: no images found`, 'INVALID_ARGUMENT');
  const batchSize = options.batchSize ?? 16;
  const lengths: ImageLength[] = [];
  const failures: { image: string; message: string }[] = [];
  for (let start = 0; start < files.length; start += batchSize) {
    const chunk = files.slice(start, start + batchSize);
    try {
      const batch = await tokenizer.tokenize(chunk, { mode: 'auto', threshold: options.threshold });
      batch.lengthsArray.forEach((length, i) => lengths.push({ image: chunk[i]!, length }));
      batch.dispose();
    } catch {
      // One bad file fails the whole batch: redo it image by image to keep the good ones.
      for (const file of chunk) {
        try {
          const one = await tokenizer.tokenize(file, { mode: 'auto', threshold: options.threshold });
          lengths.push({ image: file, length: one.length });
        } catch (error) {
          failures.push({ image: file, message: error instanceof Error ? error.message : String(error) });
        }
      }
    }
    options.onProgress?.(Math.min(files.length, start + batchSize), files.length);
  }
  return { lengths, failures };
}
