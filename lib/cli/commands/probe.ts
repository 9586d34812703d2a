import type { Command } from '../command';
import { checkIntRange, getFlag, getNumber, getString, MODEL_FILE_OPTIONS, parseArgs, UsageError, withUsage } from '../args';
import { ProgressBar } from '../progress';
import { describeDataset, readDataset, type CifarLabel, type DatasetFormat } from '../../eval/cifar';
import { disposeProbe, probeCsv, probeFeatures, trainProbe, type ProbeFeatureKind } from '../../eval/probe';
import { formatTable, writeReport } from '../../eval/report';
import { Tokenizer } from '../../model/tokenizer';

const SPECS = {
  'data-root': { type: 'string' },
  format: { type: 'string', choices: ['auto', 'cifar-python', 'cifar-binary', 'folder'] },
  label: { type: 'string', choices: ['fine', 'coarse'] },
  features: { type: 'string', choices: ['tokens', 'pixels'] },
  ...MODEL_FILE_OPTIONS,
  'num-classes': { type: 'int', min: 2, max: 1000000 },
  'num-tokens': { type: 'int', min: 1, max: 4096 },
  auto: { type: 'flag' },
  threshold: { type: 'float', min: 0, max: 1 },
  'pixel-size': { type: 'int', min: 1, max: 512 },
  epochs: { type: 'int', min: 1, max: 100000 },
  'batch-size': { type: 'int', min: 1, max: 1000000 },
  lr: { type: 'float', min: 1e-9, max: 100 },
  'weight-decay': { type: 'float', min: 0, max: 100 },
  seed: { type: 'int', min: 0, max: 2147483647 },
  'no-standardize': { type: 'flag' },
  'extract-batch-size': { type: 'int', min: 1, max: 4096 },
  'cache-dir': { type: 'string' },
  'no-cache': { type: 'flag' },
  log: { type: 'string' },
  quiet: { type: 'flag' },
} as const;

const help = `Usage: dove probe --data-root <dir> [--model m.pt] (--num-tokens K | --auto) [options]
       dove probe --data-root <dir> --features pixels [options]

Linear probe of frozen representations: features of every train and test image are extracted once
(and cached on disk, keyed by the model file's hash, the settings and the data files), then a linear
softmax classifier is trained on them in libtorch (AdamW, features standardised with train
statistics). Prints and logs per epoch: train loss, train top-1, test top-1 and top-5.

Features:
  tokens (default)  DOVE tokens of the model: --num-tokens K (fixed budget, the K tokens flattened to
                    K x tokenDim, as the original probe) or --auto (the EOS-chosen length, tokens
                    mean-pooled to tokenDim)
  pixels            the raw pixels scaled to [0,1] (the linear baseline; folder images are resized
                    to --pixel-size, default 32)

Data (--format auto detects it under --data-root):
  cifar-python      cifar-100-python/{train,test,meta} (torchvision's download) or cifar-10-batches-py/
  cifar-binary      cifar-100-binary/{train,test}.bin (+ *_label_names.txt) or cifar-10-batches-bin/
  folder            <root>/train/<class>/*.png|jpg... and <root>/test/<class>/*

Options:
      --data-root <dir>       data set folder (required)
      --format <f>            auto (default), cifar-python, cifar-binary, folder
      --label <l>             CIFAR-100 labels: fine (default, 100 classes) or coarse (20)
      --features <f>          tokens (default) or pixels
  -m, --model <file.pt>       DOVE export (default: the embedded model)
      --num-tokens <K>        fixed token budget (default: the model's maxTokens)
      --auto                  EOS length, mean-pooled
      --threshold <p>         EOS threshold for --auto (default: the model's)
      --num-classes <n>       classes (default: the data set's class count)
      --epochs <n>            default 100
      --batch-size <n>        classifier batch size (default 256)
      --lr <x>                AdamW learning rate (default 1e-3)
      --weight-decay <x>      default 0
      --seed <n>              shuffling seed (default 0)
      --no-standardize        train on the raw features
      --extract-batch-size <n> images per model forward during extraction (default 64)
      --cache-dir <dir>       feature cache (default ~/.cache/dove-encoder/probe-features)
      --no-cache              always extract, never write the cache
      --log <results.csv>     per-epoch CSV: epoch,train_loss,train_top1,test_top1,test_top5
      --device <dev>          cpu (default), cuda, cuda:N
      --trust-model           load a model whose TorchScript touches files or the process (docs/MODEL_FORMAT.md)
      --quiet                 only the final line

Examples:
  dove probe --data-root ~/data --num-tokens 32 --epochs 100 --log probe.csv
  dove probe --data-root ~/data --auto --model dove-70m.pt
  dove probe --data-root ~/data --features pixels --epochs 30
`;

