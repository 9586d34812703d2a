// The run monitor's data: the runs given with --run, each one's summary, its log from a byte offset
// (the page polls it), and files from inside the run folder only (resolveRunFile).
import { promises as fs } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { httpError } from './http-errors';
import { numberParam, queryParams } from './requests';
import { findRun, readLog, resolveRunFile, runFileType, summarizeRun, type RunFolder } from './runs';

export function registerRunRoutes(app: FastifyInstance, runs: readonly RunFolder[]): void {
  app.get('/v1/runs', async (request) => {
    queryParams(request, []);
    return { runs: runs.map((r) => ({ id: r.id, name: r.name })) };
  });

  app.get<{ Params: { id: string } }>('/v1/runs/:id', async (request) => summarizeRun(findRun(runs, request.params.id)));

  app.get<{ Params: { id: string } }>('/v1/runs/:id/log', async (request) => {
    const run = findRun(runs, request.params.id);
    const offset = numberParam(queryParams(request, ['offset']), 'offset') ?? 0;
    return readLog(run, offset);
  });

  app.get<{ Params: { id: string; '*': string } }>('/v1/runs/:id/files/*', async (request, reply) => {
    const run = findRun(runs, request.params.id);
    const path = await resolveRunFile(run, request.params['*']);
    // Opened here, so a file the trainer removed in the meantime (an old checkpoint) is a 404, not a stream error.
    const handle = await fs.open(path, 'r').catch(() => {
      throw httpError(`No file ${request.params['*']} in run ${run.name}`, 'NOT_FOUND');
    });
    const type = runFileType(path);
    if (type === 'application/octet-stream') reply.header('content-disposition', 'attachment');
    return reply.type(type).header('cache-control', 'no-cache').send(handle.createReadStream());
  });
}
