// Labelled image grids (the input, one column per token length, the EOS choice; the trainer's
// input | reconstruction pairs; the serve page's previews), each image under a label. Labels are SVG text rendered by sharp when the system has a font
// (fc-list); otherwise a built-in 5x7 bitmap font draws them, so no install is ever required.
import { execFileSync } from 'node:child_process';
import sharp from 'sharp';
import type { OverlayOptions } from 'sharp';
import { valueOr } from '../base/errors';
import { escapeXml } from './xml';

export interface GridColumn {
  label: string;
  /** size×size×3 RGB uint8. */
  pixels: Uint8Array;
}

export interface GridOptions {
  /** Side of each image in the input pixels. */
  size: number;
  /** Minimum displayed side; small models are upscaled with nearest neighbour so pixels stay visible. */
  minCell?: number;
  /** 'svg' (system font), 'bitmap' (built-in), or 'auto' (svg when fc-list finds a font). */
  font?: 'auto' | 'svg' | 'bitmap';
}

export const GRID_GAP = 4;
export const GRID_LABEL_HEIGHT = 22;

let fontCache: boolean | undefined;
/** True when fontconfig lists at least one font (what sharp's SVG text rendering needs). */
export function systemHasFont(): boolean {
  fontCache ??= valueOr(() => execFileSync('fc-list', [':', 'family'], { encoding: 'utf8', timeout: 5000, stdio: ['ignore', 'pipe', 'ignore'] }).trim().length > 0, false);
  return fontCache;
}

// 5x7 glyphs for the label alphabet (upper case, digits, a few signs).
const GLYPHS: { [ch: string]: string[] } = {
  '0': ['.###.', '#...#', '#..##', '#.#.#', '##..#', '#...#', '.###.'],
  '1': ['..#..', '.##..', '..#..', '..#..', '..#..', '..#..', '.###.'],
  '2': ['.###.', '#...#', '....#', '...#.', '..#..', '.#...', '#####'],
  '3': ['####.', '....#', '....#', '.###.', '....#', '....#', '####.'],
  '4': ['...#.', '..##.', '.#.#.', '#..#.', '#####', '...#.', '...#.'],
  '5': ['#####', '#....', '####.', '....#', '....#', '#...#', '.###.'],
  '6': ['.###.', '#....', '#....', '####.', '#...#', '#...#', '.###.'],
  '7': ['#####', '....#', '...#.', '..#..', '.#...', '.#...', '.#...'],
  '8': ['.###.', '#...#', '#...#', '.###.', '#...#', '#...#', '.###.'],
  '9': ['.###.', '#...#', '#...#', '.####', '....#', '....#', '.###.'],
  A: ['.###.', '#...#', '#...#', '#####', '#...#', '#...#', '#...#'],
  C: ['.###.', '#...#', '#....', '#....', '#....', '#...#', '.###.'],
  D: ['####.', '#...#', '#...#', '#...#', '#...#', '#...#', '####.'],
  E: ['#####', '#....', '#....', '####.', '#....', '#....', '#####'],
  I: ['.###.', '..#..', '..#..', '..#..', '..#..', '..#..', '.###.'],
  K: ['#...#', '#..#.', '#.#..', '##...', '#.#..', '#..#.', '#...#'],
  L: ['#....', '#....', '#....', '#....', '#....', '#....', '#####'],
  N: ['#...#', '##..#', '#.#.#', '#..##', '#...#', '#...#', '#...#'],
  O: ['.###.', '#...#', '#...#', '#...#', '#...#', '#...#', '.###.'],
  P: ['####.', '#...#', '#...#', '####.', '#....', '#....', '#....'],
  S: ['.####', '#....', '#....', '.###.', '....#', '....#', '####.'],
  T: ['#####', '..#..', '..#..', '..#..', '..#..', '..#..', '..#..'],
  U: ['#...#', '#...#', '#...#', '#...#', '#...#', '#...#', '.###.'],
  '=': ['.....', '.....', '#####', '.....', '#####', '.....', '.....'],
  ':': ['.....', '..#..', '.....', '.....', '.....', '..#..', '.....'],
  '.': ['.....', '.....', '.....', '.....', '.....', '..#..', '.....'],
  '-': ['.....', '.....', '.....', '#####', '.....', '.....', '.....'],
  ' ': ['.....', '.....', '.....', '.....', '.....', '.....', '.....'],
  '?': ['.###.', '#...#', '....#', '...#.', '..#..', '.....', '..#..'],
};

