// After each epoch: the loss curve (SVG drawn by sharp into a PNG) and a reconstruction grid of
// fixed sample images (input | EOS-length reconstruction), via the CLI's grid composer.
import { maxOf, minOf } from '../arrays';
import sharp from 'sharp';
import { composeGrid, type GridColumn } from '../cli/grid';

export interface CurvePoint {
  step: number;
  loss: number;
  rec?: number;
}

function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Loss (and reconstruction term) against optimizer step, log-scaled y, as PNG bytes. */
export async function lossCurvePng(points: readonly CurvePoint[], title: string, width = 640, height = 360): Promise<Buffer> {
  const pad = { left: 56, right: 16, top: 28, bottom: 36 };
  const finite = points.filter((p) => Number.isFinite(p.loss) && p.loss > 0);
  const values = finite.flatMap((p) => (p.rec !== undefined && p.rec > 0 ? [p.loss, p.rec] : [p.loss]));
  const lo = Math.log10(minOf(values, 1));
  const hi = Math.log10(maxOf(values, 1e-6));
  const yLo = Math.floor(Math.min(lo, hi - 1e-3) * 2) / 2;
  const yHi = Math.ceil(hi * 2) / 2 + (hi === lo ? 0.5 : 0);
  const s0 = finite[0]?.step ?? 0;
  const s1 = Math.max(s0 + 1, finite[finite.length - 1]?.step ?? 1);
  const x = (s: number): number => pad.left + ((s - s0) / (s1 - s0)) * (width - pad.left - pad.right);
  const y = (v: number): number => pad.top + (1 - (Math.log10(v) - yLo) / (yHi - yLo)) * (height - pad.top - pad.bottom);
  const line = (pick: (p: CurvePoint) => number | undefined): string =>
    finite.filter((p) => (pick(p) ?? 0) > 0).map((p) => `${x(p.step).toFixed(1)},${y(pick(p)!).toFixed(1)}`).join(' ');
  const ticks: string[] = [];
  for (let e = Math.ceil(yLo); e <= Math.floor(yHi); e++) {
    ticks.push(`<line x1="${pad.left}" x2="${width - pad.right}" y1="${y(10 ** e)}" y2="${y(10 ** e)}" stroke="#ddd"/>`);
    ticks.push(`<text x="${pad.left - 6}" y="${y(10 ** e) + 4}" font-size="11" text-anchor="end" font-family="DejaVu Sans, sans-serif">1e${e}</text>`);
  }
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">
<rect width="100%" height="100%" fill="#fff"/>
${ticks.join('\n')}
<rect x="${pad.left}" y="${pad.top}" width="${width - pad.left - pad.right}" height="${height - pad.top - pad.bottom}" fill="none" stroke="#444"/>
<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="${line((p) => p.loss)}"/>
<polyline fill="none" stroke="#ff7f0e" stroke-width="1" points="${line((p) => p.rec)}"/>
<text x="${width / 2}" y="18" font-size="13" text-anchor="middle" font-family="DejaVu Sans, sans-serif">${escapeXml(title)}</text>
<text x="${width / 2}" y="${height - 8}" font-size="11" text-anchor="middle" font-family="DejaVu Sans, sans-serif">optimizer step (${s0}..${s1}); blue loss, orange rec</text>
</svg>`;
  return sharp(Buffer.from(svg)).png().toBuffer();
}

export interface SampleReconstruction {
  name: string;
  input: Uint8Array;
  output: Uint8Array;
  length: number;
}

export async function reconstructionGridPng(samples: readonly SampleReconstruction[], size: number): Promise<Buffer> {
  const columns: GridColumn[] = [];
  samples.forEach((s, i) => {
    columns.push({ label: `IN ${i + 1}`, pixels: s.input });
    columns.push({ label: `L=${s.length}`, pixels: s.output });
  });
  return composeGrid(columns, { size, minCell: 96 });
}
