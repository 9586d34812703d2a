// The long-lived runtime workers of the interleaved throughput section (bench/lib/interleave.ts).
// One process per runtime (no shared heap, allocator or thread pool), driven round by round: the
// coordinator writes one JSON command per line on the worker's stdin and reads one JSON reply per
// command from file descriptor 3 (stdout and stderr stay free for logs). Python speaks the same
// protocol (bench/peers/python_torch.py).
//
//   {"cmd": "info"}                            -> {"versions": {...}, "threads": n}
//   {"cmd": "prepare", "case": CaseSpec, "op"} -> {}            builds the inputs, runs the warm-up calls
//   {"cmd": "measure", "loop": LoopSpec}       -> {"samplesMs": [...]}   timed calls, no warm-up
//   {"cmd": "release"}                         -> {}            frees what prepare built
//   {"cmd": "exit"}                            -> (the process ends)
// A failing command replies {"error": "..."}; the worker stays up for the next one.
import { createWriteStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { errorText, type CaseSpec, type Op } from './schema';
import { timedSamples, type LoopSpec } from './timing';

export interface WorkerCommand {
  cmd: 'info' | 'prepare' | 'measure' | 'release' | 'exit';
  case?: CaseSpec;
  op?: Op;
  loop?: LoopSpec;
}

/** What a runtime does for one (case, op): a timed body and its clean-up. */
export interface Prepared {
  body: () => Promise<void>;
  done: () => void | Promise<void>;
}

export interface RuntimeWorker {
  info(): { versions: Record<string, string>; threads: number };
  prepare(c: CaseSpec, op: Op): Promise<Prepared>;
  close(): void | Promise<void>;
}

/** Serves the protocol above until 'exit' or the end of stdin. */
export async function serveWorker(runtime: RuntimeWorker): Promise<void> {
  const replies = createWriteStream('', { fd: 3 });
  const reply = (value: object): Promise<void> => new Promise((resolve) => replies.write(`${JSON.stringify(value)}\n`, () => resolve()));
  let prepared: Prepared | null = null;
  const release = async (): Promise<void> => {
    const p = prepared;
    prepared = null;
    if (p !== null) await p.done();
  };
  for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
    if (line.trim() === '') continue;
    const command = JSON.parse(line) as WorkerCommand;
    if (command.cmd === 'exit') break;
    try {
      if (command.cmd === 'info') {
        await reply(runtime.info());
      } else if (command.cmd === 'prepare') {
        await release();
        const c = command.case!;
        const op = command.op!;
        const p = await runtime.prepare(c, op);
        prepared = p;
        for (let i = 0; i < c.loop.warmup; i++) await p.body();
        await reply({});
      } else if (command.cmd === 'measure') {
        if (prepared === null) throw new Error('measure before prepare');
        await reply({ samplesMs: await timedSamples(command.loop!, prepared.body) });
      } else {
        await release();
        await reply({});
      }
    } catch (e) {
      await reply({ error: errorText(e) });
    }
  }
  await release();
  await runtime.close();
  await new Promise<void>((resolve) => replies.end(() => resolve()));
}
