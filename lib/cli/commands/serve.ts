import type { Command } from '../command';
import { getFlag, getNumber, getString, MODEL_FILE_OPTIONS, parseArgs, takeFlags, UsageError, withUsage } from '../args';
import { DoveServer, SERVE_DEFAULTS } from '../../serve/server';
import { Tokenizer } from '../../model/tokenizer';

const SPECS = {
  ...MODEL_FILE_OPTIONS,
  host: { type: 'string' },
  port: { type: 'int', min: 0, max: 65535 },
  run: { type: 'string' },
  'max-batch': { type: 'int', min: 1, max: 1024 },
  'max-queue': { type: 'int', min: 1, max: 1000000 },
  'timeout-ms': { type: 'int', min: 1, max: 3600000 },
  'body-limit-mb': { type: 'int', min: 1, max: 1024 },
  'max-input-pixels': { type: 'int', min: 1, max: 0x3fff * 0x3fff },
} as const;

const help = `Usage: dove serve [--model m.pt] [--port 8080] [--host 127.0.0.1] [--run OUT ...] [options]

Starts one HTTP server with:
  /                 the explorer: drop images, see every token length, p(EOS) per slot, PSNR/SSIM
  /runs             the run monitor for each --run folder of \`dove train\` (live loss, grids, checkpoints)
  POST /v1/tokenize     image bytes (image/*, application/octet-stream) or multipart -> tokens as JSON,
                        raw float32 (Accept: application/octet-stream) or safetensors (Accept: ${'application/x-safetensors'});
                        query: mode, maxTokens, threshold, question, fit
  POST /v1/reconstruct  tokens (JSON, raw float32 or safetensors; ?length=L) -> PNG
  POST /v1/explore      image -> every length's reconstruction, p(EOS), PSNR/SSIM (what the explorer uses)
  GET  /v1/model        the model's metadata and the server's limits
  GET  /healthz         liveness and queue state
Errors are JSON {code, message} with 400/404/405/406/413/415/422/503 (+ Retry-After) or 500.

Options:
  -m, --model <file.pt>       DOVE/Q-DOVE export (default: the embedded model)
      --device <dev>          cpu (default), cuda, cuda:N
      --trust-model           load a model whose TorchScript touches files or the process (docs/MODEL_FORMAT.md)
      --host <addr>           address to bind (default 127.0.0.1: this machine only)
      --port <n>              default 8080; 0 picks a free port
      --run <dir>             a \`dove train --out\` folder for the run monitor (repeatable)
      --max-batch <n>         images per forward when requests wait (default ${SERVE_DEFAULTS.maxBatch}; 1 = no batching)
      --max-queue <n>         requests allowed to wait; more get 503 + Retry-After (default ${SERVE_DEFAULTS.maxQueue})
      --timeout-ms <n>        per request, from the moment it queues (default ${SERVE_DEFAULTS.timeoutMs})
      --body-limit-mb <n>     largest request body (default ${SERVE_DEFAULTS.bodyLimit / 1024 / 1024})
      --max-input-pixels <n>  refuse images whose header claims more pixels (default ${SERVE_DEFAULTS.maxInputPixels})

Examples:
  dove serve                                  # then open http://127.0.0.1:8080/
  dove serve --run runs/a --run runs/b        # the run monitor at http://127.0.0.1:8080/runs
  curl -H 'content-type: image/jpeg' --data-binary @photo.jpg http://127.0.0.1:8080/v1/tokenize
`;

async function run(argv: string[]): Promise<number> {
  return withUsage('serve', async () => {
    // --run may repeat, which the option parser does not allow: those pairs come out first.
    const { values: runs, rest } = takeFlags(argv, ['--run']);
    const args = parseArgs(rest, SPECS);
    if (args.positionals.length > 0) throw new UsageError(`Unexpected argument ${args.positionals[0]}`);
    const host = getString(args, 'host') ?? '127.0.0.1';
    const port = getNumber(args, 'port') ?? 8080;
    const tokenizer = await Tokenizer.load(getString(args, 'model'), { device: getString(args, 'device') ?? 'cpu', trustModel: getFlag(args, 'trust-model') });
    let server: DoveServer;
    let url: string;
    try {
      server = await DoveServer.create({
        tokenizer,
        runs,
        maxBatch: getNumber(args, 'max-batch'),
        maxQueue: getNumber(args, 'max-queue'),
        timeoutMs: getNumber(args, 'timeout-ms'),
        bodyLimit: (getNumber(args, 'body-limit-mb') ?? SERVE_DEFAULTS.bodyLimit / 1024 / 1024) * 1024 * 1024,
        maxInputPixels: getNumber(args, 'max-input-pixels'),
      });
      url = await server.listen(host, port);
    } catch (error) {
      tokenizer.dispose();
      throw error;
    }
    const m = tokenizer.model;
    process.stdout.write(`dove serve: ${url}/ (explorer), ${url}/runs (${runs.length} run${runs.length === 1 ? '' : 's'}), API ${url}/v1/ on ${m.path} (${m.imageSize}px, up to ${m.maxTokens} tokens of ${m.tokenDim})\n`);
    if (host !== '127.0.0.1' && host !== '::1' && host !== 'localhost') {
      process.stderr.write(`dove serve: listening on ${host}: other machines can reach this server; it has no authentication\n`);
    }
    await new Promise<void>((resolve) => {
      const stop = (): void => {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        resolve();
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    });
    await server.close();
    tokenizer.dispose();
    return 0;
  });
}

const command: Command = { name: 'serve', summary: 'explorer, run monitor and HTTP tokenization API on one local server', help, specs: SPECS, run };
export default command;
