"""Plain PyTorch training loop on a DOVE export: the reference the Node Trainer is compared with.

python bench/train/train_python.py MODEL.pt --batch 4 --warmup 3 --steps 10 --threads 2
Same work as the Node engine: torch.jit.load of the same file, forward(uint8 images) -> dict,
loss.backward(), clip_grad_norm_(1.0), AdamW(betas 0.9/0.95, wd 0.01, vqgan.* lr x 0.1), one fixed batch.
Prints one JSON line: {"stepsPerSecond": ..., "msPerStep": ...}.
"""
import argparse
import json
import time

import torch


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--lr", type=float, default=1e-4)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    extra = {"dove.json": ""}
    m = torch.jit.load(a.model, _extra_files=extra)
    m.train()
    size = json.loads(extra["dove.json"])["imageSize"]
    gen = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (a.batch, size, size, 3), dtype=torch.uint8, generator=gen)
    vq = [p for n, p in m.named_parameters() if n.startswith("vqgan.")]
    rest = [p for n, p in m.named_parameters() if not n.startswith("vqgan.")]
    opt = torch.optim.AdamW([{"params": vq, "lr": a.lr * 0.1}, {"params": rest}], lr=a.lr, betas=(0.9, 0.95), weight_decay=0.01)
    params = vq + rest

    def step() -> None:
        out = m(images)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()

    for _ in range(a.warmup):
        step()
    # Wall time and this process's CPU time: on a shared machine the CPU seconds per step are the
    # fairer comparison (wall time includes waiting for cores other processes hold).
    t, c = time.perf_counter(), time.process_time()
    for _ in range(a.steps):
        step()
    dt, dc = time.perf_counter() - t, time.process_time() - c
    print(json.dumps({"stepsPerSecond": a.steps / dt, "msPerStep": 1000 * dt / a.steps, "cpuSecondsPerStep": dc / a.steps,
                      "batch": a.batch, "imageSize": size}))


if __name__ == "__main__":
    main()
