// Renders models/README.md (the embedded model's card) from the numbers scripts/model-card.js
// measured, the training record scripts/train-embedded wrote (models/training.json) and the data
// manifest scripts/get-data wrote. Nothing in the card is typed by hand: rerun scripts/model-card.
'use strict';

const fmt = (x, d = 2) => (typeof x === 'number' && Number.isFinite(x) ? x.toFixed(d) : String(x));
const mb = (bytes) => `${(bytes / 1e6).toFixed(1)} MB`;
const minutes = (s) => `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;

function table(header, rows) {
  return [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

function licenceSummary(manifest) {
  const byPackage = new Map();
  for (const p of manifest.pictures) {
    if (!byPackage.has(p.package)) byPackage.set(p.package, new Map());
    const m = byPackage.get(p.package);
    m.set(p.licence, (m.get(p.licence) || 0) + 1);
  }
  const rows = [];
  for (const [pkg, lics] of [...byPackage.entries()].sort()) {
    const list = [...lics.entries()].map(([l, n]) => `${l} (${n})`).join(', ');
    rows.push([`\`${pkg}\` ${manifest.packages[pkg] || ''}`, String([...lics.values()].reduce((a, b) => a + b, 0)), list]);
  }
  return table(['Debian package (bookworm)', 'pictures', 'licences (pictures)'], rows);
}

