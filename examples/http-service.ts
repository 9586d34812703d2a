// An HTTP service that turns images into DOVE tokens, on node:http alone.
//
//   npx tsc -p tsconfig.json && node dist/examples/http-service.js [--port 8080] [--model file.pt]
//   curl --data-binary @assets/sample.jpg 'http://127.0.0.1:8080/tokens?mode=capped&maxTokens=32'
//
// POST /tokens   body: one image (any format sharp reads). Query: mode=auto|fixed|capped,
//                maxTokens=K, threshold=p, question=... (Q-DOVE models only), format=json|binary.
//                json (default): {length, dim, eosProbabilities, tokens: number[][]}.
//                binary: the raw float32 little-endian tokens (length × dim), with X-Dove-Length /
//                X-Dove-Dim headers: no JSON number formatting for callers that want speed.
// GET  /model    the model's size, budget, token dim and variant.
// GET  /healthz  "ok".
// Errors: a DoveError (bad image, bad option) is the caller's fault: 400 with {error, code}. A body
// over the size limit is 413. Anything else is 500. In your own project import from 'dove-encoder'.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { DoveError, Tokenizer, type LengthMode, type TokenizeOptions } from '../lib/index';

const MAX_BODY_BYTES = 32 * 1024 * 1024;

function option(argv: readonly string[], name: string): string | undefined {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? '0');
  if (declared > MAX_BODY_BYTES) throw new HttpError(413, `Expected at most ${MAX_BODY_BYTES} bytes but the request declares ${declared}`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buf = chunk as Buffer;
    size += buf.length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, `Expected at most ${MAX_BODY_BYTES} bytes of image`);
    chunks.push(buf);
  }
  if (size === 0) throw new HttpError(400, 'Expected an image in the request body but it is empty');
  return Buffer.concat(chunks);
}

/** Query parameters -> TokenizeOptions; the Tokenizer validates the values and names bad ones. */
function tokenizeOptions(params: URLSearchParams): TokenizeOptions {
  const options: TokenizeOptions = {};
  const mode = params.get('mode');
  if (mode !== null) options.mode = mode as LengthMode;
  const maxTokens = params.get('maxTokens');
  if (maxTokens !== null) options.maxTokens = Number(maxTokens);
  const threshold = params.get('threshold');
  if (threshold !== null) options.threshold = Number(threshold);
  const question = params.get('question');
  if (question !== null) options.query = question;
  return options;
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

async function handle(tokenizer: Tokenizer, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://localhost');
  if (req.method === 'GET' && url.pathname === '/healthz') {
    res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    return;
  }
  if (req.method === 'GET' && url.pathname === '/model') {
    const m = tokenizer.model;
    send(res, 200, { imageSize: m.imageSize, maxTokens: m.maxTokens, tokenDim: m.tokenDim, variant: m.meta.variant, eosThreshold: m.meta.eosThreshold });
    return;
  }
  if (url.pathname !== '/tokens') throw new HttpError(404, `No route ${url.pathname}; use POST /tokens, GET /model or GET /healthz`);
  if (req.method !== 'POST') throw new HttpError(405, `Expected POST for /tokens but received ${req.method ?? '?'}`);
  const format = url.searchParams.get('format') ?? 'json';
  if (format !== 'json' && format !== 'binary') throw new HttpError(400, `Expected json or binary for format but received ${format}`);
  const image = await readBody(req);
  const result = await tokenizer.tokenize(image, tokenizeOptions(url.searchParams));
  if (format === 'binary') {
    // A view over the tokens' memory: Buffer.from(arrayBuffer, offset, length) copies nothing.
    const bytes = Buffer.from(result.tokens.buffer, result.tokens.byteOffset, result.tokens.byteLength);
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'x-dove-length': String(result.length), 'x-dove-dim': String(result.dim) });
    res.end(bytes);
    return;
  }
  const tokens: number[][] = [];
  for (let i = 0; i < result.length; i++) tokens.push(Array.from(result.tokens.subarray(i * result.dim, (i + 1) * result.dim)));
  send(res, 200, { length: result.length, dim: result.dim, eosProbabilities: Array.from(result.eosProbabilities), tokens });
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const port = Number(option(argv, 'port') ?? process.env.PORT ?? '8080');
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`Expected integer between 0 and 65535 for --port but received ${String(port)}`);
  const tokenizer = await Tokenizer.load(option(argv, 'model'));
  const server = createServer((req, res) => {
    handle(tokenizer, req, res).catch((error: unknown) => {
      if (error instanceof HttpError) send(res, error.status, { error: error.message });
      else if (error instanceof DoveError) send(res, 400, { error: error.message, code: error.code });
      else send(res, 500, { error: error instanceof Error ? error.message : String(error) });
    });
  });
  const close = (): void => {
    server.close(() => tokenizer.dispose());
  };
  process.once('SIGINT', close);
  process.once('SIGTERM', close);
  server.listen(port, '127.0.0.1', () => {
    const address = server.address();
    const actual = typeof address === 'object' && address !== null ? address.port : port;
    process.stdout.write(`dove http service on http://127.0.0.1:${actual} (POST /tokens, GET /model, GET /healthz)\n`);
  });
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
