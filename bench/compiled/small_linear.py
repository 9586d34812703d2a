"""dove::linear (native/small_linear.cpp, the batch-1 models' linear) against oneDNN's prepacked linear
(what the dynamic-batch models call), for tiny's linear shapes at batch 1 (64 rows) and batch 16.

python bench/compiled/small_linear.py [--threads 2] [--conv]
Prints microseconds per call (medians of 5 runs of 100 calls, weights packed once outside the timing)
and the largest difference from F.linear. --conv: tiny's "same" convolutions at batch 1 instead,
oneDNN's prepacked channels_last convolution against dove::linear over the unfolded pixels (the
batch-1 models' SmallSameConv; the unfolding is a fused kernel of its own there, not timed here). At 64 rows oneDNN's per-call set-up is most of a small
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


# (in channels, out channels, size): tiny's 3x3 convolutions at batch 1.
CONVS = [(48, 64, 16), (64, 64, 16), (64, 48, 16), (192, 192, 8)]


def convolutions() -> None:
    print("in->out channels at size: oneDNN convolution | dove::linear over unfolded pixels (us per call)")
    for cin, cout, size in CONVS:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(1, cin, size, size, generator=g).to(memory_format=torch.channels_last)
        w, b = torch.randn(cout, cin, 3, 3, generator=g), torch.randn(cout, generator=g)
        onednn_weight = torch.ops.mkldnn._reorder_convolution_weight(w, [1, 1], [1, 1], [1, 1], 1, x.shape)
        onednn = per_call_us(lambda: torch.ops.mkldnn._convolution_pointwise(x, onednn_weight, b, [1, 1], [1, 1], [1, 1], 1, "none", [], ""))
        padded = torch.nn.functional.pad(x.permute(0, 2, 3, 1), (0, 0, 1, 1, 1, 1))
        rows = torch.cat([padded[:, i:i + size, j:j + size, :] for i in range(3) for j in range(3)], dim=-1).contiguous()
        packed = small_linear.pack_weight(w.permute(0, 2, 3, 1).flatten(1))
        ours = per_call_us(lambda: torch.ops.dove.linear(rows, packed, b, cout))
        err = (torch.ops.dove.linear(rows, packed, b, cout).permute(0, 3, 1, 2) - torch.nn.functional.conv2d(x, w, b, padding=1)).abs().max().item()
        print(f"{cin}->{cout} at {size}x{size}: {onednn:.1f} | {ours:.1f} (max diff {err:.1e})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--conv", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    small_linear.load()
    if args.conv:
        with torch.no_grad():
            convolutions()
        return
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
