// The training data pipeline: an image folder (and Q-DOVE annotations) -> seeded per-epoch order,
// sharded by rank -> random resized crop + flip with sharp (libuv pool) -> one contiguous
// (B, S, S, 3) uint8 batch, prepared ahead while the current step runs.
import { join, parse as parsePath, relative } from 'node:path';
import sharp from 'sharp';
import { DoveError } from '../base/errors';
import { IMAGE_EXTENSIONS, listImageFiles } from '../base/files';
import { readImageFile } from '../io/image-file';
import { boxMask, type Annotation } from './annotations';
import { epochPermutation, hash32, Rng } from './rng';

// libvips keeps the results of recent operations for an identical later one (sharp.cache: up to
// 50 MB by default). A training stream decodes each file once per epoch with a fresh random crop, so
// nothing repeats and the cache only grows the process, by up to its limit (bench/memory's training
// RSS). The limits are process-wide: a Trainer turns the cache off while it runs and the last one
// to finish restores the limits it found.
let cacheHolders = 0;
let savedCacheLimits: { memory: number; files: number; items: number } | undefined;

/** Turns libvips' operation cache off until the returned function is called (once is enough). */
export function suspendOperationCache(): () => void {
  if (cacheHolders++ === 0) {
    const { memory, files, items } = sharp.cache();
    savedCacheLimits = { memory: memory.max, files: files.max, items: items.max };
    sharp.cache(false);
  }
  let released = false;
  return () => {
    if (released) return;
    released = true;
    if (--cacheHolders === 0 && savedCacheLimits !== undefined) sharp.cache(savedCacheLimits);
  };
}

export interface Sample {
  file: string;
  annotation?: Annotation;
}

/** Samples for training: every image, or (Q-DOVE) every annotation with its image found by id. */
export async function buildSamples(images: string, recursive: boolean, annotations?: readonly Annotation[], annotationsFile = 'annotations'): Promise<Sample[]> {
  const files = await listImageFiles(images, { recursive });
  if (annotations === undefined) {
    if (files.length === 0) throw new DoveError(`${images}: no images found (extensions ${IMAGE_EXTENSIONS.join(' ')})`, 'FILE_NOT_FOUND');
    return files.map((file) => ({ file }));
  }
  // image_id -> file: the file's stem (any extension), also with its sub-folder when recursive.
  const byId = new Map<string, string>();
  for (const file of files) {
    const p = parsePath(relative(images, file));
    byId.set(p.name, byId.get(p.name) ?? file);
    byId.set(join(p.dir, p.name), file);
  }
  return annotations.map((annotation) => {
    const file = byId.get(annotation.imageId);
    if (file === undefined) {
      throw new DoveError(`${annotationsFile}: entry ${annotation.index}: image_id ${JSON.stringify(annotation.imageId)} matches no image in ${images}`, 'INVALID_ANNOTATION');
    }
    return { file, annotation };
  });
}

export interface Crop {
  left: number;
  top: number;
  width: number;
  height: number;
  flip: boolean;
}

export interface AugmentOptions {
  /** Fraction of the image area a crop covers (torchvision RandomResizedCrop). */
  scale: [number, number];
  ratio: [number, number];
  flip: boolean;
}

export const DEFAULT_AUGMENT: AugmentOptions = { scale: [0.5, 1], ratio: [3 / 4, 4 / 3], flip: true };
/** Whole image, mirrored half of the time: for folders of crops already cut at the model's size and scale. */
export const FLIP_ONLY: AugmentOptions = { scale: [1, 1], ratio: [1, 1], flip: true };

/** torchvision's RandomResizedCrop choice, with its centre-crop fallback after 10 tries. */
export function randomCrop(width: number, height: number, rng: Rng, aug: AugmentOptions | null): Crop {
  if (aug !== null) {
    const area = width * height;
    for (let attempt = 0; attempt < 10; attempt++) {
      const target = area * rng.uniform(aug.scale[0], aug.scale[1]);
      const logRatio = rng.uniform(Math.log(aug.ratio[0]), Math.log(aug.ratio[1]));
      const aspect = Math.exp(logRatio);
      const w = Math.round(Math.sqrt(target * aspect));
      const h = Math.round(Math.sqrt(target / aspect));
      if (w >= 1 && h >= 1 && w <= width && h <= height) {
        return { left: rng.int(width - w + 1), top: rng.int(height - h + 1), width: w, height: h, flip: aug.flip && rng.next() < 0.5 };
      }
    }
  }
  const side = Math.min(width, height);
  return { left: Math.floor((width - side) / 2), top: Math.floor((height - side) / 2), width: side, height: side, flip: aug !== null && aug.flip && rng.next() < 0.5 };
}

