// The two pages and their bundles, from memory (web-assets.ts). The pages load nothing from
// elsewhere, and the Content-Security-Policy says so to the browser.
import type { FastifyInstance } from 'fastify';
import { httpError } from './http-errors';
import type { WebAsset } from './web-assets';

export const PAGE_POLICY = "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

export function registerWebRoutes(app: FastifyInstance, assets: ReadonlyMap<string, WebAsset>): void {
  const page = (name: string): WebAsset => {
    const asset = assets.get(name);
    if (asset === undefined) throw httpError(`The front end lacks ${name}; rebuild it with npm run build:web`, 'NOT_FOUND');
    return asset;
  };
  app.get('/', async (_request, reply) => reply.type(page('explorer.html').type).header('content-security-policy', PAGE_POLICY).send(page('explorer.html').body));
  app.get('/runs', async (_request, reply) => reply.type(page('runs.html').type).header('content-security-policy', PAGE_POLICY).send(page('runs.html').body));
  app.get<{ Params: { name: string } }>('/assets/:name', async (request, reply) => {
    const asset = assets.get(request.params.name);
    if (asset === undefined || request.params.name.endsWith('.html')) throw httpError(`No asset ${request.params.name}`, 'NOT_FOUND');
    return reply.type(asset.type).header('cache-control', 'no-cache').send(asset.body);
  });
}