/** Renders a label as RGBA with the built-in bitmap font (scale 2, black on transparent). */
export function bitmapLabel(text: string, width: number, height: number): Buffer {
  const out = Buffer.alloc(width * height * 4);
  const scale = 2;
  const glyphW = 6 * scale;
  const chars = [...text.toUpperCase()];
  const textW = chars.length * glyphW - scale;
  const x0 = Math.max(0, Math.floor((width - textW) / 2));
  const y0 = Math.max(0, Math.floor((height - 7 * scale) / 2));
  chars.forEach((ch, ci) => {
    const glyph = GLYPHS[ch] ?? GLYPHS['?']!;
    for (let gy = 0; gy < 7; gy++) {
      for (let gx = 0; gx < 5; gx++) {
        if (glyph[gy]![gx] !== '#') continue;
        for (let sy = 0; sy < scale; sy++) {
          for (let sx = 0; sx < scale; sx++) {
            const x = x0 + ci * glyphW + gx * scale + sx;
            const y = y0 + gy * scale + sy;
            if (x < width && y < height) out[(y * width + x) * 4 + 3] = 255;
          }
        }
      }
    }
  });
  return out;
}

async function labelOverlay(text: string, width: number, height: number, useSvg: boolean): Promise<OverlayOptions> {
  if (useSvg) {
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}"><text x="${width / 2}" y="${height - 6}" font-family="DejaVu Sans, sans-serif" font-size="14" text-anchor="middle" fill="#000">${escapeXml(text)}</text></svg>`;
    return { input: Buffer.from(svg) };
  }
  return { input: bitmapLabel(text, width, height), raw: { width, height, channels: 4 } };
}

/** Composes the grid and returns PNG bytes. Columns are laid out left to right in the given order. */
export async function composeGrid(columns: readonly GridColumn[], options: GridOptions): Promise<Buffer> {
  const { size } = options;
  const cell = Math.max(size, options.minCell ?? 128);
  const font = options.font ?? (process.env.DOVE_GRID_FONT === 'bitmap' ? 'bitmap' : 'auto');
  const useSvg = font === 'svg' || (font === 'auto' && systemHasFont());
  const width = GRID_GAP + columns.length * (cell + GRID_GAP);
  const height = GRID_LABEL_HEIGHT + cell + GRID_GAP;
  const overlays: OverlayOptions[] = [];
  for (const [i, col] of columns.entries()) {
    const left = GRID_GAP + i * (cell + GRID_GAP);
    const scaled = cell === size
      ? Buffer.from(col.pixels.buffer, col.pixels.byteOffset, col.pixels.byteLength)
      : await sharp(col.pixels, { raw: { width: size, height: size, channels: 3 } }).resize(cell, cell, { kernel: 'nearest' }).raw().toBuffer();
    overlays.push({ input: scaled, raw: { width: cell, height: cell, channels: 3 }, left, top: GRID_LABEL_HEIGHT });
    overlays.push({ ...(await labelOverlay(col.label, cell, GRID_LABEL_HEIGHT, useSvg)), left, top: 0 });
  }
  return sharp({ create: { width, height, channels: 3, background: { r: 255, g: 255, b: 255 } } })
    .composite(overlays)
    .png()
    .toBuffer();
}

/** A reconstruction at `length` tokens, size×size×3 RGB uint8. */
type SweepColumn = { length: number; pixels: Uint8Array };

/** One sweep's grid (`dove reconstruct`, the explorer): the input, one column per length, then the EOS-chosen length. */
export function sweepGrid(input: Uint8Array, lengths: readonly SweepColumn[], auto: SweepColumn, size: number): Promise<Buffer> {
  const sweep = lengths.map((c) => ({ label: `K=${c.length}`, pixels: c.pixels }));
  return composeGrid([{ label: 'INPUT', pixels: input }, ...sweep, { label: `EOS K=${auto.length}`, pixels: auto.pixels }], { size });
}

/** Where column `index`'s image sits in a grid (for tests and for cutting columns back out). */
export function gridCellRect(index: number, size: number, minCell = 128): { left: number; top: number; side: number } {
  const cell = Math.max(size, minCell);
  return { left: GRID_GAP + index * (cell + GRID_GAP), top: GRID_LABEL_HEIGHT, side: cell };
}
