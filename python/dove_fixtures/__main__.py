"""Writes the seeded test fixtures: python -m dove_fixtures --out DIR [--only core,train]."""
import argparse
import importlib
import os
import time

# Every fixture area, in the order they are written; each is the module dove_fixtures.<area> with a
# generate(out_dir). A new area is added here.
AREAS = ("api", "compiled", "core", "eval", "hardening", "hostile", "model", "optim", "train")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m dove_fixtures", description=__doc__)
    parser.add_argument("--out", required=True)
    parser.add_argument("--only", default=None, help=f"comma-separated areas out of {','.join(AREAS)}")
    args = parser.parse_args()
    only = args.only.split(",") if args.only else list(AREAS)
    unknown = [a for a in only if a not in AREAS]
    if unknown:
        parser.error(f"unknown fixture area(s) {','.join(unknown)}; expected some of {','.join(AREAS)}")
    os.makedirs(args.out, exist_ok=True)
    for area in AREAS:
        if area not in only:
            continue
        start = time.time()
        importlib.import_module(f"dove_fixtures.{area}").generate(os.path.abspath(args.out))
        print(f"[dove] fixtures: {area} in {time.time() - start:.1f}s", flush=True)


if __name__ == "__main__":
    main()
