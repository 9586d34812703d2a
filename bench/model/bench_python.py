"""Encode / decode images per second of a DOVE export on CPU: Python eager vs Python TorchScript.

  python bench/model/bench_python.py [--configs tiny,official-70m] [--batches 1,16] [--seconds 3]
      [--threads 2] [--model-dir bench/results/tmp/models] [--out results.json]

Both columns run the very file the Node runtime loads (bench/results/tmp/models/<config>.pt, exported with
seed 0 when missing): TorchScript is torch.jit.load(file); eager is dove.model.Dove rebuilt from the file's
dove.json with the file's weights. Work per op: encode(images float (B,3,S,S), K = maxTokens) and
decode(tokens (B,K,D), lengths = K). Each cell prints one JSON line (runtime, config, batch, op,
imagesPerSec, medianMs, iterations); the last line is the whole result, also written to --out, so a Node
bench can add its own column for the same cells.
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "python"))

from dove.export import export  # noqa: E402
from dove.model import Dove  # noqa: E402
from dove.pretrained import load_checkpoint  # noqa: E402


def load_models(pt: str):
    extra = {"dove.json": ""}
    scripted = torch.jit.load(pt, map_location="cpu", _extra_files=extra).eval()
    meta = json.loads(extra["dove.json"])
    eager = Dove(meta["config"], meta["variant"])
    load_checkpoint(eager, pt)
    return {"python-eager": eager.eval(), "python-torchscript": scripted}, meta


def time_loop(body, warmup: int, min_iters: int, max_iters: int, min_seconds: float):
    for _ in range(warmup):
        body()
    samples = []
    start = time.perf_counter()
    while len(samples) < max_iters and (len(samples) < min_iters or time.perf_counter() - start < min_seconds):
        t0 = time.perf_counter()
        body()
        samples.append((time.perf_counter() - t0) * 1000.0)
    return {"iterations": len(samples), "medianMs": statistics.median(samples), "minMs": min(samples),
            "maxMs": max(samples)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", default="tiny,official-70m")
    p.add_argument("--batches", default="1,16")
    p.add_argument("--seconds", type=float, default=3.0, help="minimum timed seconds per cell")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--model-dir", default=os.path.join(ROOT, "bench", "results", "tmp", "models"))
    p.add_argument("--out", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    batches = [int(b) for b in args.batches.split(",")]
    result = {"bench": "model", "versions": {"torch": torch.__version__, "python": sys.version.split()[0]},
              "threads": torch.get_num_threads(), "rows": [], "models": {}}
    for config in args.configs.split(","):
        pt = os.path.join(args.model_dir, f"{config}.pt")
        if not os.path.isfile(pt):
            print(f"[bench/model] exporting {config} -> {pt}", file=sys.stderr, flush=True)
            export(config, pt, seed=0)
        models, meta = load_models(pt)
        result["models"][config] = pt
        s, k, d = meta["imageSize"], meta["maxTokens"], meta["tokenDim"]
        heavy = s >= 256
        for b in batches:
            gen = torch.Generator().manual_seed(0)
            images = torch.rand(b, 3, s, s, generator=gen)
            tokens = torch.rand(b, k, d, generator=gen) * 2 - 1
            lengths = torch.full([b], k, dtype=torch.int64)
            for runtime, model in models.items():
                for op in ("encode", "decode"):
                    def body(model=model, op=op):
                        with torch.inference_mode():
                            if op == "encode":
                                model.encode(images, k)
                            else:
                                model.decode(tokens, lengths)
                    # The 256px model at batch 16 costs tens of seconds a call on 2 cores: one warm-up
                    # at batch 1 already happened, so time a single call.
                    if heavy and b >= 8:
                        stats = time_loop(body, 0, 1, 1, 0.0)
                    else:
                        stats = time_loop(body, 1, 2, 50, args.seconds if not heavy else 0.0)
                    row = dict(stats, runtime=runtime, config=config, batch=b, op=op,
                               imagesPerSec=b * 1000.0 / stats["medianMs"])
                    result["rows"].append(row)
                    print(json.dumps(row), flush=True)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
