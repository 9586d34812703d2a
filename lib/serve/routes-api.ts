// /v1/* and /healthz: tokenize (JSON, raw float32 or safetensors by Accept), reconstruct (PNG),
// explore (the explorer page's one request per image), model metadata, health.
import { basename } from 'node:path';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import Negotiator from 'negotiator';
import { loadImage } from '../io/images';
import { serializeSafetensors } from '../io/safetensors';
import { httpError } from './http-errors';
import type { EncodedImage, InferenceService } from './inference';
import type { ExploreReply, ModelInfo } from './wire';
import { EXPLORE_PARAMS, imageBody, imageOptions, TOKENIZE_PARAMS, TOKENS_SAFETENSORS, tokensBody, type ImageRequestOptions } from './requests';

export type ApiLimits = ModelInfo['limits'];

const TOKEN_TYPES = ['application/json', 'application/octet-stream', TOKENS_SAFETENSORS] as const;

/** The best of `offered` for the request's Accept header (absent = the first), or NOT_ACCEPTABLE. */
function negotiate(request: FastifyRequest, offered: readonly string[]): string {
  const type = new Negotiator({ headers: request.headers }).mediaType(offered);
  if (type === undefined) throw httpError(`Expected an Accept header that allows one of ${offered.join(', ')} but received ${request.headers.accept ?? ''}`, 'NOT_ACCEPTABLE');
  return type;
}

/** Aborts when the client goes away before its reply is written (its queued work is then dropped). */
function clientGone(reply: FastifyReply): AbortSignal {
  const controller = new AbortController();
  reply.raw.once('close', () => {
    if (!reply.raw.writableFinished) controller.abort();
  });
  return controller.signal;
}

function dataUrl(png: Buffer): string {
  return `data:image/png;base64,${png.toString('base64')}`;
}

function sendTokens(reply: FastifyReply, type: string, encoded: EncodedImage, modelName: string): FastifyReply {
  const { length, dim, slots } = encoded;
  const tokens = encoded.tokens.subarray(0, length * dim);
  reply.header('x-dove-length', String(length)).header('x-dove-dim', String(dim)).header('x-dove-slots', String(slots));
  if (type === 'application/octet-stream') {
    return reply.type(type).send(Buffer.from(tokens.buffer, tokens.byteOffset, tokens.byteLength));
  }
  if (type === TOKENS_SAFETENSORS) {
    // The layout `dove tokenize` writes for one image, so the same Python reader takes both.
    const bytes = serializeSafetensors(
      {
        tokens: { data: tokens, shape: [1, length, dim] },
        lengths: { data: BigInt64Array.of(BigInt(length)), shape: [1] },
        eos_probabilities: { data: encoded.eosProbabilities, shape: [1, slots] },
      },
      { model: modelName },
    );
    return reply.type(type).header('content-disposition', 'attachment; filename="tokens.safetensors"').send(bytes);
  }
  const rows = Array.from({ length }, (_, i) => Array.from(tokens.subarray(i * dim, (i + 1) * dim)));
  return reply.type('application/json').send({ length, dim, slots, eosProbabilities: Array.from(encoded.eosProbabilities), tokens: rows });
}

export function registerApiRoutes(app: FastifyInstance, service: InferenceService, limits: ApiLimits): void {
  const model = service.model;
  const modelName = basename(model.path);

  const pixelsOf = async (request: FastifyRequest, options: ImageRequestOptions): Promise<Uint8Array> => {
    service.checkOptions(options);
    // Under overload, refuse before the costly part (decoding the image), not after it.
    service.queue.checkRoom();
    const bytes = await imageBody(request);
    return loadImage(bytes, { size: model.imageSize, fit: options.fit, maxInputPixels: limits.maxInputPixels });
  };

  app.get('/healthz', async () => ({ status: 'ok', queue: service.queue.stats() }));

  app.get('/v1/model', async (): Promise<ModelInfo> => ({
    name: modelName,
    variant: model.meta.variant,
    configName: model.meta.configName,
    imageSize: model.imageSize,
    maxTokens: model.maxTokens,
    tokenDim: model.tokenDim,
    eosThreshold: model.meta.eosThreshold,
    device: model.device,
    limits,
  }));

  app.post('/v1/tokenize', async (request, reply) => {
    const type = negotiate(request, TOKEN_TYPES);
    const options = imageOptions(request, TOKENIZE_PARAMS);
    const pixels = await pixelsOf(request, options);
    const encoded = await service.encode(pixels, options, clientGone(reply));
    return sendTokens(reply, type, encoded, modelName);
  });

  app.post('/v1/reconstruct', async (request, reply) => {
    negotiate(request, ['image/png']);
    const tokens = tokensBody(request, model.tokenDim);
    const [image] = await service.decode([tokens], clientGone(reply));
    return reply.type('image/png').header('x-dove-length', String(tokens.length)).send(await image!.toPng());
  });

  app.post('/v1/explore', async (request, reply): Promise<ExploreReply> => {
    negotiate(request, ['application/json']);
    const options = imageOptions(request, EXPLORE_PARAMS);
    const pixels = await pixelsOf(request, options);
    const result = await service.explore(pixels, { threshold: options.threshold, query: options.query }, clientGone(reply));
    return { ...result, input: dataUrl(result.input), sprite: dataUrl(result.sprite), grid: dataUrl(result.grid) };
  });
}
