// `dove serve`'s server: fastify with the explorer and run-monitor pages, the /v1 API, one batching
// queue in front of the model, and limits on everything a client controls (body size, pixels,
// queue length, time). Errors leave as JSON { code, message } (http-errors.ts).
import fastify, { type FastifyInstance } from 'fastify';
import multipart from '@fastify/multipart';
import { Reconstructor } from '../model/reconstructor';
import type { Tokenizer } from '../model/tokenizer';
import { BatchQueue } from './batch-queue';
import { errorReply, httpError } from './http-errors';
import { InferenceService } from './inference';
import { TOKENS_SAFETENSORS } from './requests';
import { registerApiRoutes, type ApiLimits } from './routes-api';
import { registerRunRoutes } from './routes-runs';
import { registerWebRoutes } from './routes-web';
import { openRunFolders } from './runs';
import { loadWebAssets } from './web-assets';
import { integerInRange } from '../base/validate';

export interface DoveServerOptions {
  /** The loaded model; the server does not dispose it. */
  tokenizer: Tokenizer;
  /** `dove train --out` folders for the run monitor. */
  runs?: readonly string[];
  /** Images per forward (1 = no batching). Default 16. */
  maxBatch?: number;
  /** Requests allowed to wait for the model; more get 503 + Retry-After. Default 64. */
  maxQueue?: number;
  /** Per request, from the moment it queues; also the time allowed to receive a request (at least 5 s). Default 30000. */
  timeoutMs?: number;
  /** Request body limit in bytes. Default 16 MiB. */
  bodyLimit?: number;
  /** Decompression-bomb guard for uploaded images (header-declared pixels). Default 50 MP. */
  maxInputPixels?: number;
  /** Where internal errors are written (stderr by default). */
  log?: (line: string) => void;
}

export const SERVE_DEFAULTS = {
  maxBatch: 16,
  maxQueue: 64,
  timeoutMs: 30_000,
  bodyLimit: 16 * 1024 * 1024,
  maxInputPixels: 50_000_000,
} as const;

export function resolveLimits(options: Omit<DoveServerOptions, 'tokenizer'>): ApiLimits {
  return {
    maxBatch: integerInRange(options.maxBatch ?? SERVE_DEFAULTS.maxBatch, 'maxBatch', 1, 1024),
    maxQueue: integerInRange(options.maxQueue ?? SERVE_DEFAULTS.maxQueue, 'maxQueue', 1, 1_000_000),
    timeoutMs: integerInRange(options.timeoutMs ?? SERVE_DEFAULTS.timeoutMs, 'timeoutMs', 1, 3_600_000),
    bodyLimit: integerInRange(options.bodyLimit ?? SERVE_DEFAULTS.bodyLimit, 'bodyLimit', 1, 1 << 30),
    maxInputPixels: integerInRange(options.maxInputPixels ?? SERVE_DEFAULTS.maxInputPixels, 'maxInputPixels', 1, 0x3fff * 0x3fff),
  };
}

export class DoveServer {
  private constructor(
    readonly app: FastifyInstance,
    readonly service: InferenceService,
    readonly limits: ApiLimits,
  ) {}

  static async create(options: DoveServerOptions): Promise<DoveServer> {
    const limits = resolveLimits(options);
    const runs = openRunFolders(options.runs ?? []);
    const assets = loadWebAssets();
    const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
    const queue = new BatchQueue({ maxBatchRows: limits.maxBatch, maxWaiting: limits.maxQueue, timeoutMs: limits.timeoutMs });
    const service = new InferenceService(options.tokenizer, new Reconstructor(options.tokenizer.model), queue);
    // requestTimeout bounds receiving a request (slow clients); a tiny --timeout-ms must not cut uploads short.
    const app = fastify({ bodyLimit: limits.bodyLimit, requestTimeout: Math.max(limits.timeoutMs, 5000), logger: false, return503OnClosing: true });

    app.removeContentTypeParser('text/plain');
    const raw = (_request: unknown, body: Buffer, done: (error: Error | null, body?: Buffer) => void): void => done(null, body);
    app.addContentTypeParser(['application/octet-stream', TOKENS_SAFETENSORS], { parseAs: 'buffer' }, raw);
    app.addContentTypeParser(/^image\/[a-z0-9.+-]+$/i, { parseAs: 'buffer' }, raw);
    await app.register(multipart, { limits: { fileSize: limits.bodyLimit, files: 1, fields: 0, parts: 1 } });

    app.addHook('onSend', async (_request, reply) => {
      reply.header('x-content-type-options', 'nosniff').header('referrer-policy', 'no-referrer');
      if (!reply.hasHeader('cache-control')) reply.header('cache-control', 'no-store');
    });
    app.setErrorHandler(async (error, request, reply) => {
      const out = errorReply(error);
      if (out.internal) log(`dove serve: ${request.method} ${request.url}: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
      return reply.code(out.status).headers(out.headers).type('application/json').send(out.body);
    });
    app.setNotFoundHandler(async (request, reply) => {
      const path = request.url.split('?')[0]!;
      const allowed = (['GET', 'POST'] as const).filter((m) => m !== request.method && app.hasRoute({ method: m, url: path }));
      const out = allowed.length > 0
        ? errorReply(httpError(`Expected ${allowed.join(' or ')} for ${path} but received ${request.method}`, 'METHOD_NOT_ALLOWED'))
        : errorReply(httpError(`No route ${request.method} ${path}; the API is POST /v1/tokenize, POST /v1/reconstruct, POST /v1/explore, GET /v1/model, GET /healthz`, 'NOT_FOUND'));
      if (allowed.length > 0) reply.header('allow', allowed.join(', '));
      return reply.code(out.status).type('application/json').send(out.body);
    });

    registerWebRoutes(app, assets);
    registerApiRoutes(app, service, limits);
    registerRunRoutes(app, runs);
    await app.ready();
    return new DoveServer(app, service, limits);
  }

  /** Starts listening; returns the base URL (port 0 picks a free port). */
  async listen(host: string, port: number): Promise<string> {
    await this.app.listen({ host, port });
    const address = this.app.server.address();
    const actual = typeof address === 'object' && address !== null ? address.port : port;
    const shown = host.includes(':') ? `[${host}]` : host;
    return `http://${shown}:${actual}`;
  }

  /** Stops accepting, fails queued requests with 503, waits for the running forward and open replies. */
  async close(): Promise<void> {
    await Promise.all([this.service.queue.close(), this.app.close()]);
    this.service.reconstructor.dispose();
  }
}
