"""Two AOTInductor packages of the same model, timed side by side in alternating rounds (A B, B A, ...):
for choosing compile options (python/dove/aoti_export.py INDUCTOR_OPTIONS). Compile the second with
e.g. compile_package(..., inductor_options={...}) from python/dove/aoti_export.py.

python bench/compiled/compare.py A.aoti.pt2 B.aoti.pt2 [--batches 1,16] [--rounds 4] [--seconds 1] [--threads 2]
Prints, per batch and method, each package's median ms in every round and the median per-round ratio.
"""
import argparse
import statistics
import time

import os
import sys

import torch
from torch._inductor.package import load_package

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
from dove.aoti_export import expose_libtorch_globally  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--batches", default="1,16")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--seconds", type=float, default=1.0)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    expose_libtorch_globally()
    packages = {name: (load_package(path, "encode"), load_package(path, "decode")) for name, path in (("A", args.a), ("B", args.b))}
    # Sizes from the packages' own dove.inputs: "uint8[b,S,S,3]" and "float32[b,1..K,D] int64[b]".
    k = int(packages["A"][0].get_metadata()["dove.max_tokens"])
    size = int(packages["A"][0].get_metadata()["dove.inputs"].split("[")[1].split(",")[1])
    dim = int(packages["A"][1].get_metadata()["dove.inputs"].split("]")[0].split(",")[2])
    for b in (int(x) for x in args.batches.split(",")):
        pixels = torch.randint(0, 256, (b, size, size, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
        tokens = torch.randn(b, k, dim, generator=torch.Generator().manual_seed(1))
        lengths = torch.full([b], k, dtype=torch.int64)
        calls = {name: {"encode": (lambda e=e: e(pixels)), "decode": (lambda d=d: d(tokens, lengths))} for name, (e, d) in packages.items()}
        ms = {}
        with torch.no_grad():
            for fns in calls.values():
                for f in fns.values():
                    f()
                    f()
            for r in range(args.rounds):
                for name in ("A", "B") if r % 2 == 0 else ("B", "A"):
                    for method, f in calls[name].items():
                        samples = []
                        start = time.perf_counter()
                        while time.perf_counter() - start < args.seconds or len(samples) < 2:
                            t0 = time.perf_counter()
                            f()
                            samples.append((time.perf_counter() - t0) * 1000)
                        ms.setdefault((method, name), []).append(statistics.median(samples))
        for method in ("encode", "decode"):
            a, bb = ms[(method, "A")], ms[(method, "B")]
            ratio = statistics.median(x / y for x, y in zip(a, bb))
            print(f"batch {b} {method}: A {[round(x, 1) for x in a]} ms, B {[round(x, 1) for x in bb]} ms; "
                  f"B is {ratio:.2f}x A's speed (median of per-round ratios)")


if __name__ == "__main__":
    main()
