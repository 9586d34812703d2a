# Shared helpers for scripts/*: where the torch virtualenv lives and how to find libtorch.
# shellcheck shell=bash
DOVE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DOVE_TORCH_VERSION="2.11.0"
DOVE_CACHE="${DOVE_CACHE:-$HOME/.cache/dove-encoder}"
dove_python_base() { command -v python3 || command -v python; }
dove_pyver() { "$(dove_python_base)" -c 'import sys;print(f"{sys.version_info[0]}.{sys.version_info[1]}")'; }
# One virtualenv per (torch version, python version); extras tracked by a requirements hash stamp.
dove_venv() { echo "${DOVE_VENV:-$DOVE_CACHE/torch-$DOVE_TORCH_VERSION-py$(dove_pyver)}"; }
dove_py() { echo "$(dove_venv)/bin/python"; }
# The torch package folder of the virtualenv, found without importing torch (which takes seconds).
dove_torch_pkg() {
  "$(dove_py)" -c 'import importlib.util as u; s = u.find_spec("torch"); print(s.submodule_search_locations[0])'
}
# CMake prefix of the wheel's libtorch (what torch.utils.cmake_prefix_path returns).
dove_torch_cmake_prefix() { echo "$(dove_torch_pkg)/share/cmake"; }
dove_torch_wheel_version() { sed -n "s/^__version__ = '\(.*\)'.*/\1/p" "$(dove_torch_pkg)/version.py" | head -1; }
# Compiles TypeScript into dist/ unless no input is newer than the last compile (tsc takes ~20 s
# on 2 cores even with nothing to do). Run from $DOVE_ROOT.
dove_build_ts() {
  local stamp=dist/.dove-tsc-stamp
  if [ ! -f "$stamp" ] || [ -n "$( (find lib test bench examples -path test/fixtures -prune -o -name '*.ts' -newer "$stamp" -print -quit;
            find binding.d.ts tsconfig.json package.json -newer "$stamp" -print -quit) 2>/dev/null)" ]; then
    log "compiling TypeScript"
    mkdir -p dist
    touch "$stamp.new"
    npx tsc -p tsconfig.json
    mv "$stamp.new" "$stamp"
  fi
  # dist/lib/*.d.ts import '../binding': keep the contract beside them.
  cp -p binding.d.ts dist/binding.d.ts
}
# The ABI baseline of the prebuilt addon and the CUDA stand-ins: what the torch 2.11 wheel's
# libtorch_cpu.so itself needs (manylinux_2_28), the same as sharp's linux-x64 prebuilds.
DOVE_BASELINE_GLIBC=2.28
DOVE_BASELINE_GLIBCXX=3.4.22
DOVE_BASELINE_CXXABI=1.3.11
# Fails naming every dynamic symbol of FILE that needs a newer glibc / libstdc++ than the baseline
# (objdump -T). native/glibc_baseline.h is where such a symbol gets pinned to an older version.
dove_check_abi_baseline() {
  local file="$1" newer
  newer=$(objdump -T "$file" | awk -v g="$DOVE_BASELINE_GLIBC" -v x="$DOVE_BASELINE_GLIBCXX" -v c="$DOVE_BASELINE_CXXABI" '
    function newer(v, limit,   a, b, i, n) {
      n = split(v, a, "."); split(limit, b, ".")
      for (i = 1; i <= (n > 3 ? n : 3); i++) { if ((a[i] + 0) != (b[i] + 0)) return (a[i] + 0) > (b[i] + 0) }
      return 0
    }
    match($0, /(GLIBC|GLIBCXX|CXXABI)_[0-9.]+/) {
      tag = substr($0, RSTART, RLENGTH); split(tag, p, "_")
      limit = p[1] == "GLIBC" ? g : p[1] == "GLIBCXX" ? x : c
      if (newer(p[2], limit)) print "  " tag " " $NF
    }' | sort -u)
  [ -z "$newer" ] || die "$file needs more than glibc $DOVE_BASELINE_GLIBC / GLIBCXX_$DOVE_BASELINE_GLIBCXX / CXXABI_$DOVE_BASELINE_CXXABI:
$newer
pin these in native/glibc_baseline.h"
}
# dove_recipe FILE FIELD: one value of a training recipe (models/recipe.json), FIELD a dotted path
# ("stages.0.name"); objects print as JSON.
dove_recipe() { node -e 'const r = require(require("path").resolve(process.argv[1])); const v = process.argv[2].split(".").reduce((o, k) => o[k], r); console.log(typeof v === "object" ? JSON.stringify(v) : v)' "$1" "$2"; }
# dove_seeded_start RECIPE DATA OUT: the seeded export a recipe's training starts from (its config,
# seed and, when fitOrder is set, the coefficient order fitted on the recipe's images in DATA).
dove_seeded_start() {
  local config seed out fit=()
  config=$(dove_recipe "$1" config) && seed=$(dove_recipe "$1" seed) || return 1
  out=$(realpath -m "$3")
  [ "$(dove_recipe "$1" fitOrder)" = "true" ] && fit=(--fit-order "$(realpath -m "$2/$(dove_recipe "$1" images)")")
  (cd "$DOVE_ROOT/python" && "$(dove_py)" -m dove.export --config "$config" --seed "$seed" "${fit[@]}" -o "$out")
}

log() { printf '[dove] %s\n' "$*" >&2; }
die() { printf '[dove] error: %s\n' "$*" >&2; exit 1; }
