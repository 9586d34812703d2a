"""Prepares the wallpaper photographs unpacked by scripts/get-data for training and evaluation.

Steps (all deterministic, so every machine gets the same split and the same crops):
1. Collect JPEG/PNG/WebP images from the unpacked packages (thumbnails and stub files skipped).
2. Group the same picture shipped at several sizes (by name: plasma's <Name>/contents/images*/WxH,
   `_WxH` suffixes elsewhere; then by a 64-bit difference hash of the picture) and keep the largest.
3. Group variants of one design (light/dark, recoloured) into a family so a family is never split
   between train and held-out, then hold out ~10% of the families, chosen by SHA-256 of their names.
4. Write each kept picture with its short side resized to 512 (JPEG q95) into train/ or heldout/, and
   multi-scale square crops (PNG) into crops-<S>/train and crops-<S>/heldout, with crops-<S>/index.json.
5. Record licences from the packages' copyright files (DEP-5 paragraphs, KDE metadata.json) in
   manifest.json and LICENSES.md; copy the full copyright files into licenses/.

Usage: python scripts/dove_data.py --data DIR [--crop-size 64] [--train-crops 48] [--heldout-crops 16]
"""
from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import math
import os
import random
import re
import shutil
import sys
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np
from PIL import Image

Image.MAX_IMAGE_PIXELS = 200_000_000  # 5640x3172 wallpapers are legitimate, not decompression bombs
EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")
SHORT_SIDE = 512
MIN_SIDE = 256
HELDOUT_FRACTION = 0.10
SAME_PICTURE_BITS = 5  # dHash distance (of 64) under which two files are one picture at two sizes
SAME_FAMILY_BITS = 12  # looser: recoloured / light-dark variants of one design


@dataclass
class Candidate:
    package: str
    path: str  # absolute
    rel: str  # path inside the package's tree
    width: int
    height: int
    key: str  # picture name (sizes of one picture share it)
    family: str  # design name (variants share it)
    dhash: int = 0
    thumb: Optional[np.ndarray] = None  # 16x16 RGB of the centre square, float 0..255


@dataclass
class Picture:
    name: str
    members: List[Candidate] = field(default_factory=list)

    @property
    def best(self) -> Candidate:
        return max(self.members, key=lambda c: (c.width * c.height, c.rel))


def log(msg: str) -> None:
    print(f"[dove] get-data: {msg}", file=sys.stderr, flush=True)


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()


def names_for(package: str, rel: str) -> Tuple[str, str]:
    """(picture key, family) from the file's place in the package."""
    parts = rel.split("/")
    stem = os.path.splitext(parts[-1])[0]
    if "wallpapers" in parts and "contents" in parts:  # KDE: wallpapers/<Name>/contents/images[_dark]/WxH
        name = parts[parts.index("contents") - 1]
        dark = "images_dark" in parts
        return f"{package}/{name}{'-dark' if dark else ''}", f"{package}/{name}"
    stem = re.sub(r"[_-]\d{3,5}x\d{3,5}$", "", stem)
    family = re.sub(r"-(l|d|dark|light)$", "", stem, flags=re.IGNORECASE)
    return f"{package}/{stem}", f"{package}/{family}"


