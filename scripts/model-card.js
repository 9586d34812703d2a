#!/usr/bin/env node
// Computes the embedded model's card numbers from held-out data with the package's own public API
// (dist/lib: Reconstructor.sweep, psnr) and writes them as JSON. scripts/model-card runs it and
// renders models/README.md from the JSON.
//
//   node scripts/model-card.js --model models/dove-tiny.pt --data ~/.cache/dove-encoder/data -o card.json
//
// Numbers:
// - PSNR (dB, mean over images) of the reconstruction from the first L tokens, for each L, on the
//   held-out crops (crops-<S>/heldout, pictures the model never saw) and on the held-out pictures
//   themselves (short side resized, centre crop).
// - Mean EOS length (auto mode) on flat images vs detailed images. Flat: synthetic flat-colour images
//   (seeded colours) and, separately, the smoothest quarter of the held-out crops; detailed: the most
//   detailed quarter of the held-out crops. Detail = mean absolute luminance gradient of the crop
//   (computed by scripts/dove_data.py, stored in crops-<S>/index.json).
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');
const api = require(path.join(ROOT, 'dist', 'lib', 'index.js'));

function parse(argv) {
  const out = { model: path.join(ROOT, 'models', 'dove-tiny.pt'), data: path.join(process.env.HOME || '', '.cache', 'dove-encoder', 'data'), output: null, readme: null, training: null, flat: 24 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`missing value after ${a}`);
      return v;
    };
    if (a === '--model') out.model = next();
    else if (a === '--data') out.data = next();
    else if (a === '-o' || a === '--output') out.output = next();
    else if (a === '--flat') out.flat = Number(next());
    else if (a === '--readme') out.readme = next();
    else if (a === '--training') out.training = next();
    else throw new Error(`unknown option ${a}`);
  }
  return out;
}

const mean = (xs) => xs.reduce((s, x) => s + x, 0) / xs.length;
const round = (x, d = 2) => Math.round(x * 10 ** d) / 10 ** d;

/** Deterministic flat colours (a small LCG, so every run and machine uses the same ones). */
function flatColours(n) {
  let s = 12345;
  const next = () => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return (s >>> 16) & 255;
  };
  return Array.from({ length: n }, () => [next(), next(), next()]);
}

async function sweepAll(rec, inputs, lengths) {
  const psnrs = lengths.map(() => []);
  const autos = [];
  for (const input of inputs) {
    const r = await rec.sweep(input, lengths);
    r.reconstructions.forEach((x, i) => psnrs[i].push(Math.min(api.psnr(r.input.data, x.image.data), 100)));
    autos.push(r.auto.length);
  }
  return { psnr: psnrs.map((p) => round(mean(p))), autoLengths: autos };
}

async function main() {
  const args = parse(process.argv.slice(2));
  const started = Date.now();
  const rec = await api.Reconstructor.load(args.model);
  try {
    const size = rec.imageSize;
    const max = rec.model.maxTokens;
    const lengths = [];
    for (let n = 1; n < max; n *= 2) lengths.push(n);
    lengths.push(max);

    const cropDir = path.join(args.data, `crops-${size}`);
    const indexFile = path.join(cropDir, 'index.json');
    if (!fs.existsSync(indexFile)) throw new Error(`no ${indexFile}: run bash scripts/get-data --crop-size ${size}`);
    const index = JSON.parse(fs.readFileSync(indexFile, 'utf8')).filter((c) => c.split === 'heldout');
    const crops = index.map((c) => ({ ...c, file: path.join(cropDir, c.file) }));
    const pictures = fs.readdirSync(path.join(args.data, 'heldout')).filter((f) => f.endsWith('.jpg')).sort().map((f) => path.join(args.data, 'heldout', f));

    const onCrops = await sweepAll(rec, crops.map((c) => c.file), lengths);
    const onPictures = await sweepAll(rec, pictures, lengths);

    const byDetail = crops.map((c, i) => ({ detail: c.detail, auto: onCrops.autoLengths[i] })).sort((a, b) => a.detail - b.detail);
    const q = Math.max(1, Math.floor(byDetail.length / 4));
    const smooth = byDetail.slice(0, q);
    const detailed = byDetail.slice(byDetail.length - q);

    const colours = flatColours(args.flat);
    const flatInputs = colours.map(([r, g, b]) => {
      const data = new Uint8Array(size * size * 3);
      for (let i = 0; i < data.length; i += 3) {
        data[i] = r;
        data[i + 1] = g;
        data[i + 2] = b;
      }
      return { data, width: size, height: size, channels: 3 };
    });
    const onFlat = await sweepAll(rec, flatInputs, lengths);

    const sample = path.join(ROOT, 'assets', 'sample.jpg');
    const onSample = await sweepAll(rec, [sample], lengths);

    const card = {
      model: path.relative(ROOT, path.resolve(args.model)),
      imageSize: size,
      maxTokens: max,
      eosThreshold: rec.model.meta.eosThreshold,
      training: rec.model.meta.training ?? null,
      lengths,
      psnrHeldoutCrops: { images: crops.length, psnr: onCrops.psnr },
      psnrHeldoutPictures: { images: pictures.length, psnr: onPictures.psnr, names: pictures.map((p) => path.basename(p, '.jpg')) },
      eos: {
        flatSynthetic: { images: flatInputs.length, meanLength: round(mean(onFlat.autoLengths)), lengths: onFlat.autoLengths },
        smoothestHeldoutCrops: { images: smooth.length, meanLength: round(mean(smooth.map((x) => x.auto))), detailRange: [round(smooth[0].detail), round(smooth[smooth.length - 1].detail)] },
        mostDetailedHeldoutCrops: { images: detailed.length, meanLength: round(mean(detailed.map((x) => x.auto))), detailRange: [round(detailed[0].detail), round(detailed[detailed.length - 1].detail)] },
        allHeldoutCrops: { images: crops.length, meanLength: round(mean(onCrops.autoLengths)) },
        heldoutPictures: { images: pictures.length, meanLength: round(mean(onPictures.autoLengths)), lengths: onPictures.autoLengths },
        sample: { image: 'assets/sample.jpg', length: onSample.autoLengths[0], psnr: onSample.psnr },
      },
      checks: {
        psnrRisesWithLength: onCrops.psnr.every((p, i) => i === 0 || p >= onCrops.psnr[i - 1]),
        psnrGainFirstToLast: round(onCrops.psnr[onCrops.psnr.length - 1] - onCrops.psnr[0]),
        flatShorterThanDetailed: mean(onFlat.autoLengths) < mean(detailed.map((x) => x.auto)),
        smoothShorterThanDetailed: mean(smooth.map((x) => x.auto)) < mean(detailed.map((x) => x.auto)),
      },
      evaluatedIn: round((Date.now() - started) / 1000, 1),
      evaluatedAt: new Date().toISOString(),
    };
    const text = JSON.stringify(card, null, 2) + '\n';
    if (args.output) fs.writeFileSync(args.output, text);
    else process.stdout.write(text);
    if (args.readme) {
      const training = args.training && fs.existsSync(args.training) ? JSON.parse(fs.readFileSync(args.training, 'utf8')) : null;
      const manifest = JSON.parse(fs.readFileSync(path.join(args.data, 'manifest.json'), 'utf8'));
      const { renderCard } = require('./model-card-render.js');
      fs.writeFileSync(args.readme, renderCard(card, training, manifest, fs.statSync(args.model).size));
    }
  } finally {
    rec.dispose();
  }
}

main().catch((error) => {
  process.stderr.write(`model-card: ${error && error.message ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
