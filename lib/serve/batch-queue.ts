// The one queue in front of the model. A model runs one forward at a time (its calls are serialised
// on the module's own thread), so while a forward runs, requests wait here; when it ends, every
// waiting job that can share the next forward (same kind, same key, up to maxBatchRows rows) goes
// into it together. No timer holds a job back to wait for company: under light load a request runs
// alone at once, under heavy load batches fill by themselves (dynamic batching without a window).
import { DoveError } from '../base/errors';

/** One kind of batched work: many inputs in, one output per input, in order. */
export interface BatchKind<I, O> {
  readonly name: string;
  run(inputs: readonly I[], key: string): Promise<O[]>;
}

export interface BatchQueueOptions {
  /** Rows (images) per forward; 1 turns batching off. */
  maxBatchRows: number;
  /** Jobs allowed to wait; one more is refused with QUEUE_FULL. */
  maxWaiting: number;
  /** From submit to result; a job still waiting or running then fails with TIMEOUT. */
  timeoutMs: number;
}

export interface BatchQueueStats {
  waiting: number;
  running: number;
  batches: number;
  rows: number;
  /** Mean wall time of a forward over the last batches, in ms (0 before the first). */
  meanBatchMs: number;
}

interface Job {
  kind: BatchKind<unknown, unknown>;
  key: string;
  input: unknown;
  rows: number;
  settle: (outcome: Outcome) => void;
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

/** Thrown when the queue refuses or drops a job; `retryAfterSeconds` feeds the Retry-After header. */
export class QueueError extends DoveError {
  constructor(
    message: string,
    code: 'QUEUE_FULL' | 'TIMEOUT' | 'SHUTTING_DOWN' | 'CANCELLED',
    readonly retryAfterSeconds: number,
  ) {
    super(message, code);
  }
}

export class BatchQueue {
  private readonly waiting: Job[] = [];
  private running = 0;
  private closed = false;
  private batches = 0;
  private rows = 0;
  private recentMs: number[] = [];
  private idle: (() => void)[] = [];

  constructor(private readonly options: BatchQueueOptions) {}

  /**
   * Queues one job of `rows` rows; rejects with QUEUE_FULL at once when maxWaiting jobs already wait.
   * `signal` (the client went away) takes a still-waiting job out of the queue, so abandoned requests
   * neither hold queue places nor cost a forward.
   */
  submit<I, O>(kind: BatchKind<I, O>, key: string, input: I, rows = 1, signal?: AbortSignal): Promise<O> {
    if (signal?.aborted) return Promise.reject(new QueueError('The client closed the request', 'CANCELLED', 0));
    if (this.closed) return Promise.reject(new QueueError('The server is shutting down', 'SHUTTING_DOWN', 5));
    if (this.waiting.length >= this.options.maxWaiting) return Promise.reject(this.fullError());
    return new Promise<O>((resolve, reject) => {
      let done = false;
      const drop = (): boolean => {
        const at = this.waiting.indexOf(job);
        if (at >= 0) this.waiting.splice(at, 1);
        return at >= 0;
      };
      const onAbort = (): void => {
        if (drop()) job.settle({ ok: false, error: new QueueError('The client closed the request', 'CANCELLED', 0) });
      };
      const timer = setTimeout(() => {
        const queued = drop();
        job.settle({ ok: false, error: new QueueError(`No result within ${this.options.timeoutMs} ms (${queued ? 'still queued' : 'the model is still running it'}); retry later`, 'TIMEOUT', this.retryAfterSeconds()) });
      }, this.options.timeoutMs);
      const job: Job = {
        kind: kind as unknown as BatchKind<unknown, unknown>,
        key,
        input,
        rows,
        settle: (outcome) => {
          if (done) return;
          done = true;
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
          if (outcome.ok) resolve(outcome.value as O);
          else reject(outcome.error);
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(job);
      this.pump();
    });
  }

  /** Throws what submit would reject with when the queue is full: lets a request be refused before its image is decoded. */
  checkRoom(): void {
    if (this.waiting.length >= this.options.maxWaiting) throw this.fullError();
  }

  private fullError(): QueueError {
    return new QueueError(`The queue is full (${this.options.maxWaiting} requests waiting); retry later`, 'QUEUE_FULL', this.retryAfterSeconds());
  }

  stats(): BatchQueueStats {
    const n = this.recentMs.length;
    return { waiting: this.waiting.length, running: this.running, batches: this.batches, rows: this.rows, meanBatchMs: n === 0 ? 0 : this.recentMs.reduce((a, b) => a + b, 0) / n };
  }

  /** Refuses new jobs, fails the waiting ones with SHUTTING_DOWN and resolves once the running batch ends. */
  async close(): Promise<void> {
    this.closed = true;
    for (const job of this.waiting.splice(0)) job.settle({ ok: false, error: new QueueError('The server is shutting down', 'SHUTTING_DOWN', 5) });
    if (this.running > 0) await new Promise<void>((resolve) => this.idle.push(resolve));
  }

  /** Seconds until the waiting jobs are likely done, at least 1: what Retry-After tells a refused client. */
  private retryAfterSeconds(): number {
    const perBatch = this.stats().meanBatchMs || 100;
    const batchesAhead = Math.ceil((this.waiting.length + 1) / this.options.maxBatchRows) + this.running;
    return Math.max(1, Math.ceil((perBatch * batchesAhead) / 1000));
  }

  /** Takes the oldest job and every later waiting job of the same kind and key that fits beside it. */
  private takeBatch(): Job[] {
    const first = this.waiting.shift()!;
    const batch = [first];
    let rows = first.rows;
    for (let i = 0; i < this.waiting.length && rows < this.options.maxBatchRows; ) {
      const job = this.waiting[i]!;
      if (job.kind === first.kind && job.key === first.key && rows + job.rows <= this.options.maxBatchRows) {
        batch.push(job);
        rows += job.rows;
        this.waiting.splice(i, 1);
      } else {
        i++;
      }
    }
    return batch;
  }

  private pump(): void {
    if (this.running > 0 || this.waiting.length === 0) return;
    this.running = 1;
    void this.runBatch(this.takeBatch()).finally(() => {
      if (this.running === 0 && this.waiting.length === 0) for (const wake of this.idle.splice(0)) wake();
      this.pump();
    });
  }

  /** Runs one batch and settles its jobs; the counters are updated first, so a settled caller sees them. */
  private async runBatch(batch: Job[]): Promise<void> {
    const { kind, key } = batch[0]!;
    const started = performance.now();
    let outcome: { ok: true; outputs: unknown[] } | { ok: false; error: unknown };
    try {
      const outputs = await kind.run(batch.map((j) => j.input), key);
      if (outputs.length !== batch.length) throw new DoveError(`${kind.name}: ${outputs.length} results for ${batch.length} inputs`, 'INTERNAL');
      outcome = { ok: true, outputs };
    } catch (error) {
      outcome = { ok: false, error };
    }
    this.batches += 1;
    this.rows += batch.reduce((a, j) => a + j.rows, 0);
    this.recentMs.push(performance.now() - started);
    if (this.recentMs.length > 32) this.recentMs.shift();
    this.running = 0;
    batch.forEach((job, i) => job.settle(outcome.ok ? { ok: true, value: outcome.outputs[i] } : outcome));
  }
}
