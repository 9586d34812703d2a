// After each epoch: the loss curve and a reconstruction grid of fixed sample images
// (input | EOS-length reconstruction), drawn by the renderers in lib/render/.
import { composeGrid, type GridColumn } from '../render/grid';
import { lineChartPng } from '../render/plot';

export interface CurvePoint {
  step: number;
  loss: number;
  rec?: number;
}

/** Loss (and reconstruction term) against optimizer step, log-scaled y, as PNG bytes. */
export async function lossCurvePng(points: readonly CurvePoint[], title: string, width = 640, height = 360): Promise<Buffer> {
  const series = [
    { name: 'loss', points: points.map((p) => ({ x: p.step, y: p.loss })) },
    { name: 'rec', points: points.flatMap((p) => (p.rec === undefined ? [] : [{ x: p.step, y: p.rec }])) },
  ];
  return lineChartPng(series, { title, xLabel: 'optimizer step', yLabel: 'loss', width, height, logX: false, logY: true, allowEmpty: true });
}

export interface SampleReconstruction {
  name: string;
  input: Uint8Array;
  output: Uint8Array;
  length: number;
}

export async function reconstructionGridPng(samples: readonly SampleReconstruction[], size: number): Promise<Buffer> {
  const columns = samples.flatMap((s, i): GridColumn[] => [
    { label: `IN ${i + 1}`, pixels: s.input },
    { label: `L=${s.length}`, pixels: s.output },
  ]);
  return composeGrid(columns, { size, minCell: 96 });
}
