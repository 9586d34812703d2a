// Deterministic bench inputs: N photo-sized JPEGs (smooth gradients + texture + shapes), so both
// sides decode and resize real files of a realistic size.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';

async function main(): Promise<void> {
  const dir = process.argv[2] ?? 'bench/results/tmp/tokenize/images';
  const count = Number(process.argv[3] ?? '32');
  mkdirSync(dir, { recursive: true });
  const w = 1024;
  const h = 768;
  for (let n = 0; n < count; n++) {
    const data = Buffer.alloc(w * h * 3);
    let seed = n * 7919 + 1;
    for (let i = 0; i < data.length; i += 3) {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      const p = i / 3;
      const x = p % w;
      const y = (p / w) | 0;
      const noise = (seed >> 16) & 31;
      data[i] = ((x * (n + 1)) / 8 + noise) & 255;
      data[i + 1] = ((y * 255) / h + noise) & 255;
      data[i + 2] = (((x ^ y) >> (n % 5 + 2)) & 1) * 160 + noise;
    }
    await sharp(data, { raw: { width: w, height: h, channels: 3 } }).blur(1.2).jpeg({ quality: 88 }).toFile(join(dir, `img${String(n).padStart(3, '0')}.jpg`));
  }
}

void main();
