"""Section child: Python PyTorch 2.11 on the same export the addon runs, in one of two modes.

  --mode torchscript  torch.jit.load(<pt>), the very file Node loads
  --mode eager        dove.model.Dove rebuilt from the file's dove.json config with the file's weights

Same protocol as bench/lib/timing.ts (warm-up, then timed calls until min count and min seconds, at most
max count; median) and same work per op as bench/peers/node-addon.ts: encode(images, K=maxTokens),
decode(tokens, lengths=K), both in a row, and one AdamW training step. Reads --plan, writes --out.
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_models import load_export  # noqa: E402


def time_loop(loop, body):
    for _ in range(loop["warmup"]):
        body()
    samples = []
    start = time.perf_counter()
    while len(samples) < loop["maxIterations"] and (
        len(samples) < loop["minIterations"] or time.perf_counter() - start < loop["minSeconds"]
    ):
        t0 = time.perf_counter()
        body()
        samples.append((time.perf_counter() - t0) * 1000.0)
    return {
        "iterations": len(samples),
        "medianMs": statistics.median(samples),
        "meanMs": statistics.fmean(samples),
        "minMs": min(samples),
        "maxMs": max(samples),
    }


def settle(t, device):
    """On CUDA, wait for the kernels by copying what a caller reads to the CPU (as the Node peer does)."""
    if device.type != "cpu":
        t.cpu()


def make_body(model, case, op, seed, device):
    m = case["model"]
    s, k, d, b = m["imageSize"], m["maxTokens"], m["tokenDim"], case["batch"]
    gen = torch.Generator().manual_seed(seed)
    images = torch.rand(b, 3, s, s, generator=gen).to(device)
    tokens = (torch.rand(b, k, d, generator=gen) * 2 - 1).to(device)
    lengths = torch.full([b], k, dtype=torch.int64).to(device)
    if op == "encode":
        def body():
            with torch.inference_mode():
                settle(model.encode(images, k)[1], device)
        return body, lambda: None
    if op == "decode":
        def body():
            with torch.inference_mode():
                settle(model.decode(tokens, lengths), device)
        return body, lambda: None
    if op == "encode+decode":
        def body():
            with torch.inference_mode():
                z, _ = model.encode(images, k)
                settle(model.decode(z, lengths), device)
        return body, lambda: None
    # The plain training loop the Node train engine is measured against (same optimizer settings).
    model.train()
    named = list(model.named_parameters())
    vq = [p for n, p in named if n.startswith("vqgan.")]
    rest = [p for n, p in named if not n.startswith("vqgan.")]
    opt = torch.optim.AdamW(
        [{"params": vq, "lr": 1e-5}, {"params": rest, "lr": 1e-4}], betas=(0.9, 0.95), eps=1e-8, weight_decay=0.01
    )
    params = [p for _, p in named]

    def body():
        opt.zero_grad(set_to_none=True)
        # bf16 autocast on CUDA, as the Node train engine does there; plain float32 on CPU.
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = model(images)["loss"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        loss.item()  # the Node engine reads the loss parts back every step

    return body, lambda: model.eval()


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--mode", choices=["eager", "torchscript"], required=True)
    p.add_argument("--plan", required=True)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    with open(args.plan, encoding="utf-8") as f:
        plan = json.load(f)
    runtime = "python-eager" if args.mode == "eager" else "python-torchscript"
    torch.set_num_threads(plan["threads"])
    device = torch.device(plan.get("device") or "cpu")
    torch.manual_seed(plan["seed"])
    out = {
        "runtime": runtime,
        "versions": {"torch": torch.__version__, "python": sys.version.split()[0]},
        "threads": torch.get_num_threads(),
        "device": str(device),
        "rows": [],
        "errors": [],
    }
    models = {}

    def flush():
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=2)

    for case in plan["cases"]:
        pt = case["model"]["pt"]
        for op in case["ops"]:
            try:
                if pt not in models:
                    models[pt] = load_export(pt, args.mode)[0].to(device)
                body, done = make_body(models[pt], case, op, plan["seed"], device)
                try:
                    stats = time_loop(case["loop"], body)
                finally:
                    done()
                per_sec = 1000.0 / stats["medianMs"]
                row = dict(stats, runtime=runtime, config=case["model"]["config"], batch=case["batch"], op=op,
                           imagesPerSec=case["batch"] * per_sec, stepsPerSec=per_sec if op == "train" else None)
                out["rows"].append(row)
                print(f"{row['config']} b{row['batch']} {op}: {row['medianMs']:.1f} ms, "
                      f"{row['imagesPerSec']:.2f} img/s", flush=True)
            except Exception as e:  # a failing row is reported, the rest still runs
                out["errors"].append({"runtime": runtime, "config": case["model"]["config"],
                                      "batch": case["batch"], "op": op, "error": f"{type(e).__name__}: {e}"})
                print(f"{case['model']['config']} b{case['batch']} {op}: {type(e).__name__}: {e}", file=sys.stderr,
                      flush=True)
            flush()
    flush()


if __name__ == "__main__":
    main()
