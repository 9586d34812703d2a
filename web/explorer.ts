// The explorer: one POST /v1/explore per image returns every length's reconstruction as one tile
// sheet, so the slider only redraws a canvas from memory (no request per step). Several images
// also get their EOS lengths from POST /v1/tokenize for the table and the histogram.
import uPlot from 'uplot';
import type { ExploreReply, ModelInfo } from '../lib/serve/wire';
import { byId, chartSize, failure, getJson, markChart, markerPlugin, setStatus, WHOLE_TICKS } from './common';

interface Current {
  file: File;
  result: ExploreReply;
  sprite: HTMLImageElement;
}

const slider = byId('length', HTMLInputElement);
const recon = byId('recon', HTMLCanvasElement);
const input = byId('input', HTMLCanvasElement);
const question = byId('question', HTMLInputElement);
let model: ModelInfo;
let current: Current | undefined;
let eosChart: uPlot | undefined;
let qualityChart: uPlot | undefined;
let histogram: uPlot | undefined;

function loadImage(src: string): Promise<HTMLImageElement> {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error('the server sent an image the browser cannot show'));
    img.src = src;
  });
}

function imageQuery(extra: Record<string, string> = {}): string {
  const params = new URLSearchParams(extra);
  if (model.variant === 'qdove' && question.value.trim() !== '') params.set('question', question.value.trim());
  const text = params.toString();
  return text === '' ? '' : `?${text}`;
}

async function post(url: string, file: File, accept: string): Promise<Response> {
  const response = await fetch(url, { method: 'POST', body: file, headers: { 'content-type': file.type || 'application/octet-stream', accept } });
  if (!response.ok) throw await failure(response);
  return response;
}

function format(value: number | null | undefined, digits: number): string {
  return value === null || value === undefined ? '–' : value.toFixed(digits);
}

/** Draws length L from the tile sheet: tile L-1 at (row, column) = divmod(L-1, columns). */
function showLength(length: number): void {
  if (current === undefined) return;
  const { result, sprite } = current;
  const s = result.imageSize;
  const i = length - 1;
  const ctx = recon.getContext('2d')!;
  ctx.drawImage(sprite, (i % result.columns) * s, Math.floor(i / result.columns) * s, s, s, 0, 0, s, s);
  byId('length-value', HTMLElement).textContent = String(length);
  byId('psnr-value', HTMLElement).textContent = format(result.psnr[i], 2);
  byId('ssim-value', HTMLElement).textContent = format(result.ssim[i], 3);
  recon.dataset.length = String(length);
  eosChart?.redraw(false);
  qualityChart?.redraw(false);
}

function markers(): { x: number; color: string }[] {
  if (current === undefined) return [];
  return [
    { x: current.result.length, color: 'rgba(192, 54, 44, 0.8)' },
    { x: Number(slider.value), color: 'rgba(80, 80, 80, 0.5)' },
  ];
}

function drawCharts(result: ExploreReply): void {
  const xs = result.eosProbabilities.map((_, i) => i + 1);
  const eosEl = byId('eos-chart', HTMLElement);
  const qualityEl = byId('quality-chart', HTMLElement);
  eosChart?.destroy();
  qualityChart?.destroy();
  eosChart = new uPlot(
    {
      ...chartSize(eosEl),
      scales: { x: { time: false }, y: { range: [0, 1] } },
      axes: [{ label: 'slot', incrs: WHOLE_TICKS }, { label: 'p(EOS)' }],
      legend: { live: false },
      series: [{ label: 'slot' }, { label: 'p(EOS)', stroke: '#2e6fdb', width: 2, points: { show: xs.length <= 64 } }, { label: 'threshold', stroke: '#888', dash: [6, 4], points: { show: false } }],
      plugins: [markerPlugin(markers)],
    },
    [xs, result.eosProbabilities, xs.map(() => result.threshold)],
    eosEl,
  );
  markChart(eosEl, xs.length);
  qualityChart = new uPlot(
    {
      ...chartSize(qualityEl),
      scales: { x: { time: false }, ssim: { range: [0, 1] } },
      axes: [{ label: 'tokens', incrs: WHOLE_TICKS }, { label: 'PSNR dB' }, { scale: 'ssim', side: 1, label: 'SSIM', grid: { show: false } }],
      legend: { live: false },
      series: [{ label: 'tokens' }, { label: 'PSNR', stroke: '#2e6fdb', width: 2 }, { label: 'SSIM', stroke: '#e07b00', width: 2, scale: 'ssim' }],
      plugins: [markerPlugin(markers)],
    },
    [xs, result.psnr, result.ssim],
    qualityEl,
  );
  markChart(qualityEl, xs.length);
}

