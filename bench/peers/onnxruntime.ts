// Section child: onnxruntime-node (CPU execution provider) on the exporter's fixed-budget ONNX graphs
// (<prefix>.encode.onnx: images -> tokens, eos; <prefix>.decode.onnx: tokens[, lengths] -> images).
// Inputs are fed by the graphs' own input names, in the order the exporter declares them.
import { readFileSync, writeFileSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
import { seededFloats } from '../lib/addon';
import { sectionArgs } from '../lib/child';
import { errorText, toRow, type CaseSpec, type Op, type Plan, type SectionOutput } from '../lib/schema';
import { timeLoop } from '../lib/timing';

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

async function main(): Promise<void> {
  const args = sectionArgs(process.argv);
  const plan = JSON.parse(readFileSync(args.plan, 'utf8')) as Plan;
  const out: SectionOutput = {
    runtime: 'onnxruntime-node',
    versions: { 'onnxruntime-node': ort.env.versions.node ?? 'unknown', node: process.version },
    threads: plan.threads,
    rows: [],
    errors: [],
  };
  const sessions = new Map<string, [ort.InferenceSession, ort.InferenceSession]>();
  for (const c of plan.cases) {
    for (const op of c.ops) {
      try {
        if (c.model.onnxEncode === null || c.model.onnxDecode === null) {
          throw new Error(`no ONNX export for ${c.model.config} (the exporter's --onnx did not write it)`);
        }
        let pair = sessions.get(c.model.config);
        if (pair === undefined) {
          pair = [await session(c.model.onnxEncode, plan.threads), await session(c.model.onnxDecode, plan.threads)];
          sessions.set(c.model.config, pair);
        }
        const stats = await timeLoop(c.loop, bodyFor(pair[0], pair[1], c, op, plan.seed));
        const row = toRow('onnxruntime-node', c, op, stats);
        out.rows.push(row);
        console.log(`${c.model.config} b${c.batch} ${op}: ${row.medianMs.toFixed(1)} ms, ${row.imagesPerSec.toFixed(2)} img/s`);
      } catch (e) {
        out.errors.push({ runtime: 'onnxruntime-node', config: c.model.config, batch: c.batch, op, error: errorText(e) });
        console.error(`${c.model.config} b${c.batch} ${op}: ${errorText(e)}`);
      }
      writeFileSync(args.out, JSON.stringify(out, null, 2));
    }
  }
  for (const [e, d] of sessions.values()) {
    await e.release();
    await d.release();
  }
  writeFileSync(args.out, JSON.stringify(out, null, 2));
}

main().catch((e: unknown) => {
  console.error(errorText(e));
  process.exitCode = 1;
});
