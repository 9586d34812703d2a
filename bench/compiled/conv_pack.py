"""Time oneDNN's convolution with a plain weight and with weights packed for several batch sizes.

python bench/compiled/conv_pack.py --threads 2
For each convolution shape of tiny's autoencoder and each batch (1, 16): the plain channels_last weight
(what a compiled package with a dynamic batch calls: oneDNN reorders it on every call) and the weight
packed by mkldnn._reorder_convolution_weight for batch 1, 2 and 16. Shows whether the packed layout
depends on the batch (python/dove/aoti_export.py, _conv_weights_packed_for_every_batch). Prints
microseconds per call, medians of 5 runs of 100 calls.
"""
import argparse

import torch

from microbench import per_call_us  # this folder (the script's own directory is on sys.path)

SHAPES = [(192, 192, 8, 3), (64, 64, 16, 3), (64, 48, 16, 3), (64, 192, 8, 1), (192, 256, 8, 1)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    conv = torch.ops.mkldnn._convolution_pointwise
    for c_in, c_out, side, k in SHAPES:
        gen = torch.Generator().manual_seed(0)
        weight = torch.randn(c_out, c_in, k, k, generator=gen)
        bias = torch.randn(c_out, generator=gen)
        pad = [k // 2] * 2
        cells = []
        for batch in (1, 16):
            x = torch.randn(batch, c_in, side, side, generator=gen).to(memory_format=torch.channels_last)
            plain = weight.to(memory_format=torch.channels_last)
            row = [f"plain {per_call_us(lambda: conv(x, plain, bias, pad, [1, 1], [1, 1], 1, 'none', [], '')):.0f}"]
            for hint in (1, 2, 16):
                packed = torch.ops.mkldnn._reorder_convolution_weight(weight, pad, [1, 1], [1, 1], 1, [hint, c_in, side, side])
                row.append(f"packed@{hint} {per_call_us(lambda: conv(x, packed, bias, pad, [1, 1], [1, 1], 1, 'none', [], '')):.0f}")
            cells.append(f"batch {batch}: " + ", ".join(row))
        print(f"{c_in}->{c_out} {side}x{side} {k}x{k} (us): " + " | ".join(cells))


if __name__ == "__main__":
    main()
