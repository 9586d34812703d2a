// Ranks that disagree (issue 15, row 7): two nodes started from different models, or collectives
// whose tensors differ between ranks, must end with DISTRIBUTED_ERROR naming the first difference on
// every rank, not SIGABRT inside Gloo (gloo::EnforceNotMet).
import test from 'ava';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { CLI, fixturesReady, IMAGES, MINI, ROOT, tempDir } from './helpers';

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function run(args: string[], env: NodeJS.ProcessEnv): Promise<Exit> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 240_000);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

let nextPort = 21000 + (process.pid % 9000);
const port = (): number => (nextPort += 7);

test('collectives whose tensors differ between ranks reject with DISTRIBUTED_ERROR on both ranks', async (t) => {
  const masterPort = port();
  const rank = (r: number): Promise<Exit> => {
    const script = `
const b = require(${JSON.stringify(join(ROOT, 'dist', 'lib', 'core', 'native.js'))}).binding();
const report = (v) => process.stdout.write('RESULT ' + JSON.stringify(v) + '\\n');
const attempt = async (p) => { try { await p; return 'ok'; } catch (e) { return e.code + ': ' + e.message; } };
(async () => {
  const group = await b.initProcessGroup({ rank: ${r}, worldSize: 2, masterAddr: '127.0.0.1', masterPort: ${masterPort}, backend: 'gloo', timeoutMs: 20000 });
  const t = (n, dtype = 'float32') => b.zeros([n], dtype, 'cpu');
  const out = {
    sizes: await attempt(group.broadcast(t(${r} === 0 ? 4 : 5), 0)),
    dtypes: await attempt(group.allReduce(t(4, ${r} === 0 ? 'float32' : 'float64'), 'sum')),
    roots: await attempt(group.broadcast(t(4), ${r})),
    same: await attempt(group.allReduce(t(4), 'sum')),
    params: await attempt(group.agree('parameters', ${r} === 0 ? 'a.weight float32 [2, 3]\\nb.bias float32 [3]' : 'a.weight float32 [2, 4]\\nb.bias float32 [3]')),
    after: await attempt(group.barrier()),
  };
  report(out);
  group.dispose();
})();
`;
    return run(['-e', script], {});
  };
  const [a, b] = await Promise.all([rank(0), rank(1)]);
  for (const [name, r] of [['rank 0', a], ['rank 1', b]] as const) {
    t.is(r.signal, null, `${name}: ${r.stderr}`);
    t.is(r.code, 0, `${name}: ${r.stderr}`);
    const line = r.stdout.split('\n').find((l) => l.startsWith('RESULT '));
    const out = JSON.parse(line!.slice(7)) as Record<string, string>;
    t.regex(out.sizes!, /^DISTRIBUTED_ERROR: broadcast: rank 1 differs from rank 0: it has 'broadcast from rank 0 of float32 \[5\] on cpu' where rank 0 has 'broadcast from rank 0 of float32 \[4\] on cpu'/, name);
    t.regex(out.dtypes!, /^DISTRIBUTED_ERROR: allReduce: rank 1 differs .*float64 \[4\].*float32 \[4\]/, name);
    t.regex(out.roots!, /^DISTRIBUTED_ERROR: broadcast: rank 1 differs .*from rank 1 .*from rank 0/, name);
    t.is(out.same, 'ok', name);
    t.regex(out.params!, /^DISTRIBUTED_ERROR: parameters: rank 1 differs from rank 0: it has 'a\.weight float32 \[2, 4\]' where rank 0 has 'a\.weight float32 \[2, 3\]' \(line 1\)/, name);
    t.is(out.after, 'ok', `${name}: the group still works after a refused collective`);
  }
});

test('two nodes started from different models stop with DISTRIBUTED_ERROR naming the first parameter that differs', async (t) => {
  if (!fixturesReady()) return t.fail('training fixtures missing: run scripts/setup');
  const { dir, cleanup } = tempDir('mismatch');
  t.teardown(cleanup);
  const masterPort = port();
  const other = join(ROOT, 'test', 'fixtures', 'generated', 'tiny-dove.pt');
  const node = (r: number, model: string): Promise<Exit> =>
    run([CLI, 'train', '--init-from', model, '--images', IMAGES, '--out', join(dir, `out${r}`), '--epochs', '1', '--batch-size', '2', '--no-plots', '--threads', '1'], {
      RANK: String(r),
      WORLD_SIZE: '2',
      MASTER_ADDR: '127.0.0.1',
      MASTER_PORT: String(masterPort),
      DOVE_DIST_TIMEOUT_MS: '30000',
    });
  const [a, b] = await Promise.all([node(0, MINI), node(1, other)]);
  for (const [name, r] of [['node 0', a], ['node 1', b]] as const) {
    t.is(r.signal, null, `${name} died by signal: ${r.stderr}`);
    t.is(r.code, 1, `${name}: ${r.stderr}`);
    t.regex(r.stderr, /dove: parameters: rank 1 differs from rank 0: it has '.*' where rank 0 has '.*' \(line \d+\).*\[DISTRIBUTED_ERROR\]/, name);
  }
});
