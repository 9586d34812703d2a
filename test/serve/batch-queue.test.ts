// The batching queue on its own: jobs that wait together run together (same kind and key, up to
// the row limit), the queue refuses past its limit, times out, and drains on close.
import test from 'ava';
import { isDoveError } from '../../lib/base/errors';
import { BatchQueue, QueueError, type BatchKind } from '../../lib/serve/batch-queue';

/** A kind that records each batch it ran and answers after `ms` with input × 10. */
function recorder(ms: number): BatchKind<number, number> & { batches: { key: string; inputs: number[] }[] } {
  const batches: { key: string; inputs: number[] }[] = [];
  return {
    name: 'times-ten',
    batches,
    async run(inputs, key) {
      batches.push({ key, inputs: [...inputs] });
      await new Promise((r) => setTimeout(r, ms));
      return inputs.map((x) => x * 10);
    },
  };
}

test('jobs waiting behind a running batch share the next one, by key, up to maxBatchRows', async (t) => {
  const q = new BatchQueue({ maxBatchRows: 3, maxWaiting: 100, timeoutMs: 10_000 });
  const kind = recorder(20);
  const results = await Promise.all([
    q.submit(kind, 'a', 1),
    q.submit(kind, 'a', 2),
    q.submit(kind, 'b', 3),
    q.submit(kind, 'a', 4),
    q.submit(kind, 'a', 5),
    q.submit(kind, 'a', 6),
    q.submit(kind, 'b', 7),
  ]);
  t.deepEqual(results, [10, 20, 30, 40, 50, 60, 70]);
  // The first runs alone (nothing waited yet); then the oldest waiting job picks its companions.
  t.deepEqual(kind.batches, [
    { key: 'a', inputs: [1] },
    { key: 'a', inputs: [2, 4, 5] },
    { key: 'b', inputs: [3, 7] },
    { key: 'a', inputs: [6] },
  ]);
  t.like(q.stats(), { waiting: 0, running: 0, batches: 4, rows: 7 });
});

test('maxBatchRows 1 runs every job alone; a job of many rows runs alone', async (t) => {
  const q = new BatchQueue({ maxBatchRows: 1, maxWaiting: 100, timeoutMs: 10_000 });
  const kind = recorder(5);
  await Promise.all([1, 2, 3].map((x) => q.submit(kind, 'k', x)));
  t.deepEqual(kind.batches.map((b) => b.inputs), [[1], [2], [3]]);
  const wide = new BatchQueue({ maxBatchRows: 4, maxWaiting: 100, timeoutMs: 10_000 });
  const k2 = recorder(5);
  await Promise.all([wide.submit(k2, 'k', 1, 1), wide.submit(k2, 'k', 2, 6), wide.submit(k2, 'k', 3, 1), wide.submit(k2, 'k', 4, 2)]);
  t.deepEqual(k2.batches.map((b) => b.inputs), [[1], [2], [3, 4]]);
});

test('past maxWaiting a job is refused at once with QUEUE_FULL and a Retry-After estimate', async (t) => {
  const q = new BatchQueue({ maxBatchRows: 1, maxWaiting: 2, timeoutMs: 10_000 });
  const kind = recorder(30);
  const running = q.submit(kind, 'k', 1);
  const waiting = [q.submit(kind, 'k', 2), q.submit(kind, 'k', 3)];
  const refused = await q.submit(kind, 'k', 4).then(() => undefined, (e: unknown) => e);
  t.true(refused instanceof QueueError);
  t.true(isDoveError(refused, 'QUEUE_FULL'));
  t.true((refused as QueueError).retryAfterSeconds >= 1);
  t.true(isDoveError(t.throws(() => q.checkRoom()), 'QUEUE_FULL'), 'checkRoom says the same before any work');
  t.deepEqual(await Promise.all([running, ...waiting]), [10, 20, 30]);
  t.notThrows(() => q.checkRoom());
  t.is(await q.submit(kind, 'k', 5), 50, 'accepts again once drained');
});

test('a job past its time fails with TIMEOUT, whether still queued or running; the queue goes on', async (t) => {
  const q = new BatchQueue({ maxBatchRows: 1, maxWaiting: 10, timeoutMs: 40 });
  const kind = recorder(60);
  const outcomes = await Promise.allSettled([q.submit(kind, 'k', 1), q.submit(kind, 'k', 2)]);
  for (const o of outcomes) {
    t.is(o.status, 'rejected');
    t.true(isDoveError((o as PromiseRejectedResult).reason, 'TIMEOUT'));
  }
  t.regex(((outcomes[0] as PromiseRejectedResult).reason as Error).message, /still running/);
  t.regex(((outcomes[1] as PromiseRejectedResult).reason as Error).message, /still queued/);
  const fast = new BatchQueue({ maxBatchRows: 1, maxWaiting: 10, timeoutMs: 1000 });
  t.is(await fast.submit(recorder(1), 'k', 7), 70);
});

test('a failing batch fails each of its jobs with that error; others are unaffected', async (t) => {
  const q = new BatchQueue({ maxBatchRows: 8, maxWaiting: 10, timeoutMs: 10_000 });
  const bad: BatchKind<number, number> = {
    name: 'bad',
    run: async () => {
      await new Promise((r) => setTimeout(r, 5));
      throw new Error('model fell over');
    },
  };
  const good = recorder(5);
  const outcomes = await Promise.allSettled([q.submit(good, 'k', 1), q.submit(bad, 'k', 2), q.submit(bad, 'k', 3), q.submit(good, 'k', 4)]);
  t.deepEqual(outcomes.map((o) => o.status), ['fulfilled', 'rejected', 'rejected', 'fulfilled']);
  t.regex(((outcomes[1] as PromiseRejectedResult).reason as Error).message, /fell over/);
});

test('close fails waiting jobs with SHUTTING_DOWN, lets the running one finish, refuses new ones', async (t) => {
  const q = new BatchQueue({ maxBatchRows: 1, maxWaiting: 10, timeoutMs: 10_000 });
  const kind = recorder(30);
  const running = q.submit(kind, 'k', 1);
  const waiting = q.submit(kind, 'k', 2);
  await new Promise((r) => setTimeout(r, 5));
  await q.close();
  t.is(await running, 10);
  t.true(isDoveError(await waiting.then(() => undefined, (e: unknown) => e), 'SHUTTING_DOWN'));
  t.true(isDoveError(await q.submit(kind, 'k', 3).then(() => undefined, (e: unknown) => e), 'SHUTTING_DOWN'));
});

test('a waiting job whose client went away leaves the queue and never runs', async (t) => {
  const q = new BatchQueue({ maxBatchRows: 1, maxWaiting: 1, timeoutMs: 10_000 });
  const kind = recorder(30);
  const running = q.submit(kind, 'k', 1);
  const gone = new AbortController();
  const abandoned = q.submit(kind, 'k', 2, 1, gone.signal);
  gone.abort();
  t.true(isDoveError(await abandoned.then(() => undefined, (e: unknown) => e), 'CANCELLED'));
  t.is(q.stats().waiting, 0, 'its place is free at once');
  t.is(await q.submit(kind, 'k', 3), 30, 'so the next request is accepted');
  t.is(await running, 10);
  t.deepEqual(kind.batches.map((b) => b.inputs), [[1], [3]], 'the abandoned job never ran');
  t.true(isDoveError(await q.submit(kind, 'k', 4, 1, gone.signal).then(() => undefined, (e: unknown) => e), 'CANCELLED'), 'an already closed request is not queued');
});
