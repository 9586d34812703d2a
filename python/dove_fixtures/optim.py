"""Optimizer fixture: a small seeded TorchScript module, its training batches and what PyTorch's own
optimizer does with them, written into test/fixtures/generated/optim/ by scripts/setup.

test/trainer/optimizer.test.ts runs the native engine (native/train_engine.cpp) on the same module,
batches and hyper-parameters and compares. The reference is plain PyTorch: `torch.optim.AdamW` with
two parameter groups (the `vqgan.` prefix at a scaled learning rate and its own weight decay, like the
Trainer's), `torch.nn.utils.clip_grad_norm_`, and a `LambdaLR` with the schedule of docs/TRAINING.md
(linear warm-up to lr over warmupSteps, cosine to minLrRatio * lr at totalSteps, held there after).
The run goes past totalSteps, and its batches alternate small and large targets so that some steps
are clipped and some are not; generation fails if either kind is missing.
"""
import json
import math
import os
from typing import Dict, List

import torch
from safetensors.torch import save_file
from torch import nn

from dove.engine_state import as_tensors

OPTIONS = {
    "lr": 0.02,
    "betas": [0.9, 0.95],
    "eps": 1e-8,
    "weightDecay": 0.1,
    "groups": [{"prefixes": ["vqgan."], "lrScale": 0.1, "weightDecay": 0.01}],
    "warmupSteps": 3,
    "totalSteps": 10,
    "minLrRatio": 0.1,
    "clipGradNorm": 3.0,
    "accumulate": 1,
    "autocastBf16": False,
    "seed": 0,
}
STEPS = 13
BATCH = 8


class OptimProbe(nn.Module):
    """A `vqgan` part (the scaled group), a body with a LayerNorm, and a parameter forward never uses:
    it gets no gradient, so AdamW must leave it, and give it no state. `mix` is stored transposed (not
    contiguous): the engine updates contiguous parameters with aten's fused AdamW kernel, which walks
    flat memory, and a group holding a non-contiguous one with the multi-tensor form; this module's
    two groups take one path each."""

    def __init__(self) -> None:
        super().__init__()
        self.vqgan = nn.Linear(6, 12)
        self.body = nn.Sequential(nn.Linear(12, 16), nn.LayerNorm(16), nn.Linear(16, 4))
        self.unused = nn.Parameter(torch.randn(3))
        self.mix = nn.Parameter((torch.eye(4) + 0.1 * torch.randn(4, 4)).t())

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> Dict[str, torch.Tensor]:
        loss = (self.body(torch.tanh(self.vqgan(x))) @ self.mix - y).pow(2).mean()
        return {"loss": loss, "rec": loss.detach()}


def schedule_factor(step: int) -> float:
    """docs/TRAINING.md: lr(step) / lr."""
    warmup, total, floor = OPTIONS["warmupSteps"], OPTIONS["totalSteps"], OPTIONS["minLrRatio"]
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def param_groups(module: nn.Module) -> List[List[str]]:
    """Names per optimizer group: the first spec whose prefix matches, else the default group (last)."""
    specs = OPTIONS["groups"]
    groups: List[List[str]] = [[] for _ in range(len(specs) + 1)]
    for name, p in module.named_parameters():
        if not p.requires_grad:
            continue
        index = next((g for g, spec in enumerate(specs) if any(name.startswith(x) for x in spec["prefixes"])), len(specs))
        groups[index].append(name)
    return [g for g in groups if g]


def generate(out_dir: str) -> None:
    out = os.path.join(out_dir, "optim")
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(5)
    scripted = torch.jit.script(OptimProbe())
    scripted.save(os.path.join(out, "probe.pt"))
    if torch.jit.load(os.path.join(out, "probe.pt")).mix.is_contiguous():
        raise RuntimeError("optimizer fixture: the saved module lost mix's transposed layout")

    gen = torch.Generator().manual_seed(6)
    batches: Dict[str, torch.Tensor] = {}
    for k in range(STEPS):
        batches[f"x.{k}"] = torch.randn(BATCH, 6, generator=gen)
        batches[f"y.{k}"] = torch.randn(BATCH, 4, generator=gen) * (4.0 if k % 2 else 0.25)
    save_file(batches, os.path.join(out, "batches.safetensors"))

    # The reference trains the saved file itself, so both sides start from the same weights and graph.
    module = torch.jit.load(os.path.join(out, "probe.pt"))
    module.train()
    params = dict(module.named_parameters())
    names = param_groups(module)
    specs = OPTIONS["groups"]
    groups = []
    for g, group_names in enumerate(names):
        spec = specs[g] if g < len(specs) else {"lrScale": 1.0, "weightDecay": OPTIONS["weightDecay"]}
        groups.append({"params": [params[n] for n in group_names], "lr": OPTIONS["lr"] * spec["lrScale"],
                       "weight_decay": spec["weightDecay"]})
    optimizer = torch.optim.AdamW(groups, lr=OPTIONS["lr"], betas=tuple(OPTIONS["betas"]), eps=OPTIONS["eps"],
                                  weight_decay=OPTIONS["weightDecay"])
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule_factor)
    trainable = [p for group in groups for p in group["params"]]
    lrs, norms = [], []
    for k in range(STEPS):
        optimizer.zero_grad(set_to_none=True)
        module(batches[f"x.{k}"], batches[f"y.{k}"])["loss"].backward()
        norms.append(float(torch.nn.utils.clip_grad_norm_(trainable, OPTIONS["clipGradNorm"])))
        lrs.append(optimizer.param_groups[-1]["lr"])
        optimizer.step()
        if k < STEPS - 1:  # the saved groups then hold the lr of the last step, as the engine's do
            scheduler.step()
    clipped = sum(n > OPTIONS["clipGradNorm"] for n in norms)
    if not 0 < clipped < STEPS:
        raise RuntimeError(f"optimizer fixture: {clipped} of {STEPS} steps clipped; need both kinds (norms {norms})")
    if STEPS <= OPTIONS["totalSteps"]:
        raise RuntimeError("optimizer fixture: the run must go past totalSteps to cover the held minimum")

    reference = as_tensors({**optimizer.state_dict(), "engine_step": STEPS})
    reference.update({f"weight.{n}": p.detach().clone() for n, p in params.items()})
    reference["lr"] = torch.tensor(lrs, dtype=torch.float64)
    reference["grad_norm"] = torch.tensor(norms, dtype=torch.float64)
    save_file({k: v.contiguous() for k, v in reference.items()}, os.path.join(out, "reference.safetensors"))
    with open(os.path.join(out, "optim.json"), "w", encoding="utf-8") as f:
        json.dump({"model": "probe.pt", "batches": "batches.safetensors", "reference": "reference.safetensors",
                   "steps": STEPS, "options": OPTIONS, "paramGroups": names, "clippedSteps": clipped}, f, indent=2)
