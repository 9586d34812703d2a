// Q-DOVE annotations in the original project's format: a JSON array of
// {image_id, question, answer | null, bounding_box: [[x, y, w, h], ...]} (pixels in the original image).
// Everything is checked before training starts; a bad entry is reported with its index and field.
import { DoveError } from '../base/errors';
import { displayPath, readFileChecked } from '../base/files';
import { isJsonObject, parseJson, preview } from '../base/json';

export type Box = [number, number, number, number];

export interface Annotation {
  /** Index in the annotation file (for messages). */
  index: number;
  imageId: string;
  question: string;
  answer: string | null;
  boxes: Box[];
}

function bad(file: string, index: number, field: string, problem: string): DoveError {
  return new DoveError(`${file}: entry ${index}: ${field} ${problem}`, 'INVALID_ANNOTATION');
}

/** Validates parsed JSON (an array of entries) and returns typed annotations. */
export function parseAnnotations(file: string, data: unknown): Annotation[] {
  if (!Array.isArray(data)) {
    throw new DoveError(`${file}: expected a JSON array of annotation entries but received ${data === null ? 'null' : typeof data}`, 'INVALID_ANNOTATION');
  }
  if (data.length === 0) throw new DoveError(`${file}: no annotation entries`, 'INVALID_ANNOTATION');
  return data.map((e: unknown, index): Annotation => {
    if (!isJsonObject(e)) throw bad(file, index, 'entry', `must be an object but received ${preview(e)}`);
    const id = e.image_id;
    if (!((typeof id === 'string' && id.length > 0) || (typeof id === 'number' && Number.isInteger(id) && id >= 0))) {
      throw bad(file, index, 'image_id', `must be a non-empty string or a non-negative integer but received ${preview(id)}`);
    }
    if (typeof e.question !== 'string' || e.question.trim().length === 0) {
      throw bad(file, index, 'question', `must be a non-empty string but received ${preview(e.question)}`);
    }
    if (!('answer' in e) || (e.answer !== null && typeof e.answer !== 'string')) {
      throw bad(file, index, 'answer', `must be a string or null but received ${preview(e.answer)}`);
    }
    const boxes = e.bounding_box;
    if (!Array.isArray(boxes) || boxes.length === 0) {
      throw bad(file, index, 'bounding_box', `must be a non-empty array of [x, y, w, h] but received ${preview(boxes)}`);
    }
    const parsed = boxes.map((box: unknown, j): Box => {
      const ok = Array.isArray(box) && box.length === 4 && box.every((v) => typeof v === 'number' && Number.isFinite(v));
      if (!ok) throw bad(file, index, `bounding_box[${j}]`, `must be [x, y, w, h] of 4 finite numbers but received ${preview(box)}`);
      const [x, y, w, h] = box as number[];
      if (x! < 0 || y! < 0 || !(w! > 0) || !(h! > 0)) {
        throw bad(file, index, `bounding_box[${j}]`, `needs x >= 0, y >= 0, w > 0, h > 0 but received ${preview(box)}`);
      }
      return [x!, y!, w!, h!];
    });
    return { index, imageId: String(id), question: e.question, answer: (e.answer as string | null), boxes: parsed };
  });
}

export async function loadAnnotations(file: string): Promise<Annotation[]> {
  return parseAnnotationsText(file, (await readFileChecked(file, 'read annotations')).toString('utf8'));
}

/** Parses the text of an annotations file (JSON, at most 64 levels deep) and validates it. */
export function parseAnnotationsText(file: string, text: string): Annotation[] {
  return parseAnnotations(file, parseJson(text, displayPath(file), 'INVALID_ANNOTATION'));
}

/**
 * Rasterises boxes (original-image pixels) into a size×size mask after the crop (left, top, width,
 * height in the original) was resized to size×size and optionally mirrored. A mask pixel is 1 when its
 * centre lies inside any box.
 */
export function boxMask(boxes: readonly Box[], crop: { left: number; top: number; width: number; height: number }, size: number, flip: boolean, out: Float32Array, offset: number): void {
  const sx = size / crop.width;
  const sy = size / crop.height;
  for (const [bx, by, bw, bh] of boxes) {
    let x0 = (bx - crop.left) * sx;
    let x1 = (bx + bw - crop.left) * sx;
    const y0 = (by - crop.top) * sy;
    const y1 = (by + bh - crop.top) * sy;
    if (flip) [x0, x1] = [size - x1, size - x0];
    const r0 = Math.max(0, Math.ceil(y0 - 0.5));
    const r1 = Math.min(size - 1, Math.ceil(y1 - 0.5) - 1);
    const c0 = Math.max(0, Math.ceil(x0 - 0.5));
    const c1 = Math.min(size - 1, Math.ceil(x1 - 0.5) - 1);
    for (let r = r0; r <= r1; r++) {
      out.fill(1, offset + r * size + c0, c1 >= c0 ? offset + r * size + c1 + 1 : offset + r * size + c0);
    }
  }
}
