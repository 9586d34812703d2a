"""dove/builtin_ids.py: after importing torch._inductor, torch.jit's builtin table names no freed object
(whose address a later object could take). Each probe runs in a fresh process: the table is per process
and other tests import inductor."""
import json
import os
import subprocess
import sys

PYTHON_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PROBE = """
import gc, json, sys
import torch
from torch.jit._builtins import _get_builtin_table
if sys.argv[1] == "dove":
    import dove  # noqa: F401
before = set(_get_builtin_table())
import torch._inductor.lowering  # noqa: F401
gc.collect()
live = {id(o): o for o in gc.get_objects()}
# An entry torch._ops added names its op ("ns::name"). It is stale when no object lives at its id, or the
# object there is not that op: a freed op's address, reused. Liveness alone would read a reused address as fine.
def stale(key, op):
    obj = live.get(key)
    return obj is None or not callable(obj) or getattr(obj, "__name__", None) != op.split("::")[-1]
print(json.dumps(sorted(op for key, op in _get_builtin_table().items() if key not in before and stale(key, op))))
"""


def freed_after_inductor_import(with_dove: bool):
    out = subprocess.run([sys.executable, "-c", PROBE, "dove" if with_dove else "torch-only"], cwd=PYTHON_DIR,
                         capture_output=True, text=True, timeout=300, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_torch_alone_leaves_freed_objects_in_the_builtin_table():
    """The defect the workaround exists for (if a torch upgrade fixes it, dove/builtin_ids.py can go)."""
    assert freed_after_inductor_import(False) != []


def test_importing_dove_keeps_every_registered_builtin_alive():
    assert freed_after_inductor_import(True) == []
