#!/usr/bin/env node
// Computes the embedded model's card numbers with the package's own public API (dist/lib:
// Reconstructor.sweep, psnr, thumbnailPsnr) and writes them as JSON; scripts/model-card runs it and
// renders models/README.md from the JSON.
//
//   node tools/model-card.js --model models/dove-tiny.pt --data ~/.cache/dove-encoder/data
//        [--baseline init.pt] [--skimage DIR] [--grid models/demo-grid.png] -o card.json
//
// Numbers (every image goes through the API's own preprocessing: short side resized, centre crop):
// - For each token length L: PSNR (dB, mean over images) of the reconstruction from the first L tokens,
//   next to the PSNR of the reference codec that stores the same number of floats (L × tokenDim) as a
//   thumbnail (lib/eval/thumbnail.ts), on the held-out pictures of each kind (photo, texture, artwork:
//   whole designs never seen in training) and on scikit-image's photographs (never trained on).
// - The same for --baseline (the seeded export training started from), to show what training added.
// - Mean EOS length (auto mode) on flat images vs detailed photographs. Flat: single-colour images
//   (seeded colours) and the smoothest quarter of the held-out crops; detailed: the held-out photos and
//   the most detailed quarter of the held-out crops. Detail = mean absolute luminance gradient
//   (tools/dove_data.py, crops-<S>/index.json).
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');
const api = require(path.join(ROOT, 'dist', 'lib', 'index.js'));
const { thumbnailPsnr } = require(path.join(ROOT, 'dist', 'lib', 'eval', 'thumbnail.js'));

function parse(argv) {
  const out = { model: path.join(ROOT, 'models', 'dove-tiny.pt'), data: null, output: null, baseline: null, skimage: null, grid: null, flat: 24 };
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
    else if (a === '--baseline') out.baseline = next();
    else if (a === '--skimage') out.skimage = next();
    else if (a === '--grid') out.grid = next();
    else if (a === '--flat') out.flat = Number(next());
    else throw new Error(`unknown option ${a}`);
  }
  if (!out.data) throw new Error('--data DIR is required (bash scripts/get-data prepares it)');
  return out;
}

const mean = (xs) => xs.reduce((s, x) => s + x, 0) / xs.length;
const round = (x, d = 2) => Math.round(x * 10 ** d) / 10 ** d;
const capped = (p) => Math.min(p, 100);

/** Deterministic flat colours (a small LCG, so every run and machine uses the same ones). */
function flatColours(n) {
  let s = 12345;
  const next = () => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return (s >>> 16) & 255;
  };
  return Array.from({ length: n }, () => [next(), next(), next()]);
}

/** One encode per image, decoded at every length: PSNR per length, the thumbnail's, and the EOS length. */
async function evaluate(rec, inputs, lengths) {
  const tokenDim = rec.model.tokenDim;
  const size = rec.imageSize;
  const model = lengths.map(() => []);
  const thumb = lengths.map(() => []);
  const eos = [];
  for (const input of inputs) {
    const r = await rec.sweep(input, lengths);
    r.reconstructions.forEach((x, i) => {
      model[i].push(capped(api.psnr(r.input.data, x.image.data)));
      thumb[i].push(capped(thumbnailPsnr(r.input.data, size, lengths[i] * tokenDim)));
    });
    eos.push(r.auto.length);
  }
  return { images: inputs.length, model: model.map((p) => round(mean(p))), thumbnail: thumb.map((p) => round(mean(p))), eosLengths: eos,
    perImageWins: lengths.map((_, i) => model[i].filter((p, j) => p > thumb[i][j]).length) };
}

function listPictures(dir, filter = () => true) {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir).filter((f) => /\.(jpe?g|png|webp)$/i.test(f) && filter(f)).sort().map((f) => path.join(dir, f));
}

