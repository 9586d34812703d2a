"""Runtime worker (the protocol of bench/lib/worker.ts: JSON commands on stdin, one JSON reply per
command on file descriptor 3): Python PyTorch 2.11 on the same export the addon runs, in one of two modes.

  --mode torchscript  torch.jit.load(<pt>), the very file Node loads
  --mode eager        dove.model.Dove rebuilt from the file's dove.json config with the file's weights

Same timed loop as bench/lib/worker.ts (timed calls until min count and min seconds, at most max count)
and same work per op as bench/peers/node-addon.ts: encode(images, K=maxTokens), decode(tokens,
lengths=K), both in a row, and one AdamW training step.
"""
import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_models import load_export  # noqa: E402


def timed_samples(loop, body):
    samples = []
    start = time.perf_counter()
    while len(samples) < loop["maxIterations"] and (
        len(samples) < loop["minIterations"] or time.perf_counter() - start < loop["minSeconds"]
    ):
        t0 = time.perf_counter()
        body()
        samples.append((time.perf_counter() - t0) * 1000.0)
    return samples


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
    args = p.parse_args()
    threads = int(os.environ.get("OMP_NUM_THREADS", "2"))
    torch.set_num_threads(threads)
    device = torch.device(os.environ.get("DOVE_BENCH_DEVICE", "cpu"))
    torch.manual_seed(0)
    replies = os.fdopen(3, "w", encoding="utf-8")
    models = {}
    prepared = None

    def reply(value):
        replies.write(json.dumps(value) + "\n")
        replies.flush()

    def release():
        nonlocal prepared
        if prepared is not None:
            prepared[1]()
        prepared = None

    for line in sys.stdin:
        if not line.strip():
            continue
        command = json.loads(line)
        cmd = command["cmd"]
        if cmd == "exit":
            break
        try:
            if cmd == "info":
                reply({"versions": {"torch": torch.__version__, "python": sys.version.split()[0]},
                       "threads": torch.get_num_threads()})
            elif cmd == "prepare":
                release()
                case = command["case"]
                pt = case["model"]["pt"]
                if pt not in models:
                    models[pt] = load_export(pt, args.mode)[0].to(device)
                prepared = make_body(models[pt], case, command["op"], 0, device)
                for _ in range(case["loop"]["warmup"]):
                    prepared[0]()
                reply({})
            elif cmd == "measure":
                if prepared is None:
                    raise RuntimeError("measure before prepare")
                reply({"samplesMs": timed_samples(command["loop"], prepared[0])})
            else:
                release()
                reply({})
        except Exception as e:  # a failing command is reported; the worker stays up for the next one
            reply({"error": f"{type(e).__name__}: {e}"})
    release()


if __name__ == "__main__":
    main()
