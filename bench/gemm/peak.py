"""Measured GEMM peak of this machine: square matmul through libtorch (the same BLAS the addon
links), float32 (or --dtype bfloat16, the GPU's training peak), at a fixed intra-op thread count.
Prints one JSON object on stdout.

Every throughput row of the benchmark is divided by this number, so "share of peak" says how close a
runtime gets to what the hardware does on the friendliest workload it has.
"""
import argparse
import json
import time

import torch


def measure(n: int, device: torch.device, seconds: float, dtype: torch.dtype, bursts: int) -> float:
    """The best of `bursts` short timed windows. A peak is what the hardware can do: on a shared machine
    another process only ever takes cycles away, so one long average reads the neighbours as well, and the
    best short window is the closer reading (a window still holds several products, so it is not a
    single lucky call)."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    out = torch.empty(n, n, device=device, dtype=dtype)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(2):  # warm-up: BLAS packing buffers, CUDA handles, clocks
        torch.matmul(a, b, out=out)
    sync()
    best = 0.0
    for _ in range(bursts):
        reps = 0
        start = time.perf_counter()
        while True:
            torch.matmul(a, b, out=out)
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
    per_size = {str(n): measure(n, device, args.seconds, dtype, args.bursts) for n in sizes}
    best = max(per_size.values())
    print(json.dumps({
        "device": args.device,
        "dtype": args.dtype,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "gflops_by_size": per_size,
        "peak_gflops": best,
        "method": f"best of {args.bursts} windows of {args.seconds / args.bursts:.2f} s per size",
        "blas": torch.__config__.show().split("\n")[0:1],
    }))


if __name__ == "__main__":
    main()