/** Decodes one image and returns its size×size RGB crop and the crop that was taken. */
export async function loadCrop(file: string, size: number, rng: Rng, aug: AugmentOptions | null, maxInputPixels: number): Promise<{ pixels: Buffer; crop: Crop }> {
  const { bytes, release } = await readImageFile(file, maxInputPixels);
  try {
    const options = { failOn: 'error' as const, limitInputPixels: maxInputPixels, autoOrient: true };
    const meta = await sharp(bytes, options).metadata();
    if (meta.width === undefined || meta.height === undefined) throw new Error('no image dimensions in header');
    const rotated = (meta.orientation ?? 1) >= 5;
    const width = rotated ? meta.height : meta.width;
    const height = rotated ? meta.width : meta.height;
    const crop = randomCrop(width, height, rng, aug);
    let pipeline = sharp(bytes, options)
      .extract({ left: crop.left, top: crop.top, width: crop.width, height: crop.height })
      .resize(size, size, { fit: 'fill' });
    if (crop.flip) pipeline = pipeline.flop();
    const { data, info } = await pipeline.flatten({ background: { r: 0, g: 0, b: 0 } }).toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
    if (info.channels !== 3 || info.width !== size || info.height !== size) {
      throw new Error(`decoded to ${info.width}x${info.height}x${info.channels}, expected ${size}x${size}x3`);
    }
    return { pixels: data, crop };
  } finally {
    release();
  }
}

export interface Batch {
  epoch: number;
  step: number;
  /** Images actually in the batch (unreadable ones are skipped). */
  count: number;
  /**
   * count×size×size×3, one contiguous buffer. The loader reuses batch memory (BatchMemory): it stays
   * valid until the second get() after the one that returned it.
   */
  pixels: Uint8Array;
  /** Q-DOVE: count×size×size region mask (1 inside the boxes). */
  regionMask?: Float32Array;
  questions?: string[];
  files: string[];
}

export interface LoaderOptions {
  size: number;
  batchSize: number;
  seed: number;
  rank: number;
  worldSize: number;
  augment: AugmentOptions | null;
  /** Batches prepared ahead of the one being trained on. */
  prefetch: number;
  maxInputPixels: number;
  /** Called once per file that cannot be decoded (the sample is skipped). */
  onSkip: (file: string, reason: string) => void;
}

/**
 * Batch buffers reused round-robin. A fresh buffer per batch would be garbage after its step, but a
 * garbage ArrayBuffer that reached V8's old space waits for a full collection, which V8 starts only
 * after about 64 MB more external memory: in bench/memory's training run (tiny, batch 2) the process's
 * ArrayBuffer memory grew by one batch (24 KB) a step, and global.gc() gave all of it back.
 * Slots go to batches in the order they are requested (a ticket each), not in the order their
 * images finish loading, so how long a batch stays intact depends only on the requests after it.
 */
class BatchMemory {
  private readonly pixels: Uint8Array[] = [];
  private readonly masks: Float32Array[] = [];
  private readonly owners: number[] = [];
  private tickets = 0;

  constructor(
    private readonly slots: number,
    private readonly size: number,
    private readonly maxImages: number,
  ) {}

  /** A ticket for the next slot; the slot's previous ticket loses it. */
  reserve(): number {
    const ticket = this.tickets++;
    this.owners[ticket % this.slots] = ticket;
    return ticket;
  }

  /**
   * The ticket's pixels for `images` images and, with `withMask`, its region mask (zeroed). A ticket
   * whose slot went to a later one meanwhile (a batch get() skipped, still loading) gets new memory.
   */
  take(ticket: number, images: number, withMask: boolean): { pixels: Uint8Array; mask: Float32Array | undefined } {
    const slot = ticket % this.slots;
    const plane = this.size * this.size;
    if (this.owners[slot] !== ticket) {
      return { pixels: new Uint8Array(images * plane * 3), mask: withMask ? new Float32Array(images * plane) : undefined };
    }
    const pixels = (this.pixels[slot] ??= new Uint8Array(this.maxImages * plane * 3)).subarray(0, images * plane * 3);
    const mask = withMask ? (this.masks[slot] ??= new Float32Array(this.maxImages * plane)).subarray(0, images * plane).fill(0) : undefined;
    return { pixels, mask };
  }
}

export class BatchLoader {
  readonly stepsPerEpoch: number;
  private readonly pending = new Map<string, Promise<Batch>>();
  private readonly bad = new Set<string>();
  // The batch get() returned last: what an unreadable batch right after it repeats.
  private lastReturned: Batch | undefined;
  // A batch returned by get() is in use until the second get() after it. Requested after it by then:
  // the prefetch of its own get() and the next one's batch and prefetch, at most 2 * prefetch + 1 when
  // that get() skips ahead; one slot more and its slot is never handed on while it is in use.
  private readonly memory: BatchMemory;

