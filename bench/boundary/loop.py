"""A bare call loop for bench/boundary/instructions.sh (the Python side of loop.ts): `calls` direct
calls of the no-op method (or of `nothing`), nothing else."""
import argparse

import torch


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--form", choices=["direct", "nothing"], default="direct")
    parser.add_argument("--calls", type=int, default=1000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    module = torch.jit.load(args.model).eval()
    x = torch.ones(1)
    with torch.inference_mode():
        if args.form == "direct":
            for _ in range(args.calls):
                module.noop(x)
        else:
            for _ in range(args.calls):
                module.nothing()


if __name__ == "__main__":
    main()
