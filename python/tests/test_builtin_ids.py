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
def freed():
    gc.collect()
    live = {id(o) for o in gc.get_objects()}
    return {k: v for k, v in _get_builtin_table().items() if k not in live}
before = set(freed())
import torch._inductor.lowering  # noqa: F401
print(json.dumps(sorted(v for k, v in freed().items() if k not in before)))
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
