"""Boundary benchmark (Python side): the same no-op TorchScript method and the same 256 MiB in/out
as bench/boundary/boundary.ts, on the same file and libtorch. Prints one JSON line."""
import argparse
import json
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--mib", type=int, default=256)
    args = parser.parse_args()
    torch.set_num_threads(min(torch.get_num_threads(), 2))
    module = torch.jit.load(args.model).eval()
    x = torch.ones(1)
    with torch.inference_mode():
        for _ in range(200):
            module.noop(x)
        rounds = []
        n = args.calls // 5
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(n):
                module.noop(x)
            rounds.append((time.perf_counter() - start) / n * 1e6)
        noop_us = statistics.median(rounds)
        # No tensor at all: what the call costs without the tensor crossing.
        for _ in range(200):
            module.nothing()
        rounds = []
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(n):
                module.nothing()
            rounds.append((time.perf_counter() - start) / n * 1e6)
        nothing_us = statistics.median(rounds)

        # The async equivalent of Node's call: hand the call to a worker thread and wait for it.
        with ThreadPoolExecutor(max_workers=1) as pool:
            for _ in range(200):
                pool.submit(module.noop, x).result()
            rounds = []
            for _ in range(5):
                start = time.perf_counter()
                for _ in range(n):
                    pool.submit(module.noop, x).result()
                rounds.append((time.perf_counter() - start) / n * 1e6)
            pool_us = statistics.median(rounds)

        big = np.zeros(args.mib * 1024 * 1024 // 4, dtype=np.float32)
        big[::1024] = np.arange(0, big.size, 1024, dtype=np.float32)
        target = np.empty_like(big)
        copy_s, in_s, run_s, out_s = [], [], [], []
        for _ in range(3):
            t0 = time.perf_counter()
            np.copyto(target, big)
            copy_s.append(time.perf_counter() - t0)
        for _ in range(15):
            t0 = time.perf_counter()
            tensor = torch.from_numpy(big)
            in_s.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            out = module.noop(tensor)
            run_s.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            view = out.numpy()
            out_s.append(time.perf_counter() - t0)
            assert view.size == big.size
    print(json.dumps({
        "side": "python",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "noopUs": noop_us,
        "nothingUs": nothing_us,
        "noopPoolUs": pool_us,
        "mib": args.mib,
        "copyS": statistics.median(copy_s),
        "inS": statistics.median(in_s),
        "runS": statistics.median(run_s),
        "outS": statistics.median(out_s),
    }))


if __name__ == "__main__":
    main()
