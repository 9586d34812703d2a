"""Time oneDNN's prepacked linear with weights packed for several row counts.

python bench/compiled/linear_pack.py --threads 2
For each linear shape of tiny's decoder (in -> out features) and each number of rows it runs at (64: a
batch-1 decode of 64 tokens; 1024: batch 16), the weight packed by mkldnn._reorder_linear_weight for
128 rows (what inductor does with tiny's dynamic batch: its size hint, 2 images of 64 tokens) and for
256, 1024 and 4096 rows, and the layout oneDNN chose for each (plain, or blocked for its brgemm kernel).
Shows why python/dove/aoti_export.py packs linears for LINEAR_PACK_ROWS rows
(_linear_weights_packed_for_many_rows). Prints microseconds per call, medians of 5 runs of 100 calls.
"""
import argparse
import os
import subprocess
import sys

import torch

from microbench import per_call_us  # this folder (the script's own directory is on sys.path)

SHAPES = [(256, 1024), (256, 768), (256, 256), (1024, 256), (64, 256), (192, 256), (64, 64)]
HINTS = (128, 256, 1024, 4096)


def packed(weight: torch.Tensor, hint: int) -> torch.Tensor:
    return torch.ops.mkldnn._reorder_linear_weight(weight, hint)


def layouts() -> None:
    """Child process (ONEDNN_VERBOSE set): one call per shape and hint; the parent reads the log."""
    for k, n in SHAPES:
        weight = torch.randn(n, k)
        for hint in HINTS:
            print(f"## {k} {n} {hint}", flush=True)
            torch.ops.mkldnn._linear_pointwise(torch.randn(64, k), packed(weight, hint), None, "none", [], "")


def layout_names() -> dict:
    log = subprocess.run([sys.executable, __file__, "--layouts"], env=dict(os.environ, ONEDNN_VERBOSE="1"),
                         capture_output=True, text=True, check=True).stdout
    names, key = {}, None
    for line in log.splitlines():
        if line.startswith("## "):
            key = tuple(int(x) for x in line[3:].split())
        elif key is not None and ",exec,cpu,inner_product," in line:
            weights = next(f for f in line.split(",")[8].split(" ") if f.startswith("wei:"))
            names[key] = "plain" if weights.split(":")[4] in ("ab", "ba") else weights.split(":")[4]
    return names


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--layouts", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.layouts:
        layouts()
        return
    names = layout_names()
    linear = torch.ops.mkldnn._linear_pointwise
    with torch.no_grad():
        for k, n in SHAPES:
            gen = torch.Generator().manual_seed(0)
            weight = torch.randn(n, k, generator=gen)
            bias = torch.randn(n, generator=gen)
            cells = []
            for rows in (64, 1024):
                x = torch.randn(rows, k, generator=gen)
                row = []
                for hint in HINTS:
                    w = packed(weight, hint)
                    row.append(f"@{hint} {per_call_us(lambda: linear(x, w, bias, 'none', [], '')):.0f}")
                cells.append(f"{rows} rows: " + ", ".join(row))
            kinds = ", ".join(f"@{h} {names.get((k, n, h), '?')}" for h in HINTS)
            print(f"{k}->{n} (us): " + " | ".join(cells) + f"  [layout {kinds}]")


if __name__ == "__main__":
    main()
