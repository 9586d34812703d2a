// The run monitor: polls each run's log.jsonl from the byte offset it reached (GET /v1/runs/:id/log),
// so the loss curve grows while `dove train` writes; plots and checkpoints refresh with the summary.
import uPlot from 'uplot';
import type { LogChunk, RunSummary } from '../lib/serve/wire';
import { byId, chartSize, getJson, markChart, setStatus, WHOLE_TICKS } from './common';

interface StepRecord {
  type: 'step';
  step: number;
  totalSteps: number;
  epoch: number;
  loss: number;
  parts: Record<string, number>;
  accumulated?: boolean;
  imagesPerSecond?: number;
  tokensPerImage?: number;
  lr?: number;
}

const LOG_POLL_MS = 1000;
const SUMMARY_POLL_MS = 5000;
const PARTS = ['rec', 'eos', 'length'] as const;
/** Newest epoch grids shown as images; older ones are links. */
const SHOWN_GRIDS = 3;
const COLORS: Record<string, string> = { loss: '#2e6fdb', rec: '#e07b00', eos: '#2a9d4b', length: '#9b59b6' };

let runId: string | undefined;
let offset = 0;
let steps: StepRecord[] = [];
let chart: uPlot | undefined;
let generation = 0;

function filesUrl(id: string, name: string): string {
  return `/v1/runs/${encodeURIComponent(id)}/files/${name.split('/').map(encodeURIComponent).join('/')}`;
}

function epochOf(name: string): number {
  return Number(/\d+/.exec(name)?.[0] ?? '0');
}

function kib(bytes: number): string {
  return bytes < 1 << 20 ? `${(bytes / 1024).toFixed(1)} KiB` : `${(bytes / (1 << 20)).toFixed(1)} MiB`;
}

function drawChart(): void {
  const el = byId('loss-chart', HTMLElement);
  const xs = steps.map((s) => s.step);
  const present = PARTS.filter((p) => steps.some((s) => typeof s.parts?.[p] === 'number' && s.parts[p]! > 0));
  // Log scale: a zero or negative value has no place on it, so it leaves a gap rather than a plunge.
  const positive = (v: number | undefined): number | null => (typeof v === 'number' && v > 0 ? v : null);
  const data: uPlot.AlignedData = [xs, steps.map((s) => positive(s.loss)), ...present.map((p) => steps.map((s) => positive(s.parts?.[p])))];
  const seriesKey = present.join(',');
  if (chart === undefined || chart.series.length !== 2 + present.length || el.dataset.series !== seriesKey) {
    chart?.destroy();
    chart = new uPlot(
      {
        ...chartSize(el),
        scales: { x: { time: false }, y: { distr: 3 } },
        axes: [{ label: 'optimizer step', incrs: WHOLE_TICKS }, { label: 'loss' }],
        legend: { live: false },
        series: [{ label: 'step' }, { label: 'loss', stroke: COLORS.loss, width: 2 }, ...present.map((p) => ({ label: p, stroke: COLORS[p], width: 1 }))],
      },
      data,
      el,
    );
    el.dataset.series = seriesKey;
  } else {
    chart.setData(data);
  }
  markChart(el, xs.length);
}

function showFacts(summary: RunSummary | undefined): void {
  const last = steps[steps.length - 1];
  const parts: string[] = [];
  if (last !== undefined) {
    parts.push(`step ${last.step} of ${last.totalSteps}`, `epoch ${last.epoch + 1}`, `loss ${last.loss.toFixed(4)}`);
    if (last.imagesPerSecond !== undefined) parts.push(`${last.imagesPerSecond.toFixed(1)} images/s`);
    if (last.tokensPerImage !== undefined) parts.push(`${last.tokensPerImage.toFixed(1)} tokens/image`);
  } else {
    parts.push('no optimizer step logged yet');
  }
  if (summary?.updatedAt) parts.push(`log updated ${new Date(summary.updatedAt).toLocaleTimeString()}`);
  byId('run-facts', HTMLElement).textContent = parts.join(' · ');
}

