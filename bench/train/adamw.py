"""Time one AdamW update over a DOVE export's parameters in each of torch.optim.AdamW's three forms.

python bench/train/adamw.py MODEL.pt --threads 2 --steps 20 --rounds 3
The per-parameter loop (the default on CPU), the multi-tensor `_foreach` form (foreach=True) and aten's
fused kernel (fused=True, what native/train_engine.cpp calls), in alternating rounds
(dove.aoti_export.alternating_medians, as the package compiler times its variants). Gradients are
fixed random tensors: only the update is timed. Prints one JSON line of milliseconds per update, each form's
median over rounds: {"parameters": ..., "tensors": ..., "ms": {"loop": ..., "foreach": ..., "fused": ...}}.
"""
import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
from dove.aoti_export import alternating_medians  # noqa: E402

FORMS = {"loop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    gen = torch.Generator().manual_seed(0)
    params = [q.detach().clone().requires_grad_(True) for q in torch.jit.load(a.model).parameters()]
    for q in params:
        q.grad = torch.randn(q.shape, generator=gen)
    optimizers = {name: torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.95), weight_decay=0.01, **kw)
                  for name, kw in FORMS.items()}

    def steps(opt: torch.optim.Optimizer) -> None:
        for _ in range(a.steps):
            opt.step()

    # Its warm-up call creates each optimizer's moments outside the timing.
    ms = alternating_medians({name: (steps, (opt,)) for name, opt in optimizers.items()}, a.rounds)
    print(json.dumps({"parameters": sum(q.numel() for q in params), "tensors": len(params),
                      "ms": {name: round(v / a.steps, 2) for name, v in ms.items()}}))


if __name__ == "__main__":
    main()