function renderCard(card, training, manifest, modelBytes) {
  const L = card.lengths;
  const eos = card.eos;
  const t = training || {};
  const lines = [];
  lines.push('# dove-tiny: the embedded DOVE model', '');
  lines.push(
    '`models/dove-tiny.pt` is the default `--model` of every `dove` command and of `Tokenizer.load()` /',
    '`Reconstructor.load()` without a path. It is a real DOVE (variable-length continuous tokens, an EOS',
    'head, reconstruction from any prefix), small enough to ship in the npm package and to train on a',
    'laptop CPU: a demonstration and test model, not a general-purpose image encoder.',
    '',
    '_Every number below is written by `bash scripts/model-card` (scripts/model-card.js over the public',
    'API) from held-out images; `bash scripts/train-embedded` reproduces the model itself._',
    '',
  );

  const meets = card.checks.psnrRisesWithLength && card.checks.psnrGainFirstToLast > 0.5 && card.checks.flatShorterThanDetailed && card.checks.smoothShorterThanDetailed;
  if (!meets) {
    lines.push(
      '> **Warning: this model does not show the DOVE behaviour yet.** Its reconstructions barely depend on',
      '> the number of tokens, or its EOS lengths do not separate flat from detailed images (numbers below).',
      '> It loads and runs everywhere (API, CLI, package), but treat it as a placeholder until',
      '> `bash scripts/train-embedded` produces one that passes these checks. See "Training" for what was tried.',
      '',
    );
  }
  lines.push('## Model', '');
  lines.push(
    table(['', ''], [
      ['Config', `\`tiny\` (python/dove/configs/tiny.json), exported by \`python -m dove.export --config tiny\``],
      ['Input', `${card.imageSize}×${card.imageSize} RGB (any image is resized: short side + centre crop)`],
      ['Tokens', `1 … ${card.maxTokens} tokens of ${t.tokenDim || 128} floats; EOS threshold ${card.eosThreshold}`],
      ['Size', `${mb(modelBytes)} (TorchScript, float32)${t.parameters ? `, ${(t.parameters / 1e6).toFixed(2)} M parameters` : ''}`],
    ]),
    '',
  );

  lines.push('## Training', '');
  const dataRow = t.data
    ? `${t.data.trainCrops} crops (${t.data.cropSize}×${t.data.cropSize}, several scales) of ${t.data.trainPictures} training pictures`
    : `${manifest.crops.train} crops of ${manifest.counts.train} training pictures`;
  lines.push(
    table(['', ''], [
      ['Trainer', 'this project\'s `Trainer` through `dove train` (libtorch, AdamW, warm-up + cosine, grad clip 1.0)'],
      ['Data', dataRow],
      ...(t.autoencoderStage ? [['Stage 1: VQGAN alone', `${t.autoencoderStage.steps} steps of batch ${t.batchSize} (${t.autoencoderStage.imagesSeen} samples), \`loss.stage\` "autoencoder", final reconstruction MSE ${fmt(t.autoencoderStage.finalMse, 4)}`]] : []),
      ['Steps', t.steps !== undefined ? `${t.autoencoderStage ? 'stage 2, DOVE: ' : ''}${t.steps} optimizer steps of batch ${t.batchSize} (${t.steps * t.batchSize} samples)` : 'see models/training.json'],
      ['Learning rate', t.lr !== undefined ? `${t.lr} (VQGAN × ${t.vqganLrScale ?? 0.1}), ${t.warmupSteps} warm-up steps, cosine to ${t.minLrRatio ?? 0.1}× of it` : '?'],
      ['Time', t.seconds !== undefined ? `${minutes(t.seconds)} on ${t.threads} CPU threads (${t.cpu || 'CPU'}), shared with other work` : '?'],
      ['Final loss', t.final ? Object.entries(t.final).map(([k, v]) => `${k} ${fmt(v, 4)}`).join(', ') : '?'],
      ['Command', t.command ? `\`${t.command}\`` : '`bash scripts/train-embedded`'],
      ['Seed', String(t.seed ?? 0)],
    ]),
    '',
  );
  if (t.adjustments) lines.push(`Adjustments: ${t.adjustments}`, '');

  lines.push('## Reconstruction quality vs token length (held-out)', '');
  lines.push(
    `PSNR in dB (mean over images; higher is better) of the reconstruction from the first L tokens, on`,
    `${card.psnrHeldoutCrops.images} held-out ${card.imageSize}×${card.imageSize} crops and on the ${card.psnrHeldoutPictures.images} held-out pictures themselves (resized, centre-cropped).`,
    'Held-out pictures were never seen in training (whole designs are held out, not just files).',
    '',
  );
  lines.push(
    table(['tokens L', ...L.map(String)], [
      ['held-out crops', ...card.psnrHeldoutCrops.psnr.map((x) => fmt(x))],
      ['held-out pictures', ...card.psnrHeldoutPictures.psnr.map((x) => fmt(x))],
      ['assets/sample.jpg', ...eos.sample.psnr.map((x) => fmt(x))],
    ]),
    '',
  );
  lines.push(
    `PSNR rises with every added doubling of tokens: **${card.checks.psnrRisesWithLength ? 'yes' : 'no'}** ` +
      `(${card.checks.psnrGainFirstToLast >= 0 ? '+' : ''}${fmt(card.checks.psnrGainFirstToLast)} dB from 1 to ${card.maxTokens} tokens on held-out crops).`,
    '',
  );

  lines.push('## Length chosen by the EOS head: flat vs detailed images', '');
  lines.push(
    'Mean number of tokens the EOS head keeps (auto mode, threshold ' + card.eosThreshold + '):',
    '',
    table(['images', 'how chosen', 'n', 'mean EOS length'], [
      ['flat (synthetic)', `single-colour ${card.imageSize}×${card.imageSize} images, seeded random colours`, String(eos.flatSynthetic.images), fmt(eos.flatSynthetic.meanLength)],
      ['flat (real)', `smoothest quarter of held-out crops (detail ${fmt(eos.smoothestHeldoutCrops.detailRange[0])}–${fmt(eos.smoothestHeldoutCrops.detailRange[1])})`, String(eos.smoothestHeldoutCrops.images), fmt(eos.smoothestHeldoutCrops.meanLength)],
      ['detailed (real)', `most detailed quarter of held-out crops (detail ${fmt(eos.mostDetailedHeldoutCrops.detailRange[0])}–${fmt(eos.mostDetailedHeldoutCrops.detailRange[1])})`, String(eos.mostDetailedHeldoutCrops.images), fmt(eos.mostDetailedHeldoutCrops.meanLength)],
      ['all held-out crops', '', String(eos.allHeldoutCrops.images), fmt(eos.allHeldoutCrops.meanLength)],
      ['held-out pictures', 'whole pictures, resized', String(eos.heldoutPictures.images), fmt(eos.heldoutPictures.meanLength)],
      ['assets/sample.jpg', 'the quick-start photograph', '1', String(eos.sample.length)],
    ]),
    '',
    'Detail = mean absolute luminance gradient of the crop (0–255 scale), computed by scripts/dove_data.py.',
    `Flat images get shorter codes than detailed ones: **${card.checks.flatShorterThanDetailed && card.checks.smoothShorterThanDetailed ? 'yes' : 'no'}** ` +
      `(synthetic flat ${fmt(eos.flatSynthetic.meanLength)}, smooth real ${fmt(eos.smoothestHeldoutCrops.meanLength)}, detailed real ${fmt(eos.mostDetailedHeldoutCrops.meanLength)}).`,
    '',
  );

  lines.push('## Data', '');
  lines.push(
    `Real photographs and artwork from Debian's desktop wallpaper packages, fetched by \`bash scripts/get-data\``,
    '(`apt-get download` + `dpkg -x`, then deterministic preparation by scripts/dove_data.py): the same picture',
    'shipped at several sizes is kept once (largest), transparent overlays are dropped, variants of one design',
    '(light/dark, recoloured) form one family, and ~10% of families are held out by SHA-256 of their names.',
    `Result: ${manifest.counts.train} training and ${manifest.counts.heldout} held-out pictures (short side resized to ${manifest.shortSide}),`,
    `${manifest.crops.train} training and ${manifest.crops.heldout} held-out crops of ${manifest.cropSize}×${manifest.cropSize} at scales from 1× to 8× the crop size.`,
    '',
    `Held-out pictures: ${card.psnrHeldoutPictures.names.map((n) => `\`${n}\``).join(', ')}.`,
    '',
  );

  lines.push('## Licences of the training data', '');
  lines.push(
    licenceSummary(manifest),
    '',
    'Per-picture authors and licences: `~/.cache/dove-encoder/data/LICENSES.md` (written by scripts/get-data from',
    'the packages\' `debian/copyright` files and KDE `metadata.json`; full copyright files in `licenses/`).',
    'The weights are a statistical summary of these images; they reproduce none of them (64×64, ~2 M parameters),',
    'but if you redistribute the model in a context where that matters, treat it as derived from GPL-2+,',
    'LGPL-3 and CC-BY-SA works and credit the packages above. The code of dove-encoder is MIT.',
    '',
  );

  lines.push('## Reproduce', '');
  lines.push(
    '```sh',
    'bash scripts/get-data          # download + prepare the pictures (~200 MB of .debs, once)',
    'bash scripts/train-embedded    # export tiny, train with `dove train`, copy to models/dove-tiny.pt',
    'bash scripts/model-card        # recompute this card from held-out images',
    '```',
    '',
    'Training on 2 CPU cores is not bit-reproducible across machines (thread scheduling changes float',
    'summation order), but the seed, data, split and schedule are fixed, so a rerun lands close to these numbers.',
    '',
  );

  lines.push('## Limitations', '');
  lines.push(
    `- ${card.imageSize}×${card.imageSize} pixels only: reconstructions are blurry, fine texture is lost even at ${card.maxTokens} tokens.`,
    '- Trained for minutes on a few thousand crops of ~70 pictures: it has seen wallpapers (landscapes, flowers,',
    '  abstract art), not faces, text or documents. Use it to try the API, not to measure DOVE.',
    '- For real work export `official-14m` / `official-70m` with pretrained VQGAN and Pythia weights and train on a GPU.',
    '',
  );
  lines.push(`_Card generated ${card.evaluatedAt} in ${fmt(card.evaluatedIn, 1)} s._`, '');
  return lines.join('\n');
}

module.exports = { renderCard };