async function explore(file: File): Promise<void> {
  document.body.dataset.state = 'busy';
  setStatus(`Tokenizing ${file.name} and decoding every length…`);
  const response = await post(`/v1/explore${imageQuery()}`, file, 'application/json');
  const result = (await response.json()) as ExploreReply;
  const [inputImage, sprite] = await Promise.all([loadImage(result.input), loadImage(result.sprite)]);
  current = { file, result, sprite };
  for (const canvas of [input, recon]) {
    canvas.width = result.imageSize;
    canvas.height = result.imageSize;
  }
  input.getContext('2d')!.drawImage(inputImage, 0, 0);
  slider.max = String(result.maxTokens);
  slider.value = String(result.length);
  byId('chosen', HTMLElement).textContent = String(result.length);
  byId('max-tokens', HTMLElement).textContent = String(result.maxTokens);
  byId('threshold', HTMLElement).textContent = String(result.threshold);
  const grid = byId('download-grid', HTMLAnchorElement);
  grid.href = result.grid;
  grid.download = `${file.name.replace(/\.[^.]*$/, '')}-grid.png`;
  byId('result', HTMLElement).hidden = false;
  drawCharts(result);
  showLength(result.length);
  setStatus(`${file.name}: EOS stops at ${result.length} of ${result.maxTokens} tokens. Move the slider to see any length.`);
  document.body.dataset.state = 'ready';
}

async function downloadTokens(): Promise<void> {
  if (current === undefined) return;
  const length = Number(slider.value);
  // Causal generator: the fixed-budget code of L tokens is the first L of the full code.
  const response = await post(`/v1/tokenize${imageQuery({ mode: 'fixed', maxTokens: String(length) })}`, current.file, 'application/x-safetensors');
  const link = document.createElement('a');
  link.href = URL.createObjectURL(await response.blob());
  link.download = `${current.file.name.replace(/\.[^.]*$/, '')}-${length}-tokens.safetensors`;
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
}

async function tabulate(files: File[]): Promise<void> {
  const rows: { file: File; length: number }[] = [];
  const body = byId('lengths-table', HTMLTableElement).tBodies[0]!;
  body.replaceChildren();
  byId('many', HTMLElement).hidden = false;
  for (const file of files) {
    setStatus(`EOS lengths: ${rows.length + 1} of ${files.length} (${file.name})…`);
    const response = await post(`/v1/tokenize${imageQuery()}`, file, 'application/json');
    const { length } = (await response.json()) as { length: number };
    rows.push({ file, length });
    const tr = body.insertRow();
    tr.insertCell().textContent = file.name;
    tr.insertCell().textContent = String(length);
    const view = document.createElement('button');
    view.type = 'button';
    view.textContent = 'explore';
    view.addEventListener('click', () => run(() => explore(file)));
    tr.insertCell().append(view);
  }
  byId('many-count', HTMLElement).textContent = String(rows.length);
  const xs = Array.from({ length: model.maxTokens }, (_, i) => i + 1);
  const counts = xs.map((x) => rows.filter((r) => r.length === x).length);
  const el = byId('histogram', HTMLElement);
  histogram?.destroy();
  histogram = new uPlot(
    {
      ...chartSize(el),
      scales: { x: { time: false, range: [0.5, model.maxTokens + 0.5] }, y: { range: [0, Math.max(1, ...counts)] } },
      axes: [{ label: 'EOS length', incrs: WHOLE_TICKS }, { label: 'images', incrs: WHOLE_TICKS }],
      legend: { show: false },
      series: [{ label: 'length' }, { label: 'images', fill: 'rgba(46, 111, 219, 0.5)', stroke: '#2e6fdb', paths: uPlot.paths.bars!({ size: [0.9, 40] }), points: { show: false } }],
    },
    [xs, counts],
    el,
  );
  markChart(el, rows.length);
}

async function take(files: File[]): Promise<void> {
  const images = files.filter((f) => f.type === '' || f.type.startsWith('image/'));
  if (images.length === 0) throw new Error('Those files are not images');
  byId('many', HTMLElement).hidden = images.length < 2;
  if (images.length > 1) await tabulate(images);
  await explore(images[0]!);
}

function run(task: () => Promise<void>): void {
  task().catch((error: unknown) => {
    document.body.dataset.state = 'error';
    setStatus(error instanceof Error ? error.message : String(error), true);
  });
}

async function start(): Promise<void> {
  model = await getJson<ModelInfo>('/v1/model');
  byId('model-info', HTMLElement).textContent = `${model.name}: ${model.variant === 'qdove' ? 'Q-DOVE' : 'DOVE'}, ${model.imageSize}×${model.imageSize} px, up to ${model.maxTokens} tokens of ${model.tokenDim} floats`;
  byId('question-row', HTMLElement).hidden = model.variant !== 'qdove';
  const drop = byId('drop', HTMLElement);
  drop.addEventListener('dragover', (e) => {
    e.preventDefault();
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    run(() => take(Array.from(e.dataTransfer?.files ?? [])));
  });
  const picker = byId('file', HTMLInputElement);
  picker.addEventListener('change', () => run(() => take(Array.from(picker.files ?? []))));
  slider.addEventListener('input', () => showLength(Number(slider.value)));
  byId('to-chosen', HTMLButtonElement).addEventListener('click', () => {
    if (current === undefined) return;
    slider.value = String(current.result.length);
    showLength(current.result.length);
  });
  byId('download-tokens', HTMLButtonElement).addEventListener('click', () => run(downloadTokens));
  setStatus('Drop an image to see how many tokens it needs.');
  document.body.dataset.state = 'idle';
}

run(start);
