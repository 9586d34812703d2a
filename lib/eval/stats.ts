// Token-length statistics: how many tokens the EOS head spends per image over a folder, from a model
// run or from the lengths.csv that `dove reconstruct-batch` writes.
import { maxOf, medianOf, minOf } from '../base/arrays';
import { parseCsv } from '../base/csv';
import { DoveError } from '../base/errors';
import { integerAtLeast } from '../base/validate';
import { decodeFsBytes, displayPath, listImageFiles, readFileChecked } from '../base/files';
import { preview } from '../base/json';
import type { Tokenizer } from '../model/tokenizer';

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

export function lengthStats(lengths: readonly number[], maxTokens: number): LengthStats {
  if (lengths.length === 0) throw new DoveError('Expected at least one length but received none', 'INVALID_ARGUMENT');
  integerAtLeast(maxTokens, 'maxTokens', 1);
  const bad = lengths.find((l) => !Number.isInteger(l) || l < 1 || l > maxTokens);
  if (bad !== undefined) throw new DoveError(`Expected lengths between 1 and ${maxTokens} but found ${bad}`, 'INVALID_ARGUMENT');
  const n = lengths.length;
  const mean = lengths.reduce((s, v) => s + v, 0) / n;
  const variance = lengths.reduce((s, v) => s + (v - mean) ** 2, 0) / n;
  const ratio = mean / maxTokens;
  return {
    count: n,
    mean,
    median: medianOf(lengths),
    min: minOf(lengths),
    max: maxOf(lengths),
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
  return parseLengthsCsv(decodeFsBytes(await readFileChecked(file)), file);
}

/** The rows of lengths.csv text (image names may hold escaped bytes, lib/base/files.ts). */
export function parseLengthsCsv(text: string, file = 'lengths.csv'): ImageLength[] {
  const { records } = parseCsv(text);
  const header = records[0] ?? [];
  const imageCol = header.indexOf('image');
  const lengthCol = header.indexOf('eos_length');
  if (imageCol < 0 || lengthCol < 0) {
    throw new DoveError(`${displayPath(file)}: expected a header with 'image' and 'eos_length' columns (as written by dove reconstruct-batch) but found ${preview(header.join(','))}`, 'INVALID_ARGUMENT');
  }
  return records.slice(1).map((cells, i) => {
    const raw = cells[lengthCol] ?? '';
    const length = /^\d+$/.test(raw) ? Number(raw) : Number.NaN;
    if (!Number.isSafeInteger(length) || length < 1) {
      throw new DoveError(`${displayPath(file)}: row ${i + 2} has eos_length ${preview(raw)}, expected a positive integer`, 'INVALID_ARGUMENT');
    }
    return { image: cells[imageCol] ?? '', length };
  });
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
  const files = await listImageFiles(dir);
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