function showSummary(summary: RunSummary): void {
  byId('run-name', HTMLElement).textContent = summary.name;
  const state = byId('run-state', HTMLElement);
  state.textContent = summary.finished ? 'finished' : 'training';
  state.classList.toggle('live', !summary.finished);
  const grids = byId('grids', HTMLElement);
  const newest = summary.grids.slice(-SHOWN_GRIDS).reverse();
  const older = summary.grids.slice(0, -SHOWN_GRIDS).reverse();
  grids.replaceChildren(
    ...newest.map((g) => {
      const figure = document.createElement('figure');
      const img = document.createElement('img');
      img.src = `${filesUrl(summary.id, g.name)}?t=${encodeURIComponent(g.modified)}`;
      img.alt = g.name;
      const caption = document.createElement('figcaption');
      caption.textContent = `epoch ${epochOf(g.name)}`;
      figure.append(img, caption);
      return figure;
    }),
  );
  if (older.length > 0) {
    const more = document.createElement('p');
    more.append('Earlier epochs: ');
    for (const g of older) {
      const a = document.createElement('a');
      a.href = filesUrl(summary.id, g.name);
      a.textContent = String(epochOf(g.name));
      more.append(a, ' ');
    }
    grids.append(more);
  }
  if (summary.grids.length === 0) grids.textContent = 'None yet: a grid is written at the end of each epoch.';
  const body = byId('checkpoints', HTMLTableElement).tBodies[0]!;
  body.replaceChildren();
  for (const c of summary.checkpoints.slice().reverse()) {
    const tr = body.insertRow();
    tr.insertCell().textContent = c.name;
    tr.insertCell().textContent = String(c.step);
    const files = tr.insertCell();
    for (const f of c.files) {
      const a = document.createElement('a');
      a.href = filesUrl(summary.id, f.name);
      a.textContent = `${f.name.split('/').pop()} (${kib(f.bytes)})`;
      files.append(a, ' ');
    }
  }
  showFacts(summary);
}

async function pollLog(id: string, mine: number): Promise<boolean> {
  const chunk = await getJson<LogChunk>(`/v1/runs/${encodeURIComponent(id)}/log?offset=${offset}`);
  if (mine !== generation) return false;
  if (chunk.reset) steps = [];
  offset = chunk.offset;
  const records = chunk.records as { type?: string; accumulated?: boolean }[];
  const fresh = records.filter((r): r is StepRecord => r.type === 'step' && r.accumulated !== true);
  steps.push(...fresh);
  if (fresh.length > 0 || chunk.reset) {
    drawChart();
    showFacts(undefined);
  }
  // Epoch ends and checkpoints change the plots and the table: refresh the summary now.
  return records.some((r) => r.type === 'epoch' || r.type === 'checkpoint' || r.type === 'done');
}

async function follow(id: string): Promise<void> {
  const mine = ++generation;
  runId = id;
  offset = 0;
  steps = [];
  chart?.destroy();
  chart = undefined;
  byId('run', HTMLElement).hidden = false;
  for (const b of byId('run-tabs', HTMLElement).querySelectorAll('button')) b.classList.toggle('active', b.dataset.id === id);
  let nextSummary = 0;
  while (mine === generation) {
    try {
      const changed = await pollLog(id, mine);
      if (mine !== generation) return;
      if (changed || Date.now() >= nextSummary) {
        showSummary(await getJson<RunSummary>(`/v1/runs/${encodeURIComponent(id)}`));
        nextSummary = Date.now() + SUMMARY_POLL_MS;
      }
      if (steps.length === 0) drawChart();
      document.body.dataset.state = 'ready';
      setStatus('');
    } catch (error) {
      setStatus(`Lost contact with the server (${error instanceof Error ? error.message : String(error)}); retrying…`, true);
    }
    await new Promise((resolve) => setTimeout(resolve, LOG_POLL_MS));
  }
}

async function start(): Promise<void> {
  const { runs } = await getJson<{ runs: { id: string; name: string }[] }>('/v1/runs');
  const tabs = byId('run-tabs', HTMLElement);
  if (runs.length === 0) {
    setStatus('No runs: start the server with --run OUT for each `dove train --out OUT` folder.');
    document.body.dataset.state = 'ready';
    return;
  }
  for (const r of runs) {
    const button = document.createElement('button');
    button.type = 'button';
    button.textContent = r.name;
    button.dataset.id = r.id;
    button.addEventListener('click', () => {
      if (r.id !== runId) void follow(r.id);
    });
    tabs.append(button);
  }
  const wanted = new URLSearchParams(location.search).get('run');
  void follow(runs.find((r) => r.id === wanted)?.id ?? runs[0]!.id);
}

start().catch((error: unknown) => {
  document.body.dataset.state = 'error';
  setStatus(error instanceof Error ? error.message : String(error), true);
});
