// Child process for crash.test.ts: trains with a checkpoint after every step, resuming from its
// out folder when one exists, and prints one line per step so the parent can time its SIGKILL.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Trainer } from '../../lib/trainer';

const [model, images, out] = process.argv.slice(2) as [string, string, string];
const trainer = new Trainer({
  model, images, outDir: out, batchSize: 4, epochs: 1000, lr: 1e-3, threads: 1, plots: false,
  checkpointEvery: 1, keepLast: 2, resume: existsSync(join(out, 'checkpoints')) ? true : undefined,
});
trainer.on('step', (e: { step: number }) => process.stdout.write(`step ${e.step}\n`));
trainer.fit().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`${String((error as Error).stack)}\n`);
    process.exit(1);
  },
);
