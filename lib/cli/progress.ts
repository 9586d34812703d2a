// Progress bar with rate and ETA on stderr. On a TTY it redraws one line; elsewhere (CI logs, pipes)
// it prints a plain line at most every `intervalMs` and once at the end, so logs stay readable.

export interface ProgressOptions {
  label?: string;
  stream?: NodeJS.WriteStream;
  /** Minimum time between plain (non-TTY) lines. */
  intervalMs?: number;
  /** Suppress all output. */
  silent?: boolean;
  /** Clock, injectable for tests. */
  now?: () => number;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--:--';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  const mm = String(m).padStart(2, '0');
  const ss = String(sec).padStart(2, '0');
  return h > 0 ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

export class ProgressBar {
  private done = 0;
  private failed = 0;
  private readonly start: number;
  private lastPlain = -Infinity;
  private readonly stream: NodeJS.WriteStream;
  private readonly tty: boolean;
  private readonly now: () => number;
  private finished = false;

  constructor(
    readonly total: number,
    private readonly options: ProgressOptions = {},
  ) {
    this.stream = options.stream ?? process.stderr;
    this.tty = this.stream.isTTY === true;
    this.now = options.now ?? (() => Date.now());
    this.start = this.now();
  }

  /** Marks `n` items done (`failed` of them failed) and redraws when due. */
  tick(n = 1, failed = 0): void {
    this.done += n;
    this.failed += failed;
    this.render(false);
  }

  /** The current line (also what tests check). */
  line(): string {
    const elapsed = (this.now() - this.start) / 1000;
    const rate = elapsed > 0 ? this.done / elapsed : 0;
    const remaining = rate > 0 ? (this.total - this.done) / rate : NaN;
    const frac = this.total > 0 ? Math.min(1, this.done / this.total) : 1;
    const width = 24;
    const filled = Math.round(frac * width);
    const bar = `${'#'.repeat(filled)}${'-'.repeat(width - filled)}`;
    const label = this.options.label ? `${this.options.label} ` : '';
    const fail = this.failed > 0 ? ` ${this.failed} failed` : '';
    return `${label}[${bar}] ${this.done}/${this.total} ${(frac * 100).toFixed(0)}% ${rate.toFixed(2)}/s elapsed ${formatDuration(elapsed)} ETA ${formatDuration(remaining)}${fail}`;
  }

  /** Prints a message above the bar without garbling it. */
  log(message: string): void {
    if (this.options.silent) return;
    if (this.tty) this.stream.write('\r\x1b[K');
    this.stream.write(`${message}\n`);
    if (this.tty && !this.finished) this.stream.write(this.line());
  }

  finish(): void {
    if (this.finished) return;
    this.render(true);
    this.finished = true;
    if (this.tty && !this.options.silent) this.stream.write('\n');
  }

  private render(force: boolean): void {
    if (this.options.silent || this.finished) return;
    if (this.tty) {
      this.stream.write(`\r\x1b[K${this.line()}`);
      return;
    }
    const t = this.now();
    if (force || t - this.lastPlain >= (this.options.intervalMs ?? 10000)) {
      this.lastPlain = t;
      this.stream.write(`${this.line()}\n`);
    }
  }
}
