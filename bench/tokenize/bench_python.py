"""Python side of bench/tokenize: images/s of tokenize + reconstruct from files on disk, decode included,
with PIL + PyTorch on the same TorchScript export the Node side runs.

python bench_python.py --model m.pt --images DIR --batch 16 [--seconds 10] [--threads N]
Prints one JSON line: {"side": "python", "batch": B, "images_per_s": X, ...}.
"""
import argparse
import json
import os
import time

import numpy as np
import torch
from PIL import Image, ImageOps


def load(path: str, size: int) -> np.ndarray:
    # The same policy as lib/io/images.ts: EXIF rotate, RGB, short side to `size`, centre crop.
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im).convert("RGB")
        w, h = im.size
        scale = size / min(w, h)
        nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
        im = im.resize((nw, nh), Image.LANCZOS)
        left, top = (nw - size) // 2, (nh - size) // 2
        im = im.crop((left, top, left + size, top + size))
        return np.asarray(im, dtype=np.uint8)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--images", required=True)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--warmup", type=int, default=2, help="untimed runs first (TorchScript profiles the first calls)")
    p.add_argument("--warmup-batch", type=int, default=0, help="batch size of the warm-up runs (default --batch)")
    p.add_argument("--min-images", type=int, default=0, help="time at least this many images (default 2 batches)")
    args = p.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    files = sorted(os.path.join(args.images, f) for f in os.listdir(args.images))
    extra = {"dove.json": ""}
    module = torch.jit.load(args.model, map_location="cpu", _extra_files=extra)
    module.eval()
    meta = json.loads(extra["dove.json"])
    size, max_tokens, threshold = meta["imageSize"], meta["maxTokens"], meta["eosThreshold"]

    def step(i: int, n: int) -> None:
        batch = [files[(i + j) % len(files)] for j in range(n)]
        pixels = torch.from_numpy(np.stack([load(f, size) for f in batch]))
        with torch.inference_mode():
            tokens, _, lengths = module.encode_pixels(pixels, "auto", max_tokens, threshold)
            out = module.decode_pixels(tokens, lengths)
        assert out.shape == (len(batch), size, size, 3)

    for _ in range(args.warmup):  # TorchScript's profiling executor optimises after the first calls
        step(0, args.warmup_batch or args.batch)
    min_images = args.min_images or 2 * args.batch
    done, i, start = 0, 0, time.perf_counter()
    while time.perf_counter() - start < args.seconds or done < min_images:
        step(i, args.batch)
        i += args.batch
        done += args.batch
    elapsed = time.perf_counter() - start
    print(json.dumps({"side": "python", "model": meta["configName"], "batch": args.batch, "images": done,
                      "seconds": round(elapsed, 3), "images_per_s": round(done / elapsed, 3),
                      "threads": torch.get_num_threads()}), flush=True)


if __name__ == "__main__":
    main()
