#!/usr/bin/env bash
# bench/tokenize: images/s of tokenize + reconstruct from JPEG files on disk (decode, resize, encode,
# EOS length, decode to uint8 pixels), Node (this package's API) vs Python (PIL + PyTorch), on the
# same TorchScript exports (tiny and official-70m), batch 1 and 16. Not a test.
# Each cell alternates Node and Python for ROUNDS rounds and keeps each side's best round (robust to
# other load on a shared machine). Writes bench/results/tokenize.md.
# Env: ROUNDS (tiny, default 3), SECONDS_PER_RUN (tiny, default 10), CONFIGS (default "tiny official-70m").
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib.sh
PY="$(dove_py)"
TMP=bench/results/tmp/tokenize
IMAGES=$TMP/images
ROUNDS="${ROUNDS:-3}"
SECS="${SECONDS_PER_RUN:-10}"
CONFIGS="${CONFIGS:-tiny official-70m}"
mkdir -p "$TMP/models"
[ -f dist/bench/tokenize/bench.js ] || npx tsc -p tsconfig.json
[ -d "$IMAGES" ] || node dist/bench/tokenize/make-images.js "$IMAGES" 32
for cfg in $CONFIGS; do
  [ -f "$TMP/models/$cfg.pt" ] || (cd python && "$PY" -m dove.export --config "$cfg" -o "../$TMP/models/$cfg.pt")
done
field() { node -e "console.log(JSON.parse(require('fs').readFileSync(0,'utf8')).$1)"; }
best() { node -e "console.log(Math.max(...process.argv.slice(1).map(Number)))" "$@"; }
OUT=bench/results/tokenize.md
{
  echo "# bench/tokenize: tokenize + reconstruct from files (images/s, higher is better)"
  echo
  echo "$(date -u +%FT%TZ); $(nproc) CPU cores, load average at start $(cut -d' ' -f1-3 /proc/loadavg); node $(node --version);"
  echo "torch $("$PY" -c 'import torch;print(torch.__version__)'); 32 JPEGs 1024x768; auto mode (EOS length over all slots) then decode."
  echo "tiny: best of $ROUNDS alternating rounds of ${SECS}s; official-70m: one round (16 images at batch 16, warm-up at batch 1)."
  echo
  echo "| model | batch | node (images/s) | python (images/s) | node/python |"
  echo "|---|---|---|---|---|"
} > "$OUT"
for cfg in $CONFIGS; do
  for b in 1 16; do
    if [ "$cfg" = tiny ]; then
      rounds=$ROUNDS; extra=(--seconds "$SECS")
    elif [ "$b" = 1 ]; then
      rounds=1; extra=(--seconds 0 --min-images 3)
    else
      rounds=1; extra=(--seconds 0 --min-images 16 --warmup-batch 1)
    fi
    ns=(); ps=()
    for _ in $(seq "$rounds"); do
      ns+=("$(node dist/bench/tokenize/bench.js --model "$TMP/models/$cfg.pt" --images "$IMAGES" --batch "$b" "${extra[@]}" | tail -1 | field images_per_s)")
      ps+=("$("$PY" bench/tokenize/bench_python.py --model "$TMP/models/$cfg.pt" --images "$IMAGES" --batch "$b" "${extra[@]}" | tail -1 | field images_per_s)")
      echo "[bench/tokenize] $cfg batch $b: node ${ns[*]} python ${ps[*]}" >&2
    done
    ni=$(best "${ns[@]}"); pi=$(best "${ps[@]}")
    echo "| $cfg | $b | $ni | $pi | $(node -e "console.log(($ni/$pi).toFixed(2))") |" | tee -a "$OUT"
  done
done
# Same tiny cells with one intra-op thread on both sides: on a loaded 2-core machine Python's default
# 2 OpenMP threads suffer most from contention, so this row separates runtime cost from that effect.
if [ "${ONE_THREAD:-1}" = 1 ] && [[ " $CONFIGS " == *" tiny "* ]]; then
  for b in 1 16; do
    ns=(); ps=()
    for _ in $(seq "$ROUNDS"); do
      ns+=("$(node dist/bench/tokenize/bench.js --model "$TMP/models/tiny.pt" --images "$IMAGES" --batch "$b" --seconds "$SECS" --threads 1 | tail -1 | field images_per_s)")
      ps+=("$("$PY" bench/tokenize/bench_python.py --model "$TMP/models/tiny.pt" --images "$IMAGES" --batch "$b" --seconds "$SECS" --threads 1 | tail -1 | field images_per_s)")
    done
    ni=$(best "${ns[@]}"); pi=$(best "${ps[@]}")
    echo "| tiny, 1 thread | $b | $ni | $pi | $(node -e "console.log(($ni/$pi).toFixed(2))") |" | tee -a "$OUT"
  done
fi
echo "wrote $OUT"