  constructor(
    readonly samples: readonly Sample[],
    readonly options: LoaderOptions,
  ) {
    this.memory = new BatchMemory(2 * options.prefetch + 2, options.size, options.batchSize);
    const global = options.batchSize * options.worldSize;
    this.stepsPerEpoch = Math.floor(samples.length / global);
    if (this.stepsPerEpoch < 1) {
      throw new DoveError(
        `Expected at least ${global} training samples (batch size ${options.batchSize} × ${options.worldSize} process${options.worldSize > 1 ? 'es' : ''}) but found ${samples.length}`,
        'INVALID_ARGUMENT',
      );
    }
  }

  /** The batch for (epoch, step), starting the next `prefetch` batches in the background. */
  async get(epoch: number, step: number): Promise<Batch> {
    const batch = this.request(epoch, step);
    for (let k = 1; k <= this.options.prefetch; k++) {
      const s = step + k;
      if (s < this.stepsPerEpoch) this.request(epoch, s);
      else this.request(epoch + 1, s - this.stepsPerEpoch);
    }
    for (const key of this.pending.keys()) {
      const [e, s] = key.split(':').map(Number) as [number, number];
      if (e < epoch || (e === epoch && s < step)) this.pending.delete(key);
    }
    const result = await batch;
    this.pending.delete(`${epoch}:${step}`);
    this.lastReturned = result;
    return result;
  }

  /** The batch before (epoch, step) in order, when this run has it: prefetched, or returned last. */
  private previous(epoch: number, step: number): Promise<Batch> | Batch | undefined {
    const [e, s] = step > 0 ? [epoch, step - 1] : [epoch - 1, this.stepsPerEpoch - 1];
    const last = this.lastReturned;
    return this.pending.get(`${e}:${s}`) ?? (last !== undefined && last.epoch === e && last.step === s ? last : undefined);
  }

  private request(epoch: number, step: number): Promise<Batch> {
    const key = `${epoch}:${step}`;
    let p = this.pending.get(key);
    if (p === undefined) {
      p = this.build(epoch, step, this.memory.reserve());
      // Prefetched batches that are never awaited must not become unhandled rejections.
      p.catch(() => undefined);
      this.pending.set(key, p);
    }
    return p;
  }

  private async build(epoch: number, step: number, ticket: number): Promise<Batch> {
    const { size, batchSize, seed, rank, worldSize } = this.options;
    const order = epochPermutation(this.samples.length, seed, epoch);
    const first = (step * worldSize + rank) * batchSize;
    const positions = Array.from({ length: batchSize }, (_, i) => first + i);
    const loaded = await Promise.all(positions.map(async (pos) => {
      const sample = this.samples[order[pos]!]!;
      if (this.bad.has(sample.file)) return null;
      try {
        const rng = new Rng(hash32(seed, epoch, pos));
        return { sample, ...(await loadCrop(sample.file, size, rng, this.options.augment, this.options.maxInputPixels)) };
      } catch (error) {
        if (!this.bad.has(sample.file)) {
          this.bad.add(sample.file);
          this.options.onSkip(sample.file, (error as Error).message);
        }
        return null;
      }
    }));
    const good = loaded.filter((x): x is NonNullable<typeof x> => x !== null);
    if (good.length === 0) {
      // Every process must take the same number of steps (collectives pair up by order), so a batch
      // with nothing readable repeats the one before it instead of being dropped: the one in order,
      // which a prefetched batch may have to wait for. The copy takes a slot of its own; the batch
      // before is still intact (it is in use at most until this one is returned).
      const before = this.previous(epoch, step);
      if (before === undefined) {
        throw new DoveError(`No readable image in the batch at epoch ${epoch} step ${step}, and no batch before it in this run to repeat`, 'INVALID_IMAGE');
      }
      const last = await before;
      const { pixels, mask } = this.memory.take(ticket, last.count, last.regionMask !== undefined);
      pixels.set(last.pixels);
      if (mask !== undefined && last.regionMask !== undefined) mask.set(last.regionMask);
      return { ...last, epoch, step, pixels, ...(mask !== undefined ? { regionMask: mask } : {}) };
    }
    const plane = size * size;
    const annotated = good.some((g) => g.sample.annotation !== undefined);
    const { pixels, mask } = this.memory.take(ticket, good.length, annotated);
    good.forEach((g, i) => pixels.set(g.pixels, i * plane * 3));
    const batch: Batch = { epoch, step, count: good.length, pixels, files: good.map((g) => g.sample.file) };
    if (mask !== undefined) {
      good.forEach((g, i) => boxMask(g.sample.annotation?.boxes ?? [], g.crop, size, g.crop.flip, mask, i * plane));
      batch.regionMask = mask;
      batch.questions = good.map((g) => g.sample.annotation?.question ?? '');
    }
    return batch;
  }
}
