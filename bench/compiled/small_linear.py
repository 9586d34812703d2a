"""dove::linear (native/small_linear.cpp, the batch-1 models' linear) against oneDNN's prepacked linear
(what the dynamic-batch models call), for tiny's linear shapes at batch 1 (64 rows) and batch 16.

python bench/compiled/small_linear.py [--threads 2]
Prints microseconds per call (medians of 5 runs of 100 calls, weights packed once outside the timing)
and the largest difference from F.linear. At 64 rows oneDNN's per-call set-up is most of a small
linear's time; at 1024 rows its blocked kernels are the faster GEMM (docs/MODEL_FORMAT.md, "Batch-1
models"). A measurement for choosing, not a runtime path.
"""
import argparse
import os
import sys

import torch

from microbench import per_call_us  # this folder (the script's own directory is on sys.path)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
from dove import small_linear  # noqa: E402

# (rows, in, out): tiny's linears at batch 1 (64 tokens; 128 rows in the encoder), and batch 16.
SHAPES = [(64, 64, 64), (64, 64, 256), (64, 256, 768), (64, 256, 256), (64, 256, 1024), (64, 1024, 256),
          (128, 256, 1024), (1024, 256, 1024), (1024, 1024, 256)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    small_linear.load()
    print(f"rows in->out: oneDNN prepacked | dove::linear ({args.threads} threads, us per call)")
    with torch.no_grad():
        for rows, k, n in SHAPES:
            g = torch.Generator().manual_seed(0)
            x, w, b = torch.randn(rows, k, generator=g), torch.randn(n, k, generator=g), torch.randn(n, generator=g)
            onednn_weight = torch.ops.mkldnn._reorder_linear_weight(w, 1024)
            packed = small_linear.pack_weight(w)
            onednn = per_call_us(lambda: torch.ops.mkldnn._linear_pointwise(x, onednn_weight, b, "none", [], ""))
            ours = per_call_us(lambda: torch.ops.dove.linear(x, packed, b, n))
            err = (torch.ops.dove.linear(x, packed, b, n) - torch.nn.functional.linear(x, w, b)).abs().max().item()
            print(f"{rows} {k}->{n}: {onednn:.1f} | {ours:.1f} (max diff {err:.1e})")


if __name__ == "__main__":
    main()
