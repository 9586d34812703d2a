import type { Command } from '../command';
import { asUsage, checkIntRange, getFlag, getIntList, getNumber, getString, MODEL_OPTIONS, MODEL_OPTIONS_HELP, parseArgs, UsageError, withUsage } from '../args';
import { sweepGrid } from '../../render/grid';
import { writeReport } from '../../eval/report';
import { defaultLengths } from '../../model/model-file';
import { Reconstructor } from '../../model/reconstructor';
import type { ResizeFit } from '../../io/images';

const SPECS = {
  ...MODEL_OPTIONS,
  lengths: { type: 'intList' },
  question: { type: 'string', alias: 'q' },
  output: { type: 'string', alias: 'o' },
} as const;

const help = `Usage: dove reconstruct <image> -o grid.png [options]

Reconstructs one image from several token lengths and writes one PNG: the input (as the model sees
it), one labelled column per length, and the length the EOS head chose.

Options:
  -o, --output <grid.png>   where to write the grid (required)
      --lengths <a,b,...>   token lengths, each 1..maxTokens (default: powers of two up to maxTokens)
  -q, --question <text>     Q-DOVE query (Q-DOVE models only)
${MODEL_OPTIONS_HELP}

Examples:
  dove reconstruct photo.jpg -o grid.png
  dove reconstruct photo.jpg --lengths 8,16,32,64 --model dove-70m.pt -o grid.png
  dove reconstruct street.png --model qdove.pt --question "what colour is the car?" -o grid.png
`;

async function run(argv: string[]): Promise<number> {
  return withUsage('reconstruct', async () => {
    const args = parseArgs(argv, SPECS);
    if (args.positionals.length !== 1) throw new UsageError(`Expected exactly one image but received ${args.positionals.length}`);
    const image = args.positionals[0]!;
    const output = getString(args, 'output');
    if (output === undefined) throw new UsageError('Missing -o/--output <grid.png>');
    if (!output.toLowerCase().endsWith('.png')) throw new UsageError(`Expected a .png path for --output but received ${output}`);
    const question = getString(args, 'question');
    const reconstructor = await Reconstructor.load(getString(args, 'model'), { device: getString(args, 'device') ?? 'cpu', trustModel: getFlag(args, 'trust-model') });
    try {
      const max = reconstructor.model.maxTokens;
      const lengths = getIntList(args, 'lengths') ?? defaultLengths(max);
      checkIntRange(lengths, '--lengths', 1, max);
      if (question !== undefined) asUsage(() => reconstructor.model.requireQDove('--question'));
      const result = await reconstructor.sweep(image, lengths, {
        query: question,
        threshold: getNumber(args, 'threshold'),
        fit: getString(args, 'fit') as ResizeFit | undefined,
        maxInputPixels: getNumber(args, 'max-input-pixels'),
      });
      const columns = result.reconstructions.map((r) => ({ length: r.length, pixels: r.image.data }));
      const png = await sweepGrid(result.input.data, columns, { length: result.auto.length, pixels: result.auto.image.data }, reconstructor.imageSize);
      await writeReport(output, png);
      process.stdout.write(`${output}: input + lengths ${lengths.join(',')} + EOS length ${result.auto.length} (of ${max})\n`);
      return 0;
    } finally {
      reconstructor.dispose();
    }
  });
}

const command: Command = { name: 'reconstruct', summary: 'reconstruct one image at several token lengths into a labelled grid PNG', help, specs: SPECS, run };
export default command;
