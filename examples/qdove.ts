// Q-DOVE: one image, several questions. The query steers which regions the tokens spend detail on,
// and the EOS head may stop earlier for a narrow question than for the whole picture.
//
//   cd python && $(bash -c 'source ../scripts/lib.sh && dove_py') -m dove.export --config tiny --variant qdove -o ../qdove.pt
//   npx tsc -p tsconfig.json
//   node dist/examples/qdove.js qdove.pt assets/sample.jpg "what colour is the flower?" "is the background blurred?"
//
// A freshly exported Q-DOVE has random weights (structure only); train it with
// `dove train --qdove --init-from qdove.pt --images dir/ --annotations boxes.json --out runs/q`. Writes
// out/qdove-<n>.png (input | reconstruction at the chosen length) for each question.
// In your own project import from 'dove-encoder'.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { Reconstructor, Tokenizer } from '../lib/index';

async function main(): Promise<void> {
  const [modelPath, imagePath, ...questions] = process.argv.slice(2);
  if (modelPath === undefined || imagePath === undefined || questions.length === 0) {
    throw new Error('Usage: node dist/examples/qdove.js <qdove.pt> <image> <question> [question ...]');
  }
  const tokenizer = await Tokenizer.load(modelPath);
  if (!tokenizer.model.isQDove) throw new Error(`${modelPath} is a DOVE export; export one with --variant qdove`);
  // The Reconstructor shares the loaded model: no second load, no second copy of the weights.
  const reconstructor = new Reconstructor(tokenizer.model);
  try {
    // One batch: the same image once per question, each with its own query.
    const batch = await tokenizer.tokenize(questions.map(() => imagePath), { query: questions, mode: 'auto' });
    const images = await reconstructor.reconstruct(batch);
    const input = (await reconstructor.sweep(imagePath, [tokenizer.maxTokens], { query: questions[0] })).input;
    mkdirSync('out', { recursive: true });
    const s = tokenizer.imageSize;
    for (let i = 0; i < questions.length; i++) {
      const file = join('out', `qdove-${i}.png`);
      // Side by side: the input as the model sees it, then the reconstruction from this question's tokens.
      await sharp({ create: { width: 2 * s, height: s, channels: 3, background: { r: 0, g: 0, b: 0 } } })
        .composite([
          { input: Buffer.from(input.data), raw: { width: s, height: s, channels: 3 }, left: 0, top: 0 },
          { input: Buffer.from(images[i]!.data), raw: { width: s, height: s, channels: 3 }, left: s, top: 0 },
        ])
        .png()
        .toFile(file);
      process.stdout.write(`${JSON.stringify(questions[i])}: ${batch.lengthsArray[i]} of ${tokenizer.maxTokens} tokens -> ${file}\n`);
    }
    batch.dispose();
  } finally {
    tokenizer.dispose();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
