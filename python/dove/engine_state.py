"""The optimizer state of a Node training run (a checkpoint's optimizer.pt, written by the native
engine's saveState) in the layout of `torch.optim.AdamW.state_dict()`, so PyTorch can read it:

    state = read_engine_state("out/checkpoints/step-00000100/optimizer.pt")
    optimizer.load_state_dict(state)  # an AdamW over the same parameter groups, in the same order

The file is libtorch's C++ AdamW archive (torch::optim::serialize: `param_groups/<g>` with each group's
options and `params/<j>` keys naming entries of `state`) plus the engine's `dove_step`, `dove_param_count`
and `dove_cpu_rng`. It loads with `torch.jit.load`; its entries are attributes, read by name.

    python -m dove.engine_state optimizer.pt -o state.safetensors

writes the same as tensors: `state.<g>.<j>.{exp_avg,exp_avg_sq,step}`, `group.<g>.{lr,weight_decay}`,
`step` (test/trainer/optimizer.test.ts compares them with torch.optim.AdamW's).
"""
import argparse
from typing import Any, Dict, List

import torch

GROUP_OPTIONS = ("lr", "betas", "eps", "weight_decay", "amsgrad")


def read_engine_state(path: str) -> Dict[str, Any]:
    """-> {"state": {index: {"step", "exp_avg", "exp_avg_sq"}}, "param_groups": [...], "engine_step": int}.
    Indices count parameters over the groups in order, as torch.optim does; parameters that never had
    a gradient have no entry."""
    archive = torch.jit.load(path, map_location="cpu")._c
    for key in ("param_groups", "state", "dove_step"):
        if not archive.hasattr(key):
            raise ValueError(f"{path} is not an optimizer state written by dove-encoder's engine (no {key})")
    groups_archive = archive.getattr("param_groups")
    saved = archive.getattr("state")
    state: Dict[int, Dict[str, torch.Tensor]] = {}
    groups: List[Dict[str, Any]] = []
    index = 0
    for g in range(int(groups_archive.getattr("param_groups/size"))):
        group = groups_archive.getattr(f"param_groups/{g}")
        options = group.getattr("options")
        entry: Dict[str, Any] = {name: options.getattr(name) for name in GROUP_OPTIONS}
        entry["betas"] = tuple(entry["betas"])
        entry["params"] = []
        for j in range(int(group.getattr("params/size"))):
            key = group.getattr(f"params/{j}")
            if saved.hasattr(key):
                param_state = saved.getattr(key)
                state[index] = {
                    # torch.optim keeps the step count as a float32 scalar tensor.
                    "step": torch.tensor(float(param_state.getattr("step")), dtype=torch.float32),
                    "exp_avg": param_state.getattr("exp_avg").clone(),
                    "exp_avg_sq": param_state.getattr("exp_avg_sq").clone(),
                }
            entry["params"].append(index)
            index += 1
        groups.append(entry)
    count = int(archive.getattr("dove_param_count"))
    if count != index:
        raise ValueError(f"{path}: the groups list {index} parameters but the engine recorded {count}")
    return {"state": state, "param_groups": groups, "engine_step": int(archive.getattr("dove_step"))}


def as_tensors(state: Dict[str, Any]) -> Dict[str, torch.Tensor]:
    """Flat tensors named by (group, position in group), for files and comparisons."""
    out: Dict[str, torch.Tensor] = {"step": torch.tensor([state["engine_step"]], dtype=torch.float64)}
    for g, group in enumerate(state["param_groups"]):
        out[f"group.{g}.lr"] = torch.tensor([group["lr"]], dtype=torch.float64)
        out[f"group.{g}.weight_decay"] = torch.tensor([group["weight_decay"]], dtype=torch.float64)
        for j, index in enumerate(group["params"]):
            entry = state["state"].get(index)
            if entry is None:
                continue
            out[f"state.{g}.{j}.exp_avg"] = entry["exp_avg"].contiguous()
            out[f"state.{g}.{j}.exp_avg_sq"] = entry["exp_avg_sq"].contiguous()
            out[f"state.{g}.{j}.step"] = entry["step"].reshape(1).to(torch.float64)
    return out


def main(argv: List[str] = None) -> int:
    from safetensors.torch import save_file

    parser = argparse.ArgumentParser(description="Write a dove-encoder optimizer.pt as safetensors.")
    parser.add_argument("path")
    parser.add_argument("-o", "--out", required=True)
    args = parser.parse_args(argv)
    save_file(as_tensors(read_engine_state(args.path)), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
