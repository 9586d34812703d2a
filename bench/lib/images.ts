// Small seeded test images, encoded as PNG by sharp, so tokenize benchmarks exercise the real
// decode + resize path without reading anything from disk.
import sharp from 'sharp';

/** `count` PNGs of width×height (not the model size, so the resize runs), a different pattern each. */
export async function seededPngs(count: number, width: number, height: number): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const px = Buffer.alloc(width * height * 3);
    let s = (i + 1) * 2654435761;
    for (let p = 0; p < px.length; p += 3) {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      const x = (p / 3) % width;
      const y = Math.floor(p / 3 / width);
      // A gradient with seeded noise: some images flat-ish, some busy (i controls the noise level).
      const noise = ((s >>> 16) & 0xff) * ((i % 4) / 3);
      px[p] = (x * 255) / width * 0.7 + noise * 0.3;
      px[p + 1] = (y * 255) / height * 0.7 + noise * 0.3;
      px[p + 2] = ((x + y) * 127) / (width + height) + noise * 0.2;
    }
    out.push(await sharp(px, { raw: { width, height, channels: 3 } }).png().toBuffer());
  }
  return out;
}
