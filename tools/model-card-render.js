#!/usr/bin/env node
// Renders models/README.md (the embedded model's card) from the numbers tools/model-card.js measured
// (models/model-card.json), the training record scripts/train-embedded wrote (models/training.json) and
// the data manifest scripts/get-data wrote. Nothing in the card is typed by hand: rerun scripts/model-card.
//   node tools/model-card-render.js card.json training.json manifest.json model.pt > models/README.md
'use strict';
const fs = require('node:fs');

const fmt = (x, d = 2) => (typeof x === 'number' && Number.isFinite(x) ? x.toFixed(d) : String(x));
const signed = (x) => `${x >= 0 ? '+' : '−'}${Math.abs(x).toFixed(2)}`;
const mb = (bytes) => `${(bytes / 1e6).toFixed(1)} MB`;
const duration = (s) => (s >= 3600 ? `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min` : `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`);
const yes = (b) => (b ? '**yes**' : '**no**');

function table(header, rows) {
  return [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

function qualityTable(card, set) {
  const rows = [
    ['floats (L × ' + card.tokenDim + ')', ...card.floats.map(String)],
    ['**dove-tiny**', ...set.model.map((x) => `**${fmt(x)}**`)],
    ['same-floats thumbnail', ...set.thumbnail.map((x) => fmt(x))],
    ['margin', ...set.model.map((x, i) => signed(x - set.thumbnail[i]))],
    ['images where the model wins', ...set.perImageWins.map((w) => `${w}/${set.images}`)],
  ];
  if (set.baseline) rows.push(['seeded start (untrained)', ...set.baseline.model.map((x) => fmt(x))]);
  return table(['tokens L', ...card.lengths.map(String)], rows);
}

function licenceSummary(manifest) {
  const byPackage = new Map();
  for (const p of manifest.pictures.filter((x) => x.split === 'train')) {
    if (!byPackage.has(p.package)) byPackage.set(p.package, { kinds: new Map(), licences: new Map() });
    const m = byPackage.get(p.package);
    m.kinds.set(p.kind, (m.kinds.get(p.kind) || 0) + 1);
    m.licences.set(p.licence, (m.licences.get(p.licence) || 0) + 1);
  }
  const rows = [...byPackage.entries()].sort().map(([pkg, m]) => [
    `\`${pkg}\` ${manifest.packages[pkg] || ''}`,
    [...m.kinds.entries()].map(([k, n]) => `${n} ${k}`).join(', '),
    [...m.licences.entries()].map(([l, n]) => `${l} (${n})`).join(', '),
  ]);
  return table(['Debian package (bookworm)', 'training pictures', 'licences (pictures)'], rows);
}

function renderCard(card, training, manifest, modelBytes) {
  const t = training || {};
  const photos = card.sets.find((s) => s.kind === 'photo');
  const c = card.checks;
  const lines = [];
  lines.push('# dove-tiny: the embedded DOVE model', '');
  lines.push(
    '`models/dove-tiny.pt` is the default `--model` of every `dove` command and of `Tokenizer.load()` /',
    '`Reconstructor.load()` without a path: a real DOVE (variable-length continuous tokens, an EOS head,',
    'reconstruction from any prefix) small enough to ship in the npm package and to train on a 2-core CPU.',
    '',
    '_Every number below is written by `bash scripts/model-card` (tools/model-card.js over the public',
    'API) from pictures the model never saw; `bash scripts/train-embedded` reproduces the model itself._',
    '',
  );

  lines.push('## Goals', '');
  lines.push(
    table(['goal', 'held?', 'measured'], [
      ['beats a thumbnail storing the same floats, at every length, on held-out photos and scikit-image photos', yes(c.beatsThumbnailAtEveryLength), card.sets.filter((s) => s.kind === 'photo' || s.kind === 'skimage').map((s) => `${s.name}: smallest margin ${signed(Math.min(...s.model.map((x, i) => x - s.thumbnail[i])))} dB`).join('; ')],
      [`≥ 26 dB at the longest length (${card.maxTokens} tokens) on held-out photos`, yes(c.reaches26dBAtLongest), `${fmt(c.longestLengthPsnrOnPhotos)} dB`],
      ['flat pictures get EOS lengths at most ¼ of detailed photos', yes(c.flatAtMostQuarterOfDetailed), `flat ${fmt(card.eos.flatSynthetic.meanLength)} vs held-out photos ${fmt(card.eos.heldoutPhotos.meanLength)} tokens (ratio ${fmt(c.flatOverDetailedEosRatio, 3)})`],
      ['PSNR rises with every doubling of tokens (held-out photos)', yes(c.psnrRisesWithLength), photos.model.map((x) => fmt(x, 1)).join(' → ')],
    ]),
    '',
  );

  lines.push('## Demo', '');
  if (card.sample.grid) {
    lines.push(`![assets/sample.jpg and its reconstructions from 1 … ${card.maxTokens} tokens](${card.sample.grid})`, '');
  }
  lines.push(
    `\`assets/sample.jpg\` (a photograph of a flower) and its reconstructions from the first L tokens (\`npm run demo\` draws`,
    `the same grid). PSNR ${card.sample.psnr.map((x) => fmt(x, 1)).join(' / ')} dB at L = ${card.lengths.join(' / ')}; the EOS head keeps ${card.sample.eosLength} tokens.`,
    '',
  );

  lines.push('## Model', '');
  lines.push(
    table(['', ''], [
      ['Config', `\`${t.config || 'tiny'}\` (python/dove/configs/${t.config || 'tiny'}.json), exported by \`python -m dove.export --config ${t.config || 'tiny'}\``],
      ['Input', `${card.imageSize}×${card.imageSize} RGB (any image is resized: short side, then centre crop)`],
      ['Tokens', `1 … ${card.maxTokens} tokens of ${card.tokenDim} floats; EOS threshold ${card.eosThreshold}`],
      ['Size', `${mb(modelBytes)} (TorchScript, float32)`],
      ['Autoencoder', 'block transform (python/dove/transform_ae.py): 8×8 block DCT in an opponent colour space, a second DCT over the grid of blocks, coefficients ordered coarse to fine over the whole image, plus convolutional refinements'],
      ['Token path', 'causal GPT-NeoX generator over the 64 latent channels + 64 slots, bidirectional GPT-NeoX decoder, linear slot skips (python/dove/model.py, `transformer.sequence` "channels", `slot_skip`)'],
    ]),
    '',
    'The seeded start is the autoencoder\'s ordered linear code passed through unchanged (the last row of each',
    'quality table): training through the project\'s own Trainer adds the rest, the non-linear refinements, the',
    'transformers\' use of the whole image for the first tokens and of the kept tokens for the missing ones, and the',
    'EOS head. docs/TRAINING.md ("The embedded model") explains the design and what was tried.',
    '',
  );

  lines.push('## Reconstruction quality vs token length', '');
  lines.push(
    'PSNR in dB (mean over images) of the reconstruction from the first L tokens against the model\'s',
    `${card.imageSize}×${card.imageSize} input, next to the reference codec that stores the same number of floats as a thumbnail`,
    '(area-average down to n×n with n = ⌊√(floats / 3)⌋, bicubic back up; lib/eval/thumbnail.ts). Held-out',
    'pictures belong to whole designs or scenes never seen in training; scikit-image\'s photographs were',
    'never used for training or for choosing the design.',
    '',
  );
  for (const set of card.sets) {
    lines.push(`### ${set.name} (${set.images})`, '', qualityTable(card, set), '');
  }

  lines.push('## Length chosen by the EOS head', '');
  lines.push(
    `Mean number of tokens the EOS head keeps (auto mode, threshold ${card.eosThreshold}):`,
    '',
    table(['images', 'n', 'mean EOS length'], [
      [`flat: single-colour ${card.imageSize}×${card.imageSize} images (seeded colours)`, String(card.eos.flatSynthetic.images), fmt(card.eos.flatSynthetic.meanLength)],
      [`smoothest quarter of held-out crops (detail ${fmt(card.eos.smoothestHeldoutCrops.detailRange[0])}–${fmt(card.eos.smoothestHeldoutCrops.detailRange[1])})`, String(card.eos.smoothestHeldoutCrops.images), fmt(card.eos.smoothestHeldoutCrops.meanLength)],
      [`most detailed quarter of held-out crops (detail ${fmt(card.eos.mostDetailedHeldoutCrops.detailRange[0])}–${fmt(card.eos.mostDetailedHeldoutCrops.detailRange[1])})`, String(card.eos.mostDetailedHeldoutCrops.images), fmt(card.eos.mostDetailedHeldoutCrops.meanLength)],
      ['held-out photos, whole pictures', String(card.eos.heldoutPhotos.images), fmt(card.eos.heldoutPhotos.meanLength)],
    ]),
    '',
  );

  lines.push('## Training', '');
  const stages = t.stages || [];
  const rows = [
    ['Trainer', 'this project\'s `Trainer` through `dove train` (libtorch, AdamW, warm-up + cosine, gradient clipping)'],
    ['Recipe', `\`${t.recipe || 'models/recipe.json'}\`, run by \`bash scripts/train-embedded\``],
    ...stages.map((s) => [`Stage "${s.name}"`, `${s.steps} optimizer steps of batch ${s.args['batch-size']} (${s.imagesSeen} samples), lr ${s.args.lr} (autoencoder × ${s.args['vqgan-lr-scale']})${s.stoppedByBudget ? ', stopped by its time budget' : ''}${s.resumedFrom ? `; resumed from ${s.resumedFrom} after an interruption (steps and samples count the whole run)` : ''}; final ${Object.entries(s.final).map(([k, v]) => `${k} ${fmt(v, 4)}`).join(', ')}`]),
    ['Time', t.seconds !== undefined ? `${duration(t.seconds)} wall clock, ${duration(t.cpuSeconds)} of CPU time, ${t.threads} intra-op thread(s)${stages.some((s) => s.resumedFrom) ? ' (the resumed run only: the steps before its checkpoint ran earlier, at the same rate)' : ''}` : '?'],
    ['Machine', t.machine ? `${t.machine.cpu}, ${t.machine.cores} cores, ${t.machine.memoryGB} GB (shared with other work: load average ${t.machine.loadAverageAtEnd.join(' / ')} at the end)` : '?'],
    ['Commands', (t.commands || []).map((x) => `\`${x}\``).join('<br>')],
    ['Seed', String(t.seed ?? 0)],
  ];
  lines.push(table(['', ''], rows), '');

  lines.push('## Data', '');
  const kinds = manifest.countsByKind || {};
  lines.push(
    `${manifest.counts.train} training pictures (${Object.entries(kinds).map(([k, v]) => `${v.train} ${k}s`).join(', ')}), ` +
      `${manifest.crops.train} crops of ${manifest.cropSize}×${manifest.cropSize} at several scales; ${manifest.counts.heldout} held-out pictures ` +
      `(${Object.entries(kinds).map(([k, v]) => `${v.heldout} ${k}s`).join(', ')}), from Debian packages fetched by \`bash scripts/get-data\`. ` +
      'Whole families (a design in its variants, a scene in its sizes) are held out, never single files.',
    '',
    licenceSummary(manifest),
    '',
    'Per-picture licence, copyright and source path: `manifest.json` and `LICENSES.md` in the data folder',
    '(`~/.cache/dove-encoder/data`); the packages\' copyright files are copied to its `licenses/`.',
    '',
  );
  return lines.join('\n');
}

if (require.main === module) {
  const [cardFile, trainingFile, manifestFile, modelFile] = process.argv.slice(2);
  const card = JSON.parse(fs.readFileSync(cardFile, 'utf8'));
  const training = fs.existsSync(trainingFile) ? JSON.parse(fs.readFileSync(trainingFile, 'utf8')) : null;
  const manifest = JSON.parse(fs.readFileSync(manifestFile, 'utf8'));
  process.stdout.write(renderCard(card, training, manifest, fs.statSync(modelFile).size));
}
module.exports = { renderCard };
