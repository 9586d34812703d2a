// Small charts for evaluation reports: SVG drawn here, rasterised to PNG by sharp (librsvg).
// Line charts (metric vs token count, log2 x axis for power-of-two budgets) and histograms.
import { maxOf, minOf } from '../base/arrays';
import sharp from 'sharp';
import { DoveError } from '../base/errors';
import { integerInRange } from '../base/validate';
import { escapeXml } from './xml';

export interface Point {
  x: number;
  y: number;
}

export interface Series {
  name: string;
  points: Point[];
}

/** A horizontal reference line (e.g. the EOS-chosen "auto" length's score). */
export interface ReferenceLine {
  y: number;
  label: string;
}

export interface LineChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  width?: number;
  height?: number;
  /** Log2 x axis; default on when every x > 0 and they span at least 8x. */
  logX?: boolean;
  /** Log10 y axis (ticks at powers of ten); points with y <= 0 are left out. */
  logY?: boolean;
  /** Draw the empty frame instead of refusing when no point is plottable (a diverged training run). */
  allowEmpty?: boolean;
  references?: ReferenceLine[];
}

export interface HistogramOptions {
  title: string;
  xLabel: string;
  yLabel?: string;
  width?: number;
  height?: number;
  /** Bin width (default 1 for integers up to 64 distinct values, else ~30 bins). */
  binWidth?: number;
  /** Vertical markers (e.g. mean and median). */
  markers?: { x: number; label: string }[];
}

const COLOURS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b'];
const MARGIN = { left: 72, right: 24, top: 44, bottom: 56 };

function fmt(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-3) return v.toExponential(1);
  if (Number.isInteger(v)) return String(v);
  return Number(v.toPrecision(3)).toString();
}

/** About `count` round tick values covering [lo, hi]. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const ticks: number[] = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(Number(t.toPrecision(12)));
  return ticks;
}

/** A chart's size (default 720×440, checked) and the plot area inside its margins. */
function layout(options: { width?: number; height?: number }): { width: number; height: number; pw: number; ph: number } {
  const width = integerInRange(options.width ?? 720, 'width', 200, 4000);
  const height = integerInRange(options.height ?? 440, 'height', 200, 4000);
  return { width, height, pw: width - MARGIN.left - MARGIN.right, ph: height - MARGIN.top - MARGIN.bottom };
}

function frame(width: number, height: number, title: string, xLabel: string, yLabel: string, body: string[]): string {
  const cy = MARGIN.top + (height - MARGIN.top - MARGIN.bottom) / 2;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="DejaVu Sans, sans-serif">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${width / 2}" y="26" font-size="16" text-anchor="middle" font-weight="bold">${escapeXml(title)}</text>`,
    `<text x="${(MARGIN.left + width - MARGIN.right) / 2}" y="${height - 14}" font-size="13" text-anchor="middle">${escapeXml(xLabel)}</text>`,
    `<text x="18" y="${cy}" font-size="13" text-anchor="middle" transform="rotate(-90 18 ${cy})">${escapeXml(yLabel)}</text>`,
    ...body,
    '</svg>',
  ].join('\n');
}

