"""oneDNN's prepacked linear (what the compiled packages call) against a plain driver around libtorch's
exported fp32 brgemm (at::native::cpublas::brgemm, oneDNN's ukernel), for tiny's linear shapes.

python bench/compiled/brgemm_linear.py [--threads 2]
The driver (built here with torch.utils.cpp_extension) splits the output columns into blocks over the
intra-op threads, calls brgemm once per block and adds the bias in a scalar loop: no descriptor, no
attribute or scratchpad set-up per call, which is most of what ideep's _linear_pointwise costs at
64 rows (a batch-1 decode). Prints microseconds per call (medians of 5 runs of 100 calls) and the
largest difference from F.linear. A measurement for choosing the next step, not a runtime path.
"""
import argparse

import torch
from torch.utils.cpp_extension import load_inline

from microbench import per_call_us  # this folder (the script's own directory is on sys.path)

SOURCE = r"""
#include <torch/extension.h>
#include <ATen/native/CPUBlas.h>
#include <ATen/Parallel.h>

// y[M,N] = x[M,K] @ wt[K,N] + b, wt row-major (the weight transposed once, outside the timing).
torch::Tensor brgemm_linear(torch::Tensor x, torch::Tensor wt, torch::Tensor b, int64_t block) {
  const int64_t M = x.size(0), K = x.size(1), N = wt.size(1);
  auto y = torch::empty({M, N}, x.options());
  const float* A = x.data_ptr<float>();
  const float* B = wt.data_ptr<float>();
  const float* bias = b.data_ptr<float>();
  float* C = y.data_ptr<float>();
  at::parallel_for(0, (N + block - 1) / block, 1, [&](int64_t first, int64_t last) {
    for (int64_t j = first; j < last; ++j) {
      const int64_t n0 = j * block, n = std::min(block, N - n0);
      at::native::cpublas::brgemm(M, n, K, K, N, N, false, A, B + n0, C + n0, false);
      for (int64_t i = 0; i < M; ++i)
        for (int64_t c = 0; c < n; ++c) C[i * N + n0 + c] += bias[n0 + c];
    }
  });
  return y;
}
"""

# (rows, in, out): tiny's decoder at batch 1 (64 tokens), and one batch-16 shape.
SHAPES = [(64, 64, 64), (64, 64, 256), (64, 256, 768), (64, 256, 256), (64, 256, 1024), (64, 1024, 256), (1024, 256, 1024)]
BLOCKS = (32, 64, 128)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    ext = load_inline("dove_brgemm_linear", cpp_sources=SOURCE, functions=["brgemm_linear"],
                      extra_cflags=["-O3", "-march=native", "-fopenmp"])
    print(f"rows in->out: oneDNN prepacked | brgemm driver per column block ({args.threads} threads, us per call)")
    with torch.no_grad():
        for rows, k, n in SHAPES:
            g = torch.Generator().manual_seed(0)
            x, w, b = torch.randn(rows, k, generator=g), torch.randn(n, k, generator=g), torch.randn(n, generator=g)
            packed = torch.ops.mkldnn._reorder_linear_weight(w, 1024)
            wt = w.t().contiguous()
            onednn = per_call_us(lambda: torch.ops.mkldnn._linear_pointwise(x, packed, b, "none", [], ""))
            cells = []
            for block in BLOCKS:
                err = (ext.brgemm_linear(x, wt, b, block) - torch.nn.functional.linear(x, w, b)).abs().max().item()
                us = per_call_us(lambda: ext.brgemm_linear(x, wt, b, block))
                cells.append(f"{block}: {us:.1f}")
            print(f"{rows} {k}->{n}: {onednn:.1f} | {', '.join(cells)} (max diff {err:.1e})")


if __name__ == "__main__":
    main()
