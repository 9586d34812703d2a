"""Tables of what a folder prepared by scripts/get-data holds: pictures per package and kind, held-out
pictures, crops per kind, size on disk. docs/TRAINING.md quotes its output.

Usage: python tools/dove_data_summary.py [DIR]   (default: $DOVE_DATA or ~/.cache/dove-encoder/data)
"""
from __future__ import annotations

import json
import os
import sys

KINDS = ("photo", "texture", "artwork")


def summary(data: str) -> str:
    """Markdown tables of what a prepared folder holds (from its manifest.json and the files)."""
    with open(os.path.join(data, "manifest.json")) as f:
        m = json.load(f)
    pics = m["pictures"]
    lines = ["| package | version | photo | texture | artwork | held out | licences |", "|---|---|---|---|---|---|---|"]
    for p, version in sorted(m["packages"].items()):
        used = [e for e in pics if e["package"] == p]
        lics = sorted({e["licence"] for e in used})
        lines.append(f"| `{p}` | {version} | " + " | ".join(str(sum(1 for e in used if e["kind"] == k)) for k in KINDS)
                     + f" | {sum(1 for e in used if e['split'] == 'heldout')} | {', '.join(lics)} |")
    lines.append("| **all** | | " + " | ".join(str(sum(1 for e in pics if e["kind"] == k)) for k in KINDS)
                 + f" | {m['counts']['heldout']} | |")
    lines += ["", "| kind | train pictures | held-out pictures | train crops | held-out crops |", "|---|---|---|---|---|"]
    with open(os.path.join(data, f"crops-{m['cropSize']}", "index.json")) as f:
        index = json.load(f)
    for k in KINDS:
        c = m["countsByKind"][k]
        lines.append(f"| {k} | {c['train']} | {c['heldout']} | "
                     f"{sum(1 for r in index if r['kind'] == k and r['split'] == 'train')} | "
                     f"{sum(1 for r in index if r['kind'] == k and r['split'] == 'heldout')} |")
    sizes = {}
    for sub in sorted(os.listdir(data)):
        path = os.path.join(data, sub)
        if os.path.isdir(path):
            total = sum(os.path.getsize(os.path.join(dp, fn)) for dp, _, fns in os.walk(path) for fn in fns)
            sizes[sub] = total
    lines += ["", "Size on disk (file bytes): " + ", ".join(f"{k} {v / 1e6:.0f} MB" for k, v in sizes.items())
              + f"; total {sum(sizes.values()) / 1e9:.2f} GB"]
    return "\n".join(lines)


if __name__ == "__main__":
    default = os.environ.get("DOVE_DATA") or os.path.join(os.path.expanduser("~"), ".cache", "dove-encoder", "data")
    print(summary(os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else default)))