export function lineChartSvg(series: readonly Series[], options: LineChartOptions): string {
  const { width, height, pw, ph } = layout(options);
  const logY = options.logY === true;
  const plottable = (p: Point): boolean => Number.isFinite(p.x) && Number.isFinite(p.y) && (!logY || p.y > 0);
  const points = series.flatMap((s) => s.points).filter(plottable);
  const refs = (options.references ?? []).filter((r) => Number.isFinite(r.y) && (!logY || r.y > 0));
  if (points.length === 0) {
    if (options.allowEmpty === true) return frame(width, height, options.title, options.xLabel, options.yLabel, []);
    throw new DoveError(`Nothing to plot for "${options.title}": no finite points`, 'INVALID_ARGUMENT');
  }
  const ty = (y: number): number => (logY ? Math.log10(y) : y);
  const xs = points.map((p) => p.x);
  const ys = [...points.map((p) => ty(p.y)), ...refs.map((r) => ty(r.y))];
  const xMin = minOf(xs);
  const xMax = maxOf(xs);
  const logX = options.logX ?? (xMin > 0 && xMax / xMin >= 8);
  const tx = (x: number): number => (logX ? Math.log2(x) : x);
  let [x0, x1] = [tx(xMin), tx(xMax)];
  if (x0 === x1) [x0, x1] = [x0 - 1, x1 + 1];
  let y0 = minOf(ys);
  let y1 = maxOf(ys);
  const pad = y1 > y0 ? (y1 - y0) * 0.08 : Math.max(Math.abs(y0) * 0.1, 1);
  [y0, y1] = [y0 - pad, y1 + pad];
  const px = (x: number): number => MARGIN.left + ((tx(x) - x0) / (x1 - x0)) * pw;
  // Ticks live in axis space (log10 of the value on a log axis); py places a value.
  const pyAxis = (v: number): number => MARGIN.top + (1 - (v - y0) / (y1 - y0)) * ph;
  const py = (y: number): number => pyAxis(ty(y));
  const body: string[] = [];
  const yTicks = logY ? Array.from({ length: Math.max(0, Math.floor(y1) - Math.ceil(y0) + 1) }, (_, i) => Math.ceil(y0) + i) : niceTicks(y0, y1);
  for (const t of yTicks) {
    body.push(`<line x1="${MARGIN.left}" x2="${width - MARGIN.right}" y1="${pyAxis(t)}" y2="${pyAxis(t)}" stroke="#e5e5e5"/>`);
    body.push(`<text x="${MARGIN.left - 6}" y="${pyAxis(t) + 4}" font-size="11" text-anchor="end">${logY ? `1e${t}` : fmt(t)}</text>`);
  }
  const xTicks = logX ? [...new Set(xs)].sort((a, b) => a - b) : niceTicks(xMin, xMax);
  for (const t of xTicks) {
    body.push(`<line x1="${px(t)}" x2="${px(t)}" y1="${MARGIN.top}" y2="${height - MARGIN.bottom}" stroke="#f0f0f0"/>`);
    body.push(`<text x="${px(t)}" y="${height - MARGIN.bottom + 16}" font-size="11" text-anchor="middle">${fmt(t)}</text>`);
  }
  body.push(`<rect x="${MARGIN.left}" y="${MARGIN.top}" width="${pw}" height="${ph}" fill="none" stroke="#444"/>`);
  refs.forEach((r, i) => {
    const colour = COLOURS[(series.length + i) % COLOURS.length];
    body.push(`<line x1="${MARGIN.left}" x2="${width - MARGIN.right}" y1="${py(r.y)}" y2="${py(r.y)}" stroke="${colour}" stroke-dasharray="6 4"/>`);
    body.push(`<text x="${width - MARGIN.right - 4}" y="${py(r.y) - 5}" font-size="11" text-anchor="end" fill="${colour}">${escapeXml(r.label)}</text>`);
  });
  series.forEach((s, i) => {
    const colour = COLOURS[i % COLOURS.length];
    const pts = s.points.filter(plottable).sort((a, b) => a.x - b.x);
    if (pts.length === 0) return;
    body.push(`<polyline fill="none" stroke="${colour}" stroke-width="2" points="${pts.map((p) => `${px(p.x)},${py(p.y)}`).join(' ')}"/>`);
    for (const p of pts) body.push(`<circle cx="${px(p.x)}" cy="${py(p.y)}" r="3.5" fill="${colour}"/>`);
    if (series.length > 1) {
      body.push(`<text x="${MARGIN.left + 10}" y="${MARGIN.top + 16 + 16 * i}" font-size="12" fill="${colour}">${escapeXml(s.name)}</text>`);
    }
  });
  return frame(width, height, options.title, options.xLabel + (logX ? ' (log scale)' : ''), options.yLabel + (logY ? ' (log scale)' : ''), body);
}

export interface HistogramBins {
  edges: number[];
  counts: number[];
}

