"""The timing loop of the kernel microbenchmarks in this folder (conv_pack.py, linear_pack.py)."""
import statistics
import time


def per_call_us(f, calls: int = 100, runs: int = 5) -> float:
    """Microseconds per call of `f`: 10 warm-up calls, then the median of `runs` runs of `calls` calls."""
    for _ in range(10):
        f()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        for _ in range(calls):
            f()
        times.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(times)
