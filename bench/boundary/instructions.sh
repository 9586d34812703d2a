#!/usr/bin/env bash
# Per-call instruction counts of a no-op TorchScript call, Node vs Python, under valgrind
# (callgrind). Wall-clock microbenchmarks on a shared VM move by 2x between runs; instructions
# executed do not, so this is the number to compare when a change to the crossing is small.
# Each form runs twice with a different number of calls; (instructions(N2) - instructions(N1)) /
# (N2 - N1) is what one call costs, start-up and module load cancelling out. JIT tiering still
# moves it by a few percent between runs. Needs valgrind and `bash scripts/setup`.
# Usage: bash bench/boundary/instructions.sh [--calls1 N1] [--calls2 N2]
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
cd "$DOVE_ROOT"
MODEL=test/fixtures/generated/core/core.pt
N1=2000
N2=12000
while [ $# -gt 0 ]; do
  case "$1" in
    --calls1) N1=$2; shift 2 ;;
    --calls2) N2=$2; shift 2 ;;
    *) die "unknown option $1" ;;
  esac
done
command -v valgrind >/dev/null || die "valgrind is not installed (apt-get install valgrind)"
[ -f "$MODEL" ] || die "$MODEL is missing: run bash scripts/setup"
[ -f dist/bench/boundary/loop.js ] || die "dist/bench/boundary/loop.js is missing: run npx tsc -p tsconfig.json"
PY="$(dove_py)"
count() { valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 >/dev/null | awk '/Collected/ {print $4}'; }
per_call() {
  local a b
  a=$(count "$@" --calls "$N1")
  b=$(count "$@" --calls "$N2")
  echo $(( (b - a) / (N2 - N1) ))
}
echo "instructions per call (callgrind, $N1 vs $N2 calls, 1 intra-op thread)"
printf '%-58s %10s\n' "Node raw runSync('noop', [x])" "$(per_call node dist/bench/boundary/loop.js --model "$MODEL" --form runSync)"
printf '%-58s %10s\n' "Node public ScriptModule.runSync('noop', [x])" "$(per_call node dist/bench/boundary/loop.js --model "$MODEL" --form public)"
printf '%-58s %10s\n' "Python m.noop(x)" "$(per_call "$PY" bench/boundary/loop.py --model "$MODEL" --form direct)"
printf '%-58s %10s\n' "Node raw runSync('nothing', [])" "$(per_call node dist/bench/boundary/loop.js --model "$MODEL" --form nothing)"
printf '%-58s %10s\n' "Python m.nothing()" "$(per_call "$PY" bench/boundary/loop.py --model "$MODEL" --form nothing)"