async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv, SPECS);
  if (args.positionals.length > 0) throw new UsageError(`Unexpected argument ${args.positionals[0]} (the data set is given with --data-root)`);
  const root = getString(args, 'data-root');
  if (root === undefined) throw new UsageError('Missing --data-root <dir>');
  const kind = (getString(args, 'features') ?? 'tokens') as ProbeFeatureKind;
  const auto = args.options.get('auto') === true;
  const numTokensFlag = getNumber(args, 'num-tokens');
  if (kind === 'pixels' && (auto || numTokensFlag !== undefined || getString(args, 'model') !== undefined)) {
    throw new UsageError('--features pixels takes no --model, --num-tokens or --auto');
  }
  if (auto && numTokensFlag !== undefined) throw new UsageError('Expected either --num-tokens or --auto, not both');
  const quiet = args.options.get('quiet') === true;
  const say = (line: string): void => {
    if (!quiet) process.stderr.write(`dove probe: ${line}\n`);
  };

  const dataset = await readDataset(root, {
    format: (getString(args, 'format') ?? 'auto') as DatasetFormat | 'auto',
    label: (getString(args, 'label') ?? 'fine') as CifarLabel,
  });
  say(describeDataset(dataset));
  const numClasses = getNumber(args, 'num-classes') ?? dataset.classNames.length;

  const tokenizer = kind === 'tokens' ? await Tokenizer.load(getString(args, 'model'), { device: getString(args, 'device'), trustModel: getFlag(args, 'trust-model') }) : undefined;
  try {
    if (tokenizer !== undefined && numTokensFlag !== undefined) checkIntRange([numTokensFlag], '--num-tokens', 1, tokenizer.maxTokens);
    const total = dataset.train.count + dataset.test.count;
    const bar = new ProgressBar(total, { label: 'probe features', silent: quiet });
    let reported = 0;
    const features = await probeFeatures(dataset, {
      kind,
      tokenizer,
      numTokens: numTokensFlag,
      auto,
      threshold: getNumber(args, 'threshold'),
      pixelSize: getNumber(args, 'pixel-size'),
      batchSize: getNumber(args, 'extract-batch-size'),
      cacheDir: args.options.get('no-cache') === true ? null : getString(args, 'cache-dir'),
      onProgress: (split, done) => {
        const at = (split === 'train' ? 0 : dataset.train.count) + done;
        if (at > reported) bar.tick(at - reported);
        reported = at;
      },
    });
    bar.finish();
    say(`${features.description}: ${features.dim} features per image${features.fromCache ? ` (from cache ${features.cacheFile})` : features.cacheFile ? ` (cached in ${features.cacheFile})` : ''}`);

    const headers = ['epoch', 'train_loss', 'train_top1', 'test_top1', 'test_top5'];
    if (!quiet) process.stdout.write(formatTable(headers, []).split('\n')[0] + '\n');
    const result = await trainProbe(features, dataset, {
      numClasses,
      epochs: getNumber(args, 'epochs') ?? 100,
      batchSize: getNumber(args, 'batch-size') ?? 256,
      lr: getNumber(args, 'lr') ?? 1e-3,
      weightDecay: getNumber(args, 'weight-decay') ?? 0,
      seed: getNumber(args, 'seed') ?? 0,
      standardize: args.options.get('no-standardize') !== true,
      onEpoch: (m) => {
        if (!quiet) {
          process.stdout.write(
            `${String(m.epoch).padStart(5)}  ${m.trainLoss.toFixed(4).padStart(10)}  ${(100 * m.trainTop1).toFixed(2).padStart(9)}%  ${(100 * m.testTop1).toFixed(2).padStart(8)}%  ${(100 * m.testTop5).toFixed(2).padStart(8)}%\n`,
          );
        }
      },
    });
    const last = result.epochs[result.epochs.length - 1]!;
    const best = result.epochs.reduce((b, e) => (e.testTop1 > b.testTop1 ? e : b), last);
    const logPath = getString(args, 'log');
    if (logPath !== undefined) await writeReport(logPath, probeCsv(result.epochs));
    process.stdout.write(
      `${features.description}: test top-1 ${(100 * last.testTop1).toFixed(2)}% (best ${(100 * best.testTop1).toFixed(2)}% at epoch ${best.epoch}), top-5 ${(100 * last.testTop5).toFixed(2)}%` +
        (logPath ? `; log ${logPath}` : '') +
        '\n',
    );
    disposeProbe(result);
    return 0;
  } finally {
    tokenizer?.dispose();
  }
}

const command: Command = { name: 'probe', summary: 'Linear probe of DOVE tokens (or raw pixels) on CIFAR or image folders', help, specs: SPECS, run: (argv) => withUsage('probe', () => run(argv)) };
export default command;
