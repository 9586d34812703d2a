"""dove::linear, the float32 linear of the batch-1 models in a compiled package (native/small_linear.cpp).

The operator's C++ source is the addon's own file; here it is built with torch.utils.cpp_extension
(ninja and a C++ compiler, which compiling a package needs anyway) so that torch.export can trace it
and the package can be timed where it is compiled. The addon registers the same operator, so a
package's proxy executor finds it in Node.
"""
import functools
import os

import torch
import torch.nn.functional as F
from torch import nn

# Columns per packed block: kBlockCols in native/small_linear.cpp.
BLOCK_COLS = 64
SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "native", "small_linear.cpp")


@functools.lru_cache(maxsize=None)
def load() -> None:
    """Builds (once per machine, cached by torch) and registers dove::linear in this process."""
    from torch.utils.cpp_extension import load as load_extension

    # -fopenmp: at::parallel_for is OpenMP inside the headers; the extension then uses the libgomp
    # that torch loaded (same soname), as the addon does.
    load_extension("dove_small_linear", [os.path.normpath(SOURCE)], extra_cflags=["-O2", "-fopenmp"],
                   extra_ldflags=["-fopenmp"], is_python_module=False, verbose=False)

    @torch.library.register_fake("dove::linear")
    def _(input: torch.Tensor, packed_weight: torch.Tensor, bias, out_features: int) -> torch.Tensor:
        return input.new_empty((*input.shape[:-1], out_features))


def pack_weight(weight: torch.Tensor) -> torch.Tensor:
    """(N, K) -> (ceil(N/64), K, 64): the transposed weight in column blocks, the last padded with zeros.
    In a frozen graph this folds into a constant."""
    n, k = weight.shape
    blocks = (n + BLOCK_COLS - 1) // BLOCK_COLS
    padded = F.pad(weight.t(), (0, blocks * BLOCK_COLS - n))
    return padded.reshape(k, blocks, BLOCK_COLS).permute(1, 0, 2).contiguous()


# The most rows dove::linear takes in a batch-1 model; more go to F.linear (oneDNN's prepacked linear
# after inductor's packing). Its set-up cost is what dove::linear saves, and it weighs less the more
# rows share it: at 1024 rows oneDNN's blocked kernels were as fast or faster (bench/compiled/small_linear.py),
# and an unfolded convolution (aoti_export.SmallSameConv) of a 256x256 image would be a 65536-row matrix.
SMALL_ROWS = 512


def few_rows(x: torch.Tensor) -> bool:
    """Whether `x`'s rows (all but its last dimension) fit SMALL_ROWS. A size export keeps symbolic (the
    decoder's slot count, at most maxTokens) counts as few."""
    rows = 1
    for size in x.shape[:-1]:
        rows = rows * size
    return not isinstance(rows, int) or rows <= SMALL_ROWS


def linear(x: torch.Tensor, weight: torch.Tensor, bias) -> torch.Tensor:
    """F.linear through dove::linear (call load() first)."""
    return torch.ops.dove.linear(x, pack_weight(weight), bias, weight.shape[0])


class SmallLinear(nn.Linear):
    """nn.Linear through dove::linear up to SMALL_ROWS rows, for the batch-1 models only (same parameters)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias) if few_rows(x) else F.linear(x, self.weight, self.bias)
