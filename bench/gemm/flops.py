"""FLOPs per image of each benchmarked operation, counted (not estimated) with
torch.utils.flop_counter.FlopCounterMode on the eager twin of an export (dove.model.Dove with the
file's config and weights). It counts matrix products and convolutions (forward and, for `train`,
backward), the work a GEMM peak bounds; norms and element-wise ops are left out, so "share of GEMM
peak" is a slight underestimate of the machine's busy-ness, never an overestimate.

python bench/gemm/flops.py model.pt [--batch 2]  ->  one JSON object on stdout
"""
import argparse
import json
import os
import sys

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "peers"))
from torch_models import load_export  # noqa: E402


def count(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("pt")
    p.add_argument("--batch", type=int, default=1)
    args = p.parse_args()
    model, meta = load_export(args.pt, "eager")
    torch.manual_seed(0)
    b, s, k, d = args.batch, meta["imageSize"], meta["maxTokens"], meta["tokenDim"]
    images = torch.rand(b, 3, s, s)
    tokens = torch.randn(b, k, d)
    lengths = torch.full([b], k, dtype=torch.int64)
    with torch.inference_mode():
        enc = count(lambda: model.encode(images, k))
        dec = count(lambda: model.decode(tokens, lengths))
    model.train()

    def step() -> None:
        model(images)["loss"].backward()

    train = count(step)
    params = sum(p.numel() for p in model.parameters())
    print(json.dumps({
        "config": meta.get("configName"),
        "params": params,
        "perImage": {"encode": enc / b, "decode": dec / b, "encode+decode": (enc + dec) / b, "train": train / b},
        "counter": "torch.utils.flop_counter.FlopCounterMode (matmul/conv/attention, fwd+bwd for train)",
    }))


if __name__ == "__main__":
    main()