def dhash(img: Image.Image) -> int:
    """64-bit difference hash of the centre square (robust to resizing, not to recolouring)."""
    w, h = img.size
    s = min(w, h)
    box = ((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)
    g = np.asarray(img.crop(box).convert("L").resize((9, 8), Image.Resampling.BOX), dtype=np.int16)
    bits = (g[:, 1:] > g[:, :-1]).flatten()
    return int("".join("1" if b else "0" for b in bits), 2)


def hamming(a: int, b: int) -> int:
    return bin(a ^ b).count("1")


def thumb(img: Image.Image) -> np.ndarray:
    w, h = img.size
    s = min(w, h)
    box = ((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)
    return np.asarray(img.crop(box).resize((16, 16), Image.Resampling.BOX), dtype=np.float32)


def same_picture(a: Candidate, b: Candidate) -> bool:
    """One picture at two sizes: same structure (dHash) and the same colours (thumbnail).

    dHash alone merges unrelated smooth gradients (their bits are noise), so colours must agree too."""
    assert a.thumb is not None and b.thumb is not None
    return hamming(a.dhash, b.dhash) <= SAME_PICTURE_BITS and float(np.abs(a.thumb - b.thumb).mean()) < 6.0


def same_design(a: Candidate, b: Candidate) -> bool:
    """Variants of one design (recoloured, light/dark): the luminance layouts correlate strongly."""
    assert a.thumb is not None and b.thumb is not None
    ga, gb = a.thumb.mean(axis=2).flatten(), b.thumb.mean(axis=2).flatten()
    if ga.std() < 8 or gb.std() < 8:
        return False  # near-flat thumbnails carry no layout to compare
    corr = float(np.corrcoef(ga, gb)[0, 1])
    return hamming(a.dhash, b.dhash) <= SAME_FAMILY_BITS and corr > 0.9


class UnionFind:
    def __init__(self, items: List[str]) -> None:
        self.parent = {i: i for i in items}

    def find(self, x: str) -> str:
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            # Deterministic root: the lexicographically smallest name names the group.
            lo, hi = sorted((ra, rb))
            self.parent[hi] = lo


def collect(raw: str) -> List[Candidate]:
    out: List[Candidate] = []
    for package in sorted(os.listdir(raw)):
        root = os.path.join(raw, package)
        if not os.path.isdir(root):
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for fn in sorted(filenames):
                if not fn.lower().endswith(EXTENSIONS) or fn.lower().startswith("screenshot."):
                    continue
                path = os.path.join(dirpath, fn)
                if os.path.islink(path) or os.path.getsize(path) < 4096:
                    continue  # stubs and links (gnome's vnc-*.webp are 180-byte placeholders)
                rel = os.path.relpath(path, root)
                try:
                    with Image.open(path) as im:
                        w, h = im.size  # before draft(), which shrinks JPEG decoding
                        im.draft("RGB", (1024, 1024))
                        if "A" in im.getbands() or "transparency" in im.info:
                            alpha = np.asarray(im.convert("RGBA").getchannel("A").resize((64, 64)))
                            if (alpha < 250).mean() > 0.01:
                                log(f"skipping {package}/{rel}: transparent overlay, not a picture")
                                continue
                        small = im.convert("RGB")
                        small.thumbnail((256, 256))
                except Exception as exc:  # unreadable file: skip it, say so
                    log(f"skipping {package}/{rel}: {exc}")
                    continue
                if min(w, h) < MIN_SIDE:
                    continue
                key, family = names_for(package, rel)
                c = Candidate(package, path, rel, w, h, key, family)
                c.dhash = dhash(small)
                c.thumb = thumb(small)
                out.append(c)
    return out


def group(cands: List[Candidate]) -> Tuple[List[Picture], Dict[str, str]]:
    keys = sorted({c.key for c in cands})
    same = UnionFind(keys)
    by_key: Dict[str, List[Candidate]] = {}
    for c in cands:
        by_key.setdefault(c.key, []).append(c)
    reps = {k: max(v, key=lambda c: c.width * c.height) for k, v in by_key.items()}
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            if same_picture(reps[a], reps[b]):
                same.union(a, b)
    pictures: Dict[str, Picture] = {}
    for c in cands:
        root = same.find(c.key)
        pictures.setdefault(root, Picture(root)).members.append(c)
    fam = UnionFind(sorted(pictures))
    fam_of_name: Dict[str, str] = {}
    for name, pic in pictures.items():
        for m in pic.members:
            if m.family in fam_of_name:
                fam.union(name, fam_of_name[m.family])
            else:
                fam_of_name[m.family] = name
    names = sorted(pictures)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if same_design(pictures[a].best, pictures[b].best):
                fam.union(a, b)
    family = {n: fam.find(n) for n in names}
    return [pictures[n] for n in names], family


def split(families: List[str]) -> Dict[str, str]:
    order = sorted(set(families), key=lambda f: hashlib.sha256(f.encode()).hexdigest())
    n_held = max(1, round(len(order) * HELDOUT_FRACTION))
    return {f: ("heldout" if i < n_held else "train") for i, f in enumerate(order)}


# ---------------------------------------------------------------------------------------------
# Licences
def parse_dep5(text: str) -> Optional[List[Tuple[List[str], str, str]]]:
    """[(file globs, copyright, licence)] of a machine-readable copyright file, else None."""
    text = text.strip()
    if not text.startswith("Format:"):
        return None
    paragraphs = []
    for block in re.split(r"\n\s*\n", text):
        fields: Dict[str, str] = {}
        current = None
        for line in block.splitlines():
            if line[:1] in (" ", "\t") and current:
                fields[current] += "\n" + line.strip()
            elif ":" in line:
                current, value = line.split(":", 1)
                fields[current] = value.strip()
        if "Files" in fields and "License" in fields:
            globs = fields["Files"].split()
            lic = fields["License"].splitlines()[0].strip()
            paragraphs.append((globs, " ".join(fields.get("Copyright", "").split()), lic))
    return paragraphs


def licence_for(c: Candidate, raw: str) -> Tuple[str, str]:
    """(licence, copyright holders) for one file, from its package's metadata."""
    root = os.path.join(raw, c.package)
    if c.package == "plasma-workspace-wallpapers":
        parts = c.rel.split("/")
        meta = os.path.join(root, *parts[: parts.index("contents")], "metadata.json")
        if os.path.exists(meta):
            with open(meta, encoding="utf-8") as f:
                plugin = json.load(f).get("KPlugin", {})
            authors = ", ".join(a.get("Name", "") for a in plugin.get("Authors", []))
            if plugin.get("License"):
                return plugin["License"], authors
    copyright_file = os.path.join(root, "usr/share/doc", c.package, "copyright")
    with open(copyright_file, encoding="utf-8", errors="replace") as f:
        text = f.read()
    paragraphs = parse_dep5(text)
    if paragraphs is None:
        if c.package == "gnome-backgrounds":
            return ("GPL-2+ (package) / CC-BY-SA-3.0 (images, per its copyright file)",
                    "GNOME backgrounds authors (Jakub Steiner et al.)")
        return "see copyright file", ""
    found = ("see copyright file", "")
    for globs, holders, lic in paragraphs:  # DEP-5: the last matching paragraph wins
        if any(g != "*" and g.startswith("debian/") for g in globs):
            continue
        for g in globs:
            if g == "*" or fnmatch.fnmatch(c.rel, "*/" + g) or fnmatch.fnmatch(c.rel, g):
                found = (lic, holders)
    return found


def package_version(data: str, package: str) -> str:
    for fn in os.listdir(os.path.join(data, "debs")):
        if fn.startswith(package + "_"):
            return fn.split("_")[1].replace("%3a", ":")
    return "?"


# ---------------------------------------------------------------------------------------------
def resized(path: str) -> Image.Image:
    with Image.open(path) as im:
        im.draft("RGB", (SHORT_SIDE * 2, SHORT_SIDE * 2))  # JPEG: decode at a reduced scale
        img = im.convert("RGB")
    w, h = img.size
    scale = SHORT_SIDE / min(w, h)
    if scale < 1:
        img = img.resize((max(SHORT_SIDE, round(w * scale)), max(SHORT_SIDE, round(h * scale))),
                         Image.Resampling.LANCZOS, reducing_gap=3.0)
    return img


def detail(img: Image.Image) -> float:
    """Mean absolute luminance gradient (0..255): a simple, monotone measure of visual detail."""
    g = np.asarray(img.convert("L"), dtype=np.float32)
    return float((np.abs(np.diff(g, axis=0)).mean() + np.abs(np.diff(g, axis=1)).mean()) / 2)


def crops(img: Image.Image, size: int, count: int, seed: str) -> List[Tuple[Image.Image, dict]]:
    rng = random.Random(int(hashlib.sha256(seed.encode()).hexdigest()[:16], 16))
    w, h = img.size
    sides = [s for s in (size, int(size * 1.5), size * 2, size * 3, size * 4, size * 6, size * 8)
             if s <= min(w, h)]
    out = []
    for i in range(count):
        s = sides[i % len(sides)] if i < len(sides) else rng.choice(sides)
        x, y = rng.randint(0, w - s), rng.randint(0, h - s)
        crop = img.crop((x, y, x + s, y + s)).resize((size, size), Image.Resampling.LANCZOS)
        out.append((crop, {"x": x, "y": y, "side": s}))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--crop-size", type=int, default=64)
    ap.add_argument("--train-crops", type=int, default=48, help="crops per training picture")
    ap.add_argument("--heldout-crops", type=int, default=16, help="crops per held-out picture")
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args()
    data = os.path.abspath(args.data)
    raw = os.path.join(data, "wallpapers-raw")

    with open(__file__, "rb") as f:
        stamp_text = hashlib.sha256(f.read()).hexdigest()[:16] + f" {args.crop_size} {args.train_crops} {args.heldout_crops} "
    stamp_text += " ".join(sorted(os.listdir(os.path.join(data, "debs"))))
    stamp = os.path.join(data, ".prepared")
    crop_dir = os.path.join(data, f"crops-{args.crop_size}")
    if not args.force and os.path.exists(stamp) and open(stamp).read() == stamp_text:
        with open(os.path.join(data, "manifest.json")) as f:
            m = json.load(f)
        log(f"up to date: {m['counts']['train']} train / {m['counts']['heldout']} held-out pictures, "
            f"crops in {crop_dir}")
        print(data)
        return

    cands = collect(raw)
    pictures, family = group(cands)
    splits = split(list(family.values()))
    log(f"{len(cands)} image files -> {len(pictures)} unique pictures in {len(set(family.values()))} families")

    for sub in ("train", "heldout", crop_dir):
        shutil.rmtree(os.path.join(data, sub), ignore_errors=True)
    for sub in ("train", "heldout", os.path.join(crop_dir, "train"), os.path.join(crop_dir, "heldout"), "licenses"):
        os.makedirs(os.path.join(data, sub), exist_ok=True)

    entries, crop_index = [], []
    for pic in pictures:
        best = pic.best
        which = splits[family[pic.name]]
        out_name = slug(pic.name)
        img = resized(best.path)
        img.save(os.path.join(data, which, out_name + ".jpg"), quality=95)
        lic, holders = licence_for(best, raw)
        count = args.train_crops if which == "train" else args.heldout_crops
        for i, (crop, info) in enumerate(crops(img, args.crop_size, count, out_name)):
            fn = f"{out_name}-{i:03d}.png"
            crop.save(os.path.join(crop_dir, which, fn))
            crop_index.append({"file": f"{which}/{fn}", "split": which, "picture": out_name,
                               "detail": round(detail(crop), 3), **info})
        entries.append({
            "name": out_name, "split": which, "family": slug(family[pic.name]), "package": best.package,
            "source": best.rel, "width": best.width, "height": best.height,
            "duplicatesDropped": sorted(m.rel for m in pic.members if m is not best),
            "licence": lic, "copyright": holders,
        })
        log(f"{which:7s} {out_name} ({best.width}x{best.height}, {lic})")

    counts = {s: sum(1 for e in entries if e["split"] == s) for s in ("train", "heldout")}
    packages = sorted({c.package for c in cands})
    manifest = {
        "packages": {p: package_version(data, p) for p in packages},
        "shortSide": SHORT_SIDE, "cropSize": args.crop_size, "counts": counts,
        "crops": {s: sum(1 for c in crop_index if c["split"] == s) for s in ("train", "heldout")},
        "pictures": entries,
    }
    with open(os.path.join(data, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    with open(os.path.join(crop_dir, "index.json"), "w") as f:
        json.dump(crop_index, f, indent=0)

    lines = ["# Licences of the wallpaper data", "",
             "Taken from the Debian packages' copyright files (copied in full under licenses/).", ""]
    for p in packages:
        shutil.copyfile(os.path.join(raw, p, "usr/share/doc", p, "copyright"), os.path.join(data, "licenses", p + ".copyright"))
        used = [e for e in entries if e["package"] == p]
        tally: Dict[str, int] = {}
        for e in used:
            tally[e["licence"]] = tally.get(e["licence"], 0) + 1
        lines.append(f"## {p} {manifest['packages'][p]}: {len(used)} pictures")
        lines += [f"- {lic}: {n}" for lic, n in sorted(tally.items())]
        lines.append("")
    lines += ["## Pictures", "", "| picture | split | source | licence | copyright |", "|---|---|---|---|---|"]
    lines += [f"| {e['name']} | {e['split']} | {e['package']}: {e['source']} | {e['licence']} | {e['copyright']} |" for e in entries]
    with open(os.path.join(data, "LICENSES.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(stamp, "w") as f:
        f.write(stamp_text)
    log(f"{counts['train']} train / {counts['heldout']} held-out pictures; "
        f"{manifest['crops']['train']} / {manifest['crops']['heldout']} crops of {args.crop_size}px in {crop_dir}")
    print(data)


if __name__ == "__main__":
    main()
