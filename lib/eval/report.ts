// Text tables for the terminal and CSV files for evaluation results.
import { maxOf } from '../base/arrays';
import { promises as fs } from 'node:fs';
import { dirname } from 'node:path';
import { formatCsv } from '../base/csv';
import { fsError, fsPath, writeFileAtomic } from '../base/files';
import { lineChartPng } from '../render/plot';

export type Cell = string | number;

/** Numbers: Infinity as "inf", NaN as "", others with `digits` decimals. */
export function formatNumber(value: number, digits = 4): string {
  if (Number.isNaN(value)) return '';
  if (value === Infinity) return 'inf';
  if (value === -Infinity) return '-inf';
  return Number.isInteger(value) ? String(value) : value.toFixed(digits);
}

function text(cell: Cell, digits: number): string {
  return typeof cell === 'number' ? formatNumber(cell, digits) : cell;
}

/** Columns aligned with two spaces; numbers right-aligned, text left-aligned. */
export function formatTable(headers: readonly string[], rows: readonly (readonly Cell[])[], digits = 4): string {
  const cells = rows.map((r) => r.map((c) => text(c, digits)));
  const widths = headers.map((h, i) => maxOf(cells.map((r) => (r[i] ?? '').length), h.length));
  const numeric = headers.map((_, i) => rows.length > 0 && rows.every((r) => typeof r[i] === 'number'));
  const line = (r: readonly string[]): string =>
    r.map((c, i) => (numeric[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(headers), line(widths.map((w) => '-'.repeat(w))), ...cells.map(line)].join('\n');
}

/** CSV with full precision numbers (inf for infinite PSNR, empty for NaN). */
export function toCsv(headers: readonly string[], rows: readonly (readonly Cell[])[]): string {
  const cell = (c: Cell): string => (typeof c === 'number' ? (Number.isFinite(c) ? String(c) : formatNumber(c)) : c);
  return formatCsv([headers, ...rows.map((r) => r.map(cell))]);
}

/** Writes a file, creating its folder; temp file + rename so readers never see half a report. */
export async function writeReport(path: string, content: string | Buffer): Promise<void> {
  await fs.mkdir(fsPath(dirname(path)), { recursive: true }).catch((error: unknown) => {
    throw fsError(dirname(path), error, 'create folder');
  });
  await writeFileAtomic(path, content);
}

/**
 * A per-length metric (`dove fid` / `dove quality --per-length`) as a line over the fixed lengths, with
 * the EOS-chosen `auto` result as a reference line; null when no fixed length was measured.
 */
export async function lengthCurvePng<T extends { label: string; tokens: number }>(
  results: readonly T[],
  value: (result: T) => number,
  chart: { name: string; title: string; yLabel: string; digits: number; unit?: string },
): Promise<Buffer | null> {
  const fixed = results.filter((r) => Number.isFinite(r.tokens));
  if (fixed.length === 0) return null;
  const auto = results.find((r) => r.label === 'auto');
  return lineChartPng([{ name: chart.name, points: fixed.map((r) => ({ x: r.tokens, y: value(r) })) }], {
    title: chart.title,
    xLabel: 'tokens',
    yLabel: chart.yLabel,
    references: auto ? [{ y: value(auto), label: `auto (EOS): ${formatNumber(value(auto), chart.digits)}${chart.unit ?? ''}` }] : [],
  });
}