export function histogramBins(values: readonly number[], binWidth?: number): HistogramBins {
  const finite = values.filter((v) => Number.isFinite(v));
  if (finite.length === 0) throw new DoveError('Nothing to plot: no finite values for the histogram', 'INVALID_ARGUMENT');
  const lo = minOf(finite);
  const hi = maxOf(finite);
  const integers = finite.every((v) => Number.isInteger(v));
  const width = binWidth ?? (integers ? Math.max(1, Math.ceil((hi - lo + 1) / 64)) : Math.max((hi - lo) / 30, Number.EPSILON));
  if (!(width > 0)) throw new DoveError(`Expected a positive bin width but received ${width}`, 'INVALID_ARGUMENT');
  // Integer values (token lengths) get bins centred on whole numbers.
  const start = integers ? lo - 0.5 : lo;
  const bins = integers ? Math.floor((hi - start) / width) + 1 : Math.max(1, Math.ceil((hi - start) / width));
  const counts = new Array<number>(bins).fill(0);
  for (const v of finite) counts[Math.min(bins - 1, Math.floor((v - start) / width))]! += 1;
  const edges = Array.from({ length: bins + 1 }, (_, i) => start + i * width);
  return { edges, counts };
}

export function histogramSvg(values: readonly number[], options: HistogramOptions): string {
  const { width, height, pw, ph } = layout(options);
  const { edges, counts } = histogramBins(values, options.binWidth);
  const x0 = edges[0]!;
  const x1 = edges[edges.length - 1]!;
  const yMax = maxOf(counts) * 1.08;
  const px = (x: number): number => MARGIN.left + ((x - x0) / (x1 - x0)) * pw;
  const py = (y: number): number => MARGIN.top + (1 - y / yMax) * ph;
  const body: string[] = [];
  for (const t of niceTicks(0, yMax)) {
    body.push(`<line x1="${MARGIN.left}" x2="${width - MARGIN.right}" y1="${py(t)}" y2="${py(t)}" stroke="#e5e5e5"/>`);
    body.push(`<text x="${MARGIN.left - 6}" y="${py(t) + 4}" font-size="11" text-anchor="end">${fmt(t)}</text>`);
  }
  counts.forEach((c, i) => {
    if (c === 0) return;
    const xa = px(edges[i]!);
    const xb = px(edges[i + 1]!);
    body.push(`<rect x="${xa + 0.5}" y="${py(c)}" width="${Math.max(1, xb - xa - 1)}" height="${py(0) - py(c)}" fill="${COLOURS[0]}"/>`);
  });
  for (const t of niceTicks(x0, x1, 8)) {
    body.push(`<text x="${px(t)}" y="${height - MARGIN.bottom + 16}" font-size="11" text-anchor="middle">${fmt(t)}</text>`);
  }
  body.push(`<rect x="${MARGIN.left}" y="${MARGIN.top}" width="${pw}" height="${ph}" fill="none" stroke="#444"/>`);
  (options.markers ?? []).forEach((m, i) => {
    if (!Number.isFinite(m.x)) return;
    const colour = COLOURS[(i + 1) % COLOURS.length];
    body.push(`<line x1="${px(m.x)}" x2="${px(m.x)}" y1="${MARGIN.top}" y2="${height - MARGIN.bottom}" stroke="${colour}" stroke-width="2" stroke-dasharray="6 4"/>`);
    body.push(`<text x="${px(m.x) + 4}" y="${MARGIN.top + 14 + 14 * i}" font-size="11" fill="${colour}">${escapeXml(m.label)}</text>`);
  });
  return frame(width, height, options.title, options.xLabel, options.yLabel ?? 'images', body);
}

export async function svgToPng(svg: string): Promise<Buffer> {
  // librsvg maps SVG px at 72 dpi: density 72 keeps the requested width and height in pixels.
  return sharp(Buffer.from(svg), { density: 72 }).png().toBuffer();
}

export async function lineChartPng(series: readonly Series[], options: LineChartOptions): Promise<Buffer> {
  return svgToPng(lineChartSvg(series, options));
}

export async function histogramPng(values: readonly number[], options: HistogramOptions): Promise<Buffer> {
  return svgToPng(histogramSvg(values, options));
}