async function main() {
  const args = parse(process.argv.slice(2));
  const started = Date.now();
  const manifest = JSON.parse(fs.readFileSync(path.join(args.data, 'manifest.json'), 'utf8'));
  const rec = await api.Reconstructor.load(args.model);
  const base = args.baseline ? await api.Reconstructor.load(args.baseline) : null;
  try {
    const size = rec.imageSize;
    const max = rec.model.maxTokens;
    const lengths = [];
    for (let n = 1; n < max; n *= 2) lengths.push(n);
    lengths.push(max);

    // Held-out pictures by kind, from the manifest (whole families were held out).
    const heldout = manifest.pictures.filter((p) => p.split === 'heldout');
    const byKind = {};
    for (const kind of ['photo', 'texture', 'artwork']) {
      const files = heldout.filter((p) => p.kind === kind).map((p) => path.join(args.data, 'heldout', p.file ?? `${p.name}.jpg`)).filter((f) => fs.existsSync(f));
      if (files.length > 0) byKind[kind] = files;
    }
    if (!byKind.photo) throw new Error(`no held-out photos listed in ${args.data}/manifest.json`);
    const sets = Object.entries(byKind).map(([kind, files]) => ({ name: `held-out ${kind}s`, kind, files }));
    const skimage = args.skimage ? listPictures(args.skimage) : [];
    if (skimage.length > 0) sets.push({ name: 'scikit-image photographs', kind: 'skimage', files: skimage });

    const results = [];
    for (const set of sets) {
      const trained = await evaluate(rec, set.files, lengths);
      const initial = base ? await evaluate(base, set.files, lengths) : null;
      results.push({ name: set.name, kind: set.kind, names: set.files.map((f) => path.basename(f)), ...trained,
        baseline: initial ? { model: initial.model } : null });
    }

    // EOS: flat vs detailed.
    const cropDir = path.join(args.data, `crops-${size}`);
    const index = JSON.parse(fs.readFileSync(path.join(cropDir, 'index.json'), 'utf8')).filter((c) => c.split === 'heldout');
    const crops = await evaluate(rec, index.map((c) => path.join(cropDir, c.file)), [max]);
    const byDetail = index.map((c, i) => ({ detail: c.detail, auto: crops.eosLengths[i] })).sort((a, b) => a.detail - b.detail);
    const q = Math.max(1, Math.floor(byDetail.length / 4));
    const smooth = byDetail.slice(0, q);
    const detailed = byDetail.slice(byDetail.length - q);
    const flatInputs = flatColours(args.flat).map(([r, g, b]) => {
      const data = new Uint8Array(size * size * 3);
      for (let i = 0; i < data.length; i += 3) {
        data[i] = r;
        data[i + 1] = g;
        data[i + 2] = b;
      }
      return { data, width: size, height: size, channels: 3 };
    });
    const flat = await evaluate(rec, flatInputs, [max]);
    const photos = results.find((r) => r.kind === 'photo');
    const sample = await evaluate(rec, [path.join(ROOT, 'assets', 'sample.jpg')], lengths);

    if (args.grid) {
      const r = await rec.sweep(path.join(ROOT, 'assets', 'sample.jpg'), lengths);
      const { composeGrid } = require(path.join(ROOT, 'dist', 'lib', 'render', 'grid.js'));
      const columns = [{ label: 'INPUT', pixels: r.input.data }, ...r.reconstructions.map((x) => ({ label: `L ${x.length}`, pixels: x.image.data }))];
      fs.writeFileSync(args.grid, await composeGrid(columns, { size }));
    }

    const flatMean = mean(flat.eosLengths);
    const photoMean = mean(photos.eosLengths);
    const card = {
      model: path.relative(ROOT, path.resolve(args.model)),
      baseline: args.baseline ? path.basename(args.baseline) : null,
      imageSize: size,
      maxTokens: max,
      tokenDim: rec.model.tokenDim,
      eosThreshold: rec.model.meta.eosThreshold,
      lengths,
      floats: lengths.map((l) => l * rec.model.tokenDim),
      sets: results,
      sample: { image: 'assets/sample.jpg', psnr: sample.model, thumbnail: sample.thumbnail, eosLength: sample.eosLengths[0], grid: args.grid ? path.relative(path.dirname(path.resolve(args.output ?? '.')), path.resolve(args.grid)) : null },
      eos: {
        flatSynthetic: { images: flat.images, meanLength: round(flatMean), lengths: flat.eosLengths },
        smoothestHeldoutCrops: { images: smooth.length, meanLength: round(mean(smooth.map((x) => x.auto))), detailRange: [round(smooth[0].detail), round(smooth[smooth.length - 1].detail)] },
        mostDetailedHeldoutCrops: { images: detailed.length, meanLength: round(mean(detailed.map((x) => x.auto))), detailRange: [round(detailed[0].detail), round(detailed[detailed.length - 1].detail)] },
        heldoutPhotos: { images: photos.images, meanLength: round(photoMean), lengths: photos.eosLengths },
      },
      checks: {
        beatsThumbnailAtEveryLength: results.filter((r) => r.kind === 'photo' || r.kind === 'skimage').every((r) => r.model.every((p, i) => p > r.thumbnail[i])),
        longestLengthPsnrOnPhotos: photos.model[photos.model.length - 1],
        reaches26dBAtLongest: photos.model[photos.model.length - 1] >= 26,
        flatOverDetailedEosRatio: round(flatMean / photoMean, 3),
        flatAtMostQuarterOfDetailed: flatMean <= photoMean / 4,
        psnrRisesWithLength: photos.model.every((p, i) => i === 0 || p >= photos.model[i - 1]),
      },
      evaluatedIn: round((Date.now() - started) / 1000, 1),
      evaluatedAt: new Date().toISOString(),
    };
    const text = JSON.stringify(card, null, 2) + '\n';
    if (args.output) fs.writeFileSync(args.output, text);
    else process.stdout.write(text);
  } finally {
    rec.dispose();
    base?.dispose();
  }
}

main().catch((error) => {
  process.stderr.write(`model-card: ${error && error.stack ? error.stack : String(error)}\n`);
  process.exitCode = 1;
});
