#!/usr/bin/env bash
# Boundary benchmark: no-op call overhead Node vs Python on the same TorchScript file and libtorch,
# and the cost of passing a 256 MiB tensor in and out. Needs `bash scripts/setup` first (addon,
# dist/, test fixtures). Usage: bash bench/boundary/run.sh [--calls N] [--mib M]
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
cd "$DOVE_ROOT"
MODEL=test/fixtures/generated/core/core.pt
[ -f "$MODEL" ] || die "$MODEL is missing: run bash scripts/setup"
[ -f dist/bench/boundary/boundary.js ] || die "dist/bench/boundary/boundary.js is missing: run npx tsc -p tsconfig.json"
NODE_JSON=$(node --expose-gc dist/bench/boundary/boundary.js --model "$MODEL" "$@")
PY_JSON=$("$(dove_py)" bench/boundary/boundary.py --model "$MODEL" "$@")
node - "$NODE_JSON" "$PY_JSON" <<'JS'
const [n, p] = process.argv.slice(2).map((s) => JSON.parse(s));
const gbs = (s) => (n.mib / 1024 / s).toFixed(s < 1e-4 ? 0 : 1);
const row = (label, node, py) => console.log(`${label.padEnd(56)} ${String(node).padStart(12)} ${String(py).padStart(12)}`);
console.log(`boundary benchmark: node ${n.node}, libtorch ${n.libtorch} / torch ${p.torch}, intra-op threads ${n.threads}/${p.threads}`);
console.log(`load average: ${require('os').loadavg().map((l) => l.toFixed(1)).join(' ')} (${require('os').cpus().length} cores): latencies grow with load`);
row('', 'Node', 'Python');
row('no-op on the calling thread: runSync / direct call (us)', n.noopSyncUs.toFixed(1), p.noopUs.toFixed(1));
row('no-op, public ScriptModule.runSync (us)', n.noopSyncPublicUs.toFixed(1), '-');
row('no tensor: runSync(\'nothing\') / direct call (us)', n.nothingSyncUs.toFixed(1), p.nothingUs.toFixed(1));
row('no-op async: await run() / pool.submit().result() (us)', n.noopUs.toFixed(1), p.noopPoolUs.toFixed(1));
row('no-op async, public ScriptModule.run (us)', n.noopPublicUs.toFixed(1), '-');
row('no-op async, 64 calls in flight (us per call)', n.noopPipelinedUs.toFixed(1), '-');
row(`${n.mib} MiB memcpy baseline (GB/s)`, gbs(n.copyS), gbs(p.copyS));
row(`${n.mib} MiB in: array -> tensor (us)`, (n.inS * 1e6).toFixed(1), (p.inS * 1e6).toFixed(1));
row(`${n.mib} MiB through noop: await run() / direct call (us)`, (n.runS * 1e6).toFixed(1), (p.runS * 1e6).toFixed(1));
row(`${n.mib} MiB through noop: runSync / direct call (us)`, (n.runSyncS * 1e6).toFixed(1), (p.runS * 1e6).toFixed(1));
row(`${n.mib} MiB out: tensor -> array (us)`, (n.outS * 1e6).toFixed(1), (p.outS * 1e6).toFixed(1));
row(`${n.mib} MiB out of a libtorch tensor (us)`, (n.freshOutS * 1e6).toFixed(1), '-');
const total = n.inS + n.runSyncS + n.outS;
row(`${n.mib} MiB in + runSync / direct call + out, effective (GB/s)`, gbs(total), gbs(p.inS + p.runS + p.outS));
JS
