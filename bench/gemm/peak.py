"""Measured GEMM peak of this machine: square products through libtorch, float32 (or --dtype bfloat16,
the GPU's training peak), at a fixed intra-op thread count. Prints one JSON object on stdout.

On the CPU libtorch has two GEMM backends and the models use both: aten's matmul (MKL) and oneDNN's
prepacked linear (the compiled packages' linears with weight prepacking, python/dove/aoti_export.py).
Both are measured and the faster counts: on an AMD EPYC (Zen 5) MKL runs its AVX2 kernels and reads
about half of what oneDNN's AVX-512 kernels (and onnxruntime's MLAS) do, so MKL alone would understate
the hardware and every share of it.

Every throughput row of the benchmark is divided by this number, so "share of peak" says how close a
runtime gets to what the hardware does on the friendliest workload it has.
"""
import argparse
import json
import time
from typing import Callable, List

import torch


def product(backend: str, n: int, device: torch.device, dtype: torch.dtype) -> Callable[[], object]:
    """One n x n x n product through `backend`: "matmul" (aten) or "onednn" (prepacked linear)."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    if backend == "onednn":
        packed = torch.ops.mkldnn._reorder_linear_weight(b, n)
        return lambda: torch.ops.mkldnn._linear_pointwise(a, packed, None, "none", [], "")
    out = torch.empty(n, n, device=device, dtype=dtype)
    return lambda: torch.matmul(a, b, out=out)


def backends(device: torch.device, dtype: torch.dtype) -> List[str]:
    if device.type != "cpu" or dtype != torch.float32 or not torch.backends.mkldnn.is_available():
        return ["matmul"]
    return ["matmul", "onednn"]


def measure(call: Callable[[], object], n: int, device: torch.device, seconds: float, bursts: int) -> float:
    """The best of `bursts` short timed windows. A peak is what the hardware can do: on a shared machine
    another process only ever takes cycles away, so one long average reads the neighbours as well, and the
    best short window is the closer reading (a window still holds several products, so it is not a
    single lucky call)."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    with torch.no_grad():
        for _ in range(2):  # warm-up: BLAS packing buffers, CUDA handles, clocks
            call()
        sync()
        best = 0.0
        for _ in range(bursts):
            reps = 0
            start = time.perf_counter()
            while True:
                call()
                reps += 1
                if reps % 4 == 0:
                    sync()
                    elapsed = time.perf_counter() - start
                    if elapsed >= seconds / bursts:
                        break
            best = max(best, 2.0 * n * n * n * reps / elapsed / 1e9)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sizes", default="", help="comma-separated n; default depends on device")
    parser.add_argument("--seconds", type=float, default=2.0, help="time per size")
    parser.add_argument("--bursts", type=int, default=8, help="timed windows per size; the best one counts")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    # TF32 would overstate an fp32 peak on CUDA; keep it honest (and equal to what the models use).
    torch.backends.cuda.matmul.allow_tf32 = False
    default_sizes = "1024,2048,4096,8192" if device.type == "cuda" else "512,1024,2048"
    sizes = [int(s) for s in (args.sizes or default_sizes).split(",")]
    dtype = torch.float32 if args.dtype == "float32" else torch.bfloat16
    by_backend = {name: {str(n): measure(product(name, n, device, dtype), n, device, args.seconds, args.bursts) for n in sizes}
                  for name in backends(device, dtype)}
    per_size = {str(n): max(results[str(n)] for results in by_backend.values()) for n in sizes}
    best = max(per_size.values())
    print(json.dumps({
        "device": args.device,
        "dtype": args.dtype,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "gflops_by_size": per_size,
        "gflops_by_backend": by_backend,
        "peak_gflops": best,
        "method": f"best of {args.bursts} windows of {args.seconds / args.bursts:.2f} s per size",
        "blas": torch.__config__.show().split("\n")[0:1],
    }))


if __name__ == "__main__":
    main()
