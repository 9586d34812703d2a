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
log() { printf '[dove] %s\n' "$*" >&2; }
die() { printf '[dove] error: %s\n' "$*" >&2; exit 1; }
