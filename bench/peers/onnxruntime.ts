// Runtime worker (bench/lib/worker.ts): onnxruntime-node (CPU execution provider) on the exporter's fixed-budget ONNX graphs
// (<prefix>.encode.onnx: images -> tokens, eos; <prefix>.decode.onnx: tokens[, lengths] -> images).
// Inputs are fed by the graphs' own input names, in the order the exporter declares them.
import * as ort from 'onnxruntime-node';
import { seededFloats } from '../lib/addon';
import { errorText, type CaseSpec, type Op } from '../lib/schema';
import { serveWorker, type RuntimeWorker } from '../lib/worker';

async function session(path: string, threads: number): Promise<ort.InferenceSession> {
  // Same parallelism as libtorch's intra-op pool; one graph at a time, like the other runtimes.
  return ort.InferenceSession.create(path, {
    executionProviders: ['cpu'],
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  });
}

function feeds(s: ort.InferenceSession, values: ort.Tensor[]): Record<string, ort.Tensor> {
  const out: Record<string, ort.Tensor> = {};
  s.inputNames.forEach((name, i) => {
    if (i >= values.length) throw new Error(`ONNX graph wants input '${name}' (#${i}) that the benchmark has no value for`);
    out[name] = values[i];
  });
  return out;
}

function bodyFor(
  enc: ort.InferenceSession,
  dec: ort.InferenceSession,
  c: CaseSpec,
  op: Op,
  seed: number,
): () => Promise<void> {
  const { imageSize: s, maxTokens: k, tokenDim: d } = c.model;
  const b = c.batch;
  const images = new ort.Tensor('float32', seededFloats(b * 3 * s * s, seed), [b, 3, s, s]);
  const tokens = new ort.Tensor('float32', seededFloats(b * k * d, seed + 1, 2, -1), [b, k, d]);
  const lengths = new ort.Tensor('int64', new BigInt64Array(b).fill(BigInt(k)), [b]);
  const encFeeds = feeds(enc, [images]);
  const decFeeds = feeds(dec, [tokens, lengths].slice(0, dec.inputNames.length));
  if (op === 'encode') return async () => void (await enc.run(encFeeds));
  if (op === 'decode') return async () => void (await dec.run(decFeeds));
  if (op === 'encode+decode') {
    return async () => {
      const r = await enc.run(encFeeds);
      const t = r[enc.outputNames[0]];
      await dec.run(feeds(dec, [t, lengths].slice(0, dec.inputNames.length)));
    };
  }
  throw new Error('onnxruntime-node runs inference only (no training graph is exported)');
}

function worker(): RuntimeWorker {
  const threads = Number(process.env.OMP_NUM_THREADS ?? '2');
  const sessions = new Map<string, [ort.InferenceSession, ort.InferenceSession]>();
  return {
    info: () => ({ versions: { 'onnxruntime-node': ort.env.versions.node ?? 'unknown', node: process.version }, threads }),
    async prepare(c, op) {
      if (c.model.onnxEncode === null || c.model.onnxDecode === null) {
        throw new Error(`no ONNX export for ${c.model.config} (the exporter's --onnx did not write it)`);
      }
      let pair = sessions.get(c.model.config);
      if (pair === undefined) {
        pair = [await session(c.model.onnxEncode, threads), await session(c.model.onnxDecode, threads)];
        sessions.set(c.model.config, pair);
      }
      return { body: bodyFor(pair[0], pair[1], c, op, 0), done: () => undefined };
    },
    async close() {
      for (const [e, d] of sessions.values()) {
        await e.release();
        await d.release();
      }
    },
  };
}

serveWorker(worker()).catch((e: unknown) => {
  console.error(errorText(e));
  process.exitCode = 1;
});
