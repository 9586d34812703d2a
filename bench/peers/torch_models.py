"""Loading an export in Python, shared by the python peers and the FLOP counter."""
import json
import os
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if os.path.join(ROOT, "python") not in sys.path:
    sys.path.insert(0, os.path.join(ROOT, "python"))


def load_export(pt: str, mode: str):
    """-> (module, meta). mode 'torchscript': the file itself; 'eager': dove.model.Dove with its weights."""
    extra = {"dove.json": ""}
    scripted = torch.jit.load(pt, map_location="cpu", _extra_files=extra)
    meta = json.loads(extra["dove.json"])
    if mode == "torchscript":
        return scripted.eval(), meta
    from dove.model import Dove  # the exporter's own module: the eager twin of the export

    model = Dove(meta["config"], meta.get("variant", "dove"))
    # The archive also stores buffers the eager module keeps out of its state dict (derived tables such
    # as rotary frequencies); every parameter and persistent buffer must still be present.
    missing, _ = model.load_state_dict(scripted.state_dict(), strict=False)
    if missing:
        raise RuntimeError(f"{pt}: the export lacks {len(missing)} eager entries, e.g. {missing[:3]}")
    return model.eval(), meta
