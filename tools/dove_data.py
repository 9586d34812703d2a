"""Fetches and prepares real photographs, photographic textures and artwork from Debian packages for
training and evaluating the embedded model. scripts/get-data runs it; what is taken from which
package, and why, is in scripts/dove_data_sources.py.

Steps (all deterministic, so every machine gets the same pictures, split and crops):
1. fetch: `apt-get download` each package once, unpack only the paths its source lists (dpkg-deb
   --fsys-tarfile | tar), take the listed members out of game archives (.pk3), drop the .deb.
2. collect: keep the files a rule names; transparent pictures are cropped to their opaque block,
   composited on grey or skipped; game textures lose normal/gloss/mask maps and flat fills; a texture
   that repeats itself is cut to one tile; anything under 256 px on its short side is dropped.
3. group: sizes of one picture and near-duplicates become one picture (the largest kept); variants
   of one design (recoloured, light/dark, slices of one panorama) become one family.
4. split: ~10% of the families, chosen by SHA-256 of their names, are held out, then more families
   with photographs (in the same order) until at least 25 photographs are held out. A family is never
   split; composited cut-outs always train.
5. write: each picture at short side 768 (JPEG q95) into train/ or heldout/; multi-scale S×S crops
   (PNG, side log-uniform between 12% and 100% of the short side) into crops-<S>/train and
   crops-<S>/heldout with crops-<S>/index.json; one whole-picture S×S view per held-out picture into
   eval-<S>/<kind>-<name>.png; contact sheets per kind into sheets/.
6. licences: each picture's licence and copyright from its package's copyright file (DEP-5 paragraph
   matching its path, else the package's default; KDE metadata.json; Stellarium scenery .ini files);
   pictures under an unclear or non-free licence are skipped and logged. manifest.json, LICENSES.md
   and licenses/<package>.copyright record them.

Usage: python scripts/dove_data.py --data DIR [--crop-size 64] [--train-crops 150] [--heldout-crops 8]
                                   [--jobs 2] [--force]
"""
from __future__ import annotations

import argparse
import fnmatch
import functools
import glob
import hashlib
import json
import math
import multiprocessing
import os
import random
import re
import shutil
import subprocess
import sys
import time
import zipfile
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw, ImageOps

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dove_data_sources import NOT_USED, SOURCES, Rule  # noqa: E402

Image.MAX_IMAGE_PIXELS = 200_000_000  # 5640x3172 wallpapers are legitimate, not decompression bombs
EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".tga", ".ppm")
SHORT_SIDE = 768
MIN_SIDE = 256
HELDOUT_FRACTION = 0.10
MIN_HELDOUT_PHOTOS = 25
CROP_MIN_FRACTION = 0.12  # smallest crop side, as a fraction of the picture's short side
# Photographic textures have grain everywhere; drawings, signs, UV atlases and renders have flat areas.
# Share of pixels (on a <=256 px thumbnail) that differ from both neighbours by at most 2 levels; the
# limit was read off a sheet of the candidate textures sorted by it.
FLAT_AREA_LIMIT = 0.25
SAME_PICTURE_BITS = 5  # dHash distance (of 64) under which two files are one picture at two sizes
SAME_FAMILY_BITS = 12  # looser: recoloured / light-dark variants of one design
GREY = (128, 128, 128)
KINDS = ("photo", "texture", "artwork")
# Licences under which a picture may be modified and redistributed (DEP-5 short names, lower case,
# compared by prefix). Anything else (NC, ND, custom, unstated) is skipped.
FREE_LICENCES = ("gpl", "lgpl", "agpl", "cc-by", "cc0", "public-domain", "expat", "mit", "bsd",
                 "apache-2.0", "zlib", "isc", "ofl", "artistic", "free art", "fal")
NON_FREE_MARKERS = ("-nc", "-nd", "noncommercial", "noderivatives", "custom", "non-free")
# Classic test images and scikit-image's bundled pictures (its evaluation set) never enter the data.
TEST_IMAGE_NAMES = re.compile(r"(^|[^a-z])(lena|lenna|baboon|mandrill|peppers|barbara|cameraman|goldhill|"
                              r"zelda|tiffany|sailboat|airplane|astronaut|chelsea|coffee|hubble|klimt)([^a-z]|$)")
# Game texture maps that are not pictures: normal, gloss, specular, height, masks, UI.
MAP_NAMES = re.compile(r"(^|[_\-. ])(nm|n|norm|normal|normals|normalmap|bump|height|heightmap|disp|gloss|glossy|"
                       r"spec|specular|ao|occlusion|rough|roughness|mask|colormask|alpha|emit|emissive|illum|"
                       r"lightmap|shadow|icon|logo|font|button|cursor|preview|splash|particle|spark|decal|"
                       r"atlas|ibl|envmap|gm|sm|rm|hm|glow)($|[_\-. 0-9])")


def log(msg: str) -> None:
    print(f"[dove] get-data: {msg}", file=sys.stderr, flush=True)


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()


def source_path(path: str) -> str:
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), path)


# ---------------------------------------------------------------------------------------------
# 1. Fetch
def extract_stamp(package: str, version: str) -> str:
    """What an unpacked tree was made from: the version and the package's source entry (its rules
    decide which files are pruned, so a changed rule unpacks again)."""
    src = SOURCES[package]
    rules = hashlib.sha256(repr(src).encode()).hexdigest()[:16]
    return json.dumps({"version": version, "extract": src.extract, "archives": src.archives, "rules": rules},
                      sort_keys=True)


def read_stamp(raw: str, package: str) -> Optional[dict]:
    path = os.path.join(raw, package, ".unpacked")
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except ValueError:
        return None


def fetch(data: str) -> Dict[str, str]:
    """Download and unpack what is missing; returns {package: version}."""
    debs, raw = os.path.join(data, "debs"), os.path.join(data, "raw")
    os.makedirs(debs, exist_ok=True)
    os.makedirs(raw, exist_ok=True)
    for stale in ("wallpapers-raw",):  # the layout before raw/ existed
        shutil.rmtree(os.path.join(data, stale), ignore_errors=True)
    for name in os.listdir(raw):
        if name not in SOURCES:
            shutil.rmtree(os.path.join(raw, name), ignore_errors=True)

    def needs(p: str) -> bool:
        st = read_stamp(raw, p)
        if st is None:
            return True
        return extract_stamp(p, st["version"]) != json.dumps(st, sort_keys=True)

    todo = [p for p in SOURCES if needs(p)]
    missing = [p for p in todo if not glob.glob(os.path.join(debs, f"{p}_*.deb"))]
    if missing:
        log(f"downloading {' '.join(missing)} into {debs}")
        if subprocess.run(["apt-get", "download", *missing], cwd=debs, stdout=sys.stderr).returncode != 0:
            raise SystemExit(f"[dove] error: apt-get download {' '.join(missing)} failed. Refresh the package lists "
                             f"(sudo apt-get update) and check that these packages exist: apt-cache policy {' '.join(missing)}")
    for p in todo:
        deb = sorted(glob.glob(os.path.join(debs, f"{p}_*.deb")))[-1]
        version = subprocess.run(["dpkg-deb", "-f", deb, "Version"], check=True, capture_output=True,
                                 text=True).stdout.strip()
        unpack(deb, os.path.join(raw, p), p)
        with open(os.path.join(raw, p, ".unpacked"), "w") as f:
            f.write(extract_stamp(p, version))
        os.remove(deb)  # the unpacked paths are all that is used; the .deb would double the disk use
    return {p: read_stamp(raw, p)["version"] for p in SOURCES}  # type: ignore[index]


def unpack(deb: str, dest: str, package: str) -> None:
    src = SOURCES[package]
    log(f"unpacking {package} ({', '.join(g for g in src.extract if 'doc' not in g)})")
    shutil.rmtree(dest, ignore_errors=True)
    os.makedirs(dest)
    tarball = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", deb], stdout=subprocess.PIPE)
    tar = subprocess.run(["tar", "-x", "-C", dest, "--wildcards", *src.extract], stdin=tarball.stdout)
    assert tarball.stdout is not None
    tarball.stdout.close()
    if tarball.wait() != 0 or tar.returncode != 0:
        raise SystemExit(f"[dove] error: could not unpack {deb} ({package})")
    for archive in glob.glob(os.path.join(dest, "**", "*.pk3"), recursive=True):
        with zipfile.ZipFile(archive) as z:
            for member in z.namelist():
                if any(fnmatch.fnmatch(member, g) for g in src.archives) and not member.endswith("/"):
                    z.extract(member, archive + ".d")
        os.remove(archive)
    prune(dest, package)


def prune(root: str, package: str) -> None:
    """Deletes unpacked files no rule could keep (unnamed, skipped, map names, under MIN_SIDE), so the
    tree holds only candidates and the copyright file."""
    removed = kept = 0
    for dirpath, _, filenames in os.walk(root):
        for fn in filenames:
            path = os.path.join(dirpath, fn)
            rel = os.path.relpath(path, root)
            if rel.startswith("usr/share/doc/"):
                continue
            rule = rule_for(package, rel)
            keep = fn.lower().endswith(EXTENSIONS) and rule is not None and rule.kind != "skip"
            if keep and rule is not None and rule.auto:
                keep = not map_name(os.path.splitext(fn)[0])
            if keep:
                try:
                    with Image.open(path) as im:
                        keep = min(im.size) >= MIN_SIDE
                except Exception:
                    keep = False
            if keep:
                kept += 1
            else:
                os.remove(path)
                removed += 1
    log(f"{package}: kept {kept} candidate files, removed {removed} that no rule keeps (unnamed, skipped by a rule, "
        f"named like a map, or under {MIN_SIDE} px)")


# ---------------------------------------------------------------------------------------------
# 2. Collect
@dataclass
class Candidate:
    package: str
    rel: str  # path inside the package's tree
    kind: str
    alpha: str  # skip | crop | composite
    width: int  # of the file
    height: int
    box: Tuple[int, int, int, int]  # the part kept (opaque block or one tile), in file pixels
    key: str  # picture name (sizes of one picture share it)
    family: str  # design name (variants share it)
    composited: bool = False
    dhash: int = 0
    thumb: Optional[np.ndarray] = field(default=None, repr=False)  # 16x16 RGB of the centre square

    @property
    def size(self) -> Tuple[int, int]:
        return self.box[2] - self.box[0], self.box[3] - self.box[1]


def rule_for(package: str, rel: str) -> Optional[Rule]:
    for rule in SOURCES[package].rules:
        if fnmatch.fnmatch(rel, rule.glob):
            return rule
    return None


def names_for(package: str, rel: str) -> Tuple[str, str]:
    """(picture key, family) from the file's place in the package."""
    parts = rel.split("/")
    stem = os.path.splitext(parts[-1])[0]
    if "wallpapers" in parts and "contents" in parts:  # KDE: wallpapers/<Name>/contents/images[_dark]/WxH
        name = parts[parts.index("contents") - 1]
        dark = "images_dark" in parts
        return f"{package}/{name}{'-dark' if dark else ''}", f"{package}/{name}"
    if "landscapes" in parts:  # Stellarium: the slices of one panorama are one design
        return f"{package}/{stem}", f"{package}/{parts[parts.index('landscapes') + 1]}"
    if "env" in parts and package == "extremetuxracer-data":  # the faces of one skybox
        return f"{package}/{'-'.join(parts[-3:-1])}-{stem}", f"{package}/{'-'.join(parts[-3:-1])}"
    if "grub" in parts:  # desktop-base: <theme>/grub/grub-16x9.png
        return f"{package}/{parts[-3]}", f"{package}/{parts[-3]}"
    if package == "supertuxkart-data" and "tracks" in parts:  # textures of one track share a name space
        stem = f"{parts[parts.index('tracks') + 1]}-{stem}"
    stem = re.sub(r"[_-]\d{3,5}x\d{3,5}(_portrait)?$", "", stem, flags=re.IGNORECASE)
    family = re.sub(r"-(l|d|dark|light)$", "", stem, flags=re.IGNORECASE)
    return f"{package}/{stem}", f"{package}/{family}"


def load(path: str, draft: Optional[int] = None) -> Image.Image:
    with Image.open(path) as im:
        if draft:
            im.draft("RGB", (draft, draft))
        im.load()
        return ImageOps.exif_transpose(im)


def alpha_of(im: Image.Image) -> Optional[np.ndarray]:
    if "A" in im.getbands() or "transparency" in im.info:
        a = np.asarray(im.convert("RGBA").getchannel("A"))
        if (a < 250).mean() > 0.01:
            return a
    return None


def longest_run(flags: np.ndarray) -> Tuple[int, int]:
    """[start, end) of the longest run of True (the first one on ties); (0, 0) if none."""
    best, start = (0, 0), None
    for i, f in enumerate(list(flags) + [False]):
        if f and start is None:
            start = i
        elif not f and start is not None:
            if i - start > best[1] - best[0]:
                best = (start, i)
            start = None
    return best


def opaque_block(alpha: np.ndarray) -> Optional[Tuple[int, int, int, int]]:
    """A fully opaque box: the longest run of rows that are at least 99% opaque, its top rows dropped
    until one is wholly opaque (a panorama's ragged horizon), then the longest run of columns that are
    opaque all the way down."""
    solid = alpha >= 250
    r0, r1 = longest_run(solid.mean(axis=1) > 0.99)
    while r0 < r1 and not solid[r0].all():
        r0 += 1
    if r1 == r0:
        return None
    c0, c1 = longest_run(solid[r0:r1].all(axis=0))
    if c1 == c0:
        return None
    return c0, r0, c1, r1


def tile_period(g: np.ndarray, axis: int) -> int:
    """The smallest period (n/2, n/3, n/4) along axis at which the picture repeats itself, else n."""
    n = g.shape[axis]
    for k in (4, 3, 2):
        if n % k:
            continue
        p = n // k
        a = g[:, : n - p] if axis == 1 else g[: n - p]
        b = g[:, p:] if axis == 1 else g[p:]
        if float(np.abs(a - b).mean()) < 2.0:
            return p
    return n


def map_name(stem: str) -> bool:
    """Named like a normal/gloss/mask map or a UI element (snake_case or camelCase words)."""
    return bool(MAP_NAMES.search(stem.lower()) or MAP_NAMES.search(re.sub(r"(?<=[a-z])(?=[A-Z])", "_", stem).lower()))


def texture_reject(rgb: np.ndarray) -> Optional[str]:
    """Why a game texture is not a picture (normal map, colourless map, flat fill), else None."""
    mean = rgb.reshape(-1, 3).mean(axis=0)
    if mean[2] > 170 and 80 < mean[0] < 180 and 80 < mean[1] < 180 and mean[2] > mean[0] + 40:
        return "normal map (by colour)"
    if float((rgb.max(axis=2) - rgb.min(axis=2)).mean()) < 6:
        return "colourless map"
    if float(rgb.mean(axis=2).std()) < 10:
        return "flat fill"
    a = rgb.astype(np.int16)
    dx = np.abs(np.diff(a, axis=1)).max(axis=2)[:-1, :]
    dy = np.abs(np.diff(a, axis=0)).max(axis=2)[:, :-1]
    if float(((dx <= 2) & (dy <= 2)).mean()) > FLAT_AREA_LIMIT:
        return "large flat areas (drawing, sign, atlas or render)"
    return None


def dhash(img: Image.Image) -> int:
    """64-bit difference hash of the centre square (robust to resizing, not to recolouring)."""
    w, h = img.size
    s = min(w, h)
    box = ((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)
    g = np.asarray(img.crop(box).convert("L").resize((9, 8), Image.Resampling.BOX), dtype=np.int16)
    bits = (g[:, 1:] > g[:, :-1]).flatten()
    return int("".join("1" if b else "0" for b in bits), 2)


def thumb(img: Image.Image) -> np.ndarray:
    w, h = img.size
    s = min(w, h)
    box = ((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)
    return np.asarray(img.crop(box).resize((16, 16), Image.Resampling.BOX), dtype=np.float32)


def apply_alpha(im: Image.Image, policy: str) -> Image.Image:
    """RGB picture; a transparent one is composited on neutral grey (policy composite)."""
    if policy == "composite" and ("A" in im.getbands() or "transparency" in im.info):
        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, GREY + (255,))
        bg.alpha_composite(rgba)
        return bg.convert("RGB")
    return im.convert("RGB")


def inspect(package: str, root: str, rel: str, rule: Rule) -> Tuple[Optional[Candidate], str]:
    """A candidate for one file, or None and the reason it is not kept."""
    stem = os.path.splitext(os.path.basename(rel))[0]
    if TEST_IMAGE_NAMES.search(stem.lower()):
        return None, "named like a classic test image"
    if rule.auto and map_name(stem):
        return None, "map or UI texture (by name)"
    try:
        with Image.open(os.path.join(root, rel)) as head:
            w, h = head.size  # cropping only shrinks a picture: too small now is too small later
        if min(w, h) < MIN_SIDE:
            return None, f"under {MIN_SIDE} px"
        im = load(os.path.join(root, rel))
    except Exception as exc:  # unreadable file: skip it, say so
        return None, f"unreadable ({exc})"
    w, h = im.size
    box = (0, 0, w, h)
    composited = False
    a = alpha_of(im)
    if a is not None:
        if rule.alpha == "skip":
            return None, "transparent"
        if rule.alpha == "crop":
            block = opaque_block(a)
            if block is None:
                return None, "no opaque block"
            box = block
        else:
            composited = True
    rgb_img = apply_alpha(im, rule.alpha).crop(box)
    if rule.auto:  # textures (photographs and wallpapers are not tiled) that repeat: one tile
        g = np.asarray(rgb_img.convert("L"), dtype=np.float32)
        px, py = tile_period(g, 1), tile_period(g, 0)
        if (px, py) != g.shape[::-1]:
            box = (box[0], box[1], box[0] + px, box[1] + py)
            rgb_img = rgb_img.crop((0, 0, px, py))
    if min(rgb_img.size) < MIN_SIDE:
        return None, f"under {MIN_SIDE} px once {'cut to one tile' if a is None else 'cropped to its opaque block'}"
    small = rgb_img.copy()
    small.thumbnail((256, 256))
    if rule.auto:
        why = texture_reject(np.asarray(small, dtype=np.float32))
        if why:
            return None, why
    key, family = names_for(package, rel)
    c = Candidate(package, rel, rule.kind, rule.alpha, w, h, box, key, family, composited)
    c.dhash = dhash(small)
    c.thumb = thumb(small)
    return c, ""


def inspect_job(job: Tuple[str, str, str, Rule]) -> Tuple[Optional[Candidate], str]:
    return inspect(*job)


def collect(raw: str, jobs: int) -> Tuple[List[Candidate], Dict[str, Dict[str, int]]]:
    """Candidates from every file a rule names (inspected in parallel), and why the others were not kept."""
    out: List[Candidate] = []
    skipped: Dict[str, Dict[str, int]] = {}
    work: List[Tuple[str, str, str, Rule]] = []

    def skip(package: str, reason: str) -> None:
        tally = skipped.setdefault(package, {})
        tally[reason] = tally.get(reason, 0) + 1

    for package in sorted(SOURCES):
        root = os.path.join(raw, package)
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for fn in sorted(filenames):
                path = os.path.join(dirpath, fn)
                if not fn.lower().endswith(EXTENSIONS) or os.path.islink(path) or os.path.getsize(path) < 4096:
                    continue  # stubs and links (gnome's vnc-*.webp are 180-byte placeholders)
                rel = os.path.relpath(path, root)
                rule = rule_for(package, rel)
                if rel.startswith("usr/share/doc/"):
                    continue
                if rule is None:
                    skip(package, "no rule names it")
                elif rule.kind == "skip":
                    skip(package, rule.why)
                else:
                    work.append((package, root, rel, rule))
    with multiprocessing.Pool(jobs) as pool:
        results = pool.map(inspect_job, work, chunksize=8)
    for (package, _, _, _), (cand, reason) in zip(work, results):
        if cand is None:
            skip(package, reason)
        else:
            out.append(cand)
    return out, skipped


# ---------------------------------------------------------------------------------------------
# 3. Group
def popcount_matrix(hashes: np.ndarray) -> np.ndarray:
    x = hashes[:, None] ^ hashes[None, :]
    bits = np.unpackbits(x.view(np.uint8).reshape(len(hashes), len(hashes), 8), axis=2)
    return bits.sum(axis=2)


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
            lo, hi = sorted((ra, rb))  # deterministic root: the smallest name names the group
            self.parent[hi] = lo


@dataclass
class Picture:
    name: str
    members: List[Candidate] = field(default_factory=list)

    @property
    def best(self) -> Candidate:
        return max(self.members, key=lambda c: (c.size[0] * c.size[1], c.rel))


def group(cands: List[Candidate]) -> Tuple[List[Picture], Dict[str, str]]:
    """Pictures (sizes and near-duplicates of one picture merged) and their families."""
    by_key: Dict[str, List[Candidate]] = {}
    for c in cands:
        by_key.setdefault(c.key, []).append(c)
    keys = sorted(by_key)
    reps = [max(by_key[k], key=lambda c: c.size[0] * c.size[1]) for k in keys]
    hashes = np.array([r.dhash for r in reps], dtype=np.uint64)
    thumbs = np.stack([r.thumb for r in reps]).reshape(len(reps), -1)  # type: ignore[misc]
    dist = popcount_matrix(hashes)
    same = UnionFind(keys)
    for i in range(len(keys)):
        close = np.where(dist[i, i + 1:] <= SAME_PICTURE_BITS)[0] + i + 1
        for j in close:  # one picture at two sizes: same structure and the same colours
            if float(np.abs(thumbs[i] - thumbs[j]).mean()) < 6.0:
                same.union(keys[i], keys[j])
    pictures: Dict[str, Picture] = {}
    for c in cands:
        root = same.find(c.key)
        pictures.setdefault(root, Picture(root)).members.append(c)
    names = sorted(pictures)
    fam = UnionFind(names)
    first_of_family: Dict[str, str] = {}
    for name in names:
        for m in pictures[name].members:
            if m.family in first_of_family:
                fam.union(name, first_of_family[m.family])
            else:
                first_of_family[m.family] = name
    # Variants of one design: luminance layouts correlate strongly and the dHashes are close.
    best = [pictures[n].best for n in names]
    lum = np.stack([b.thumb.mean(axis=2).flatten() for b in best])  # type: ignore[union-attr]
    std = lum.std(axis=1)
    z = (lum - lum.mean(axis=1, keepdims=True)) / np.maximum(std, 1e-6)[:, None]
    corr = z @ z.T / lum.shape[1]
    fdist = popcount_matrix(np.array([b.dhash for b in best], dtype=np.uint64))
    ok = std >= 8  # near-flat thumbnails carry no layout to compare
    for i in range(len(names)):
        if not ok[i]:
            continue
        for j in np.where((fdist[i, i + 1:] <= SAME_FAMILY_BITS) & (corr[i, i + 1:] > 0.9) & ok[i + 1:])[0] + i + 1:
            fam.union(names[i], names[j])
    family = {n: fam.find(n) for n in names}
    return [pictures[n] for n in names], family


# ---------------------------------------------------------------------------------------------
# 4. Split
def split(pictures: List[Picture], family: Dict[str, str]) -> Dict[str, str]:
    """{family: split}: ~10% of families by SHA-256 order, then more with photos until enough photos."""
    members: Dict[str, List[Picture]] = {}
    for p in pictures:
        members.setdefault(family[p.name], []).append(p)
    order = sorted(members, key=lambda f: hashlib.sha256(f.encode()).hexdigest())
    # Composited cut-outs sit on a flat grey the evaluation never shows: they always train.
    eligible = [f for f in order if not any(p.best.composited for p in members[f])]
    n_held = max(1, round(len(order) * HELDOUT_FRACTION))
    held = set(eligible[:n_held])

    def photos_held() -> int:
        return sum(1 for f in held for p in members[f] if p.best.kind == "photo")

    for f in eligible[n_held:]:
        if photos_held() >= MIN_HELDOUT_PHOTOS:
            break
        if any(p.best.kind == "photo" for p in members[f]):
            held.add(f)
    return {f: ("heldout" if f in held else "train") for f in order}


# ---------------------------------------------------------------------------------------------
# 5. Write
def prepared(c: Candidate, raw: str) -> Image.Image:
    """The kept part of the file as RGB, short side resized to SHORT_SIDE (never enlarged)."""
    im = load(os.path.join(raw, c.package, c.rel))
    img = apply_alpha(im, c.alpha).crop(c.box)
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
    """count square crops, side log-uniform in [max(size, 12% of short side), short side], resized to size."""
    rng = random.Random(int(hashlib.sha256(seed.encode()).hexdigest()[:16], 16))
    w, h = img.size
    short = min(w, h)
    lo = max(size, CROP_MIN_FRACTION * short)
    out = []
    for _ in range(count):
        s = min(short, int(round(math.exp(rng.uniform(math.log(lo), math.log(short))))))
        x, y = rng.randint(0, w - s), rng.randint(0, h - s)
        crop = img.crop((x, y, x + s, y + s)).resize((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0)
        out.append((crop, {"x": x, "y": y, "side": s}))
    return out


def crop_count(size: Tuple[int, int], most: int) -> int:
    """Crops in proportion to the picture's area (a full 768×768 or larger picture gets `most`), at least
    most/8: a 256-px texture holds far fewer distinct views than a wallpaper."""
    share = min(1.0, size[0] * size[1] / (SHORT_SIDE * SHORT_SIDE))
    return max(1, math.ceil(most / 8), round(most * share))


def whole_view(img: Image.Image, size: int) -> Image.Image:
    """Short side resized to size (Lanczos), centre crop: what the model card evaluates."""
    w, h = img.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    small = img.resize((nw, nh), Image.Resampling.LANCZOS, reducing_gap=3.0)
    x, y = (nw - size) // 2, (nh - size) // 2
    return small.crop((x, y, x + size, y + size))


@dataclass(frozen=True)
class Job:
    cand: Candidate
    name: str
    split: str
    count: int
    crop_size: int
    data: str
    crop_dir: str


def write_picture(job: Job) -> Tuple[List[dict], Tuple[int, int], np.ndarray]:
    """Writes one picture, its crops and (held out) its whole view; returns crop records, size, thumbnail."""
    raw = os.path.join(job.data, "raw")
    img = prepared(job.cand, raw)
    img.save(os.path.join(job.data, job.split, job.name + ".jpg"), quality=95)
    records = []
    for i, (crop, info) in enumerate(crops(img, job.crop_size, crop_count(img.size, job.count), job.name)):
        fn = f"{job.name}-{i:03d}.png"
        crop.save(os.path.join(job.crop_dir, job.split, fn), compress_level=6)
        records.append({"file": f"{job.split}/{fn}", "split": job.split, "picture": job.name, "kind": job.cand.kind,
                        "detail": round(detail(crop), 3), **info})
    if job.split == "heldout":
        view = whole_view(img, job.crop_size)
        view.save(os.path.join(job.data, f"eval-{job.crop_size}", f"{job.cand.kind}-{job.name}.png"))
    t = img.copy()
    t.thumbnail((160, 160))
    return records, img.size, np.asarray(t)


def contact_sheets(data: str, entries: List[dict], thumbs: List[np.ndarray]) -> List[str]:
    """sheets/<kind>[-N].png: every kept picture, held-out ones framed in red, 12 to a row."""
    out_dir = os.path.join(data, "sheets")
    shutil.rmtree(out_dir, ignore_errors=True)
    os.makedirs(out_dir)
    written = []
    cell, cols, per_sheet = 164, 12, 240
    for kind in KINDS:
        items = [(e, t) for e, t in zip(entries, thumbs) if e["kind"] == kind]
        for page in range(0, len(items), per_sheet):
            chunk = items[page: page + per_sheet]
            rows = (len(chunk) + cols - 1) // cols
            sheet = Image.new("RGB", (cols * cell, rows * cell), (40, 40, 40))
            draw = ImageDraw.Draw(sheet)
            for i, (e, t) in enumerate(chunk):
                x, y = (i % cols) * cell, (i // cols) * cell
                if e["split"] == "heldout":
                    draw.rectangle((x, y, x + cell - 1, y + cell - 1), outline=(255, 40, 40), width=2)
                sheet.paste(Image.fromarray(t), (x + 2, y + 2))
            name = f"{kind}{'' if page == 0 else '-' + str(page // per_sheet + 1)}.png"
            sheet.save(os.path.join(out_dir, name))
            written.append(os.path.join(out_dir, name))
            with open(os.path.join(out_dir, name[:-4] + ".txt"), "w") as f:
                f.write("\n".join(f"{i}\t{e['split']}\t{e['name']}\t{e['package']}: {e['source']}"
                                  for i, (e, _) in enumerate(chunk)) + "\n")
    return written


# ---------------------------------------------------------------------------------------------
# 6. Licences
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
            lic = fields["License"].strip().splitlines()
            paragraphs.append((fields["Files"].split(), " ".join(fields.get("Copyright", "").split()),
                               lic[0].strip() if lic else ""))
    return paragraphs


@dataclass(frozen=True)
class Dep5Glob:
    """A DEP-5 glob names paths of the upstream source; installed paths carry a prefix (usr/share/...)
    and archive members sit under <archive>.d/, so it matches a path suffix, or the exact file name."""
    pattern: str

    @functools.cached_property
    def regex(self) -> "re.Pattern[str]":
        return re.compile("(?:.*/)?" + fnmatch.translate(self.pattern))

    def matches(self, rel: str) -> bool:
        if self.pattern == "*":
            return True
        for r in (rel, re.sub(r"[^/]+\.pk3\.d/", "", rel)):
            if self.regex.match(r):
                return True
        return not any(ch in self.pattern for ch in "*?[") and os.path.basename(rel) == os.path.basename(self.pattern)


def ini_fields(path: str) -> Dict[str, str]:
    fields: Dict[str, str] = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
                k, v = line.split("=", 1)
                fields.setdefault(k.strip().lower(), v.strip())
    return fields


@functools.lru_cache(maxsize=None)
def package_paragraphs(raw: str, package: str) -> Optional[List[Tuple[List[Dep5Glob], str, str]]]:
    with open(os.path.join(raw, package, "usr/share/doc", package, "copyright"), encoding="utf-8", errors="replace") as f:
        paragraphs = parse_dep5(f.read())
    if paragraphs is None:
        return None
    return [([Dep5Glob(g) for g in globs], holders, lic) for globs, holders, lic in paragraphs
            if not any(g.startswith("debian/") for g in globs)]


def licence_for(c: Candidate, raw: str) -> Tuple[str, str]:
    """(licence, copyright holders) for one file, from its package's metadata."""
    root = os.path.join(raw, c.package)
    parts = c.rel.split("/")
    if c.package == "plasma-workspace-wallpapers":
        meta = os.path.join(root, *parts[: parts.index("contents")], "metadata.json")
        if os.path.exists(meta):
            with open(meta, encoding="utf-8") as f:
                plugin = json.load(f).get("KPlugin", {})
            authors = ", ".join(a.get("Name", "") for a in plugin.get("Authors", []))
            if plugin.get("License"):
                return plugin["License"], authors
    author = ""
    if c.package == "stellarium-data":  # landscape.ini / scenery3d .ini name the author (and a licence)
        folder = os.path.join(root, *parts[:5])
        for ini in sorted(glob.glob(os.path.join(folder, "*.ini"))):
            f = ini_fields(ini)
            author = author or f.get("author", "")
            if "creative commons attribution-sharealike" in f.get("copyright", "").lower() and "4.0" in f["copyright"]:
                return "CC-BY-SA-4.0", f["copyright"].split(". Licensed")[0]
    paragraphs = package_paragraphs(raw, c.package)
    if paragraphs is None:
        if c.package == "gnome-backgrounds":
            return ("GPL-2+ (package) / CC-BY-SA-3.0 (images, per its copyright file)",
                    "GNOME backgrounds authors (Jakub Steiner et al.)")
        return "unclear", author
    found = ("unclear", "")
    for globs, holders, lic in paragraphs:  # DEP-5: the last matching paragraph wins
        if any(g.matches(c.rel) for g in globs):
            found = (lic, holders)
    return found[0], (author + "; " if author and author not in found[1] else "") + found[1]


def licence_ok(lic: str) -> bool:
    low = lic.lower()
    if not low or low == "unclear" or any(m in low for m in NON_FREE_MARKERS):
        return False
    alternatives = re.split(r"\s+or\s+|\s*/\s*", low)  # "GPL-3+ or CC-BY-SA-3.0": one free choice suffices
    return any(alt.strip().lstrip("(").startswith(FREE_LICENCES) for alt in alternatives)


def copyright_source(raw: str, package: str) -> str:
    with open(os.path.join(raw, package, "usr/share/doc", package, "copyright"), encoding="utf-8", errors="replace") as f:
        m = re.search(r"^Source:\s*(\S+)", f.read(), flags=re.MULTILINE)
    return m.group(1) if m else ""


def write_licences(data: str, versions: Dict[str, str], entries: List[dict], dropped: Dict[str, List[str]]) -> None:
    raw = os.path.join(data, "raw")
    shutil.rmtree(os.path.join(data, "licenses"), ignore_errors=True)
    os.makedirs(os.path.join(data, "licenses"))
    lines = ["# Licences of the training and evaluation pictures", "",
             "Each package was fetched with `apt-get download <package>` from Debian and unpacked by",
             "scripts/get-data. Licences are taken from the packages' copyright files (copied in full under",
             "licenses/): the DEP-5 paragraph matching the picture's path, else the package's default.", ""]
    for p in sorted(SOURCES):
        shutil.copyfile(os.path.join(raw, p, "usr/share/doc", p, "copyright"), os.path.join(data, "licenses", p + ".copyright"))
        used = [e for e in entries if e["package"] == p]
        tally: Dict[str, int] = {}
        for e in used:
            tally[e["licence"]] = tally.get(e["licence"], 0) + 1
        kinds = ", ".join(f"{sum(1 for e in used if e['kind'] == k)} {k}" for k in KINDS if any(e["kind"] == k for e in used))
        lines.append(f"## {p} {versions[p]}: {len(used)} pictures ({kinds or 'none'})")
        lines.append(f"- source: Debian package `{p}` {versions[p]}; upstream {copyright_source(raw, p) or 'see copyright file'}")
        lines += [f"- {lic}: {n}" for lic, n in sorted(tally.items())]
        if dropped.get(p):
            lines.append(f"- skipped for their licence: {len(dropped[p])} ({'; '.join(dropped[p][:5])}"
                         f"{' ...' if len(dropped[p]) > 5 else ''})")
        lines.append("")
    lines += ["## Packages looked at and not used", ""] + [f"- {p}: {why}" for p, why in sorted(NOT_USED.items())] + [""]
    lines += ["## Pictures", "", "| picture | kind | split | source | licence | copyright |", "|---|---|---|---|---|---|"]
    lines += [f"| {e['name']} | {e['kind']} | {e['split']} | {e['package']}: {e['source']} | {e['licence']} | {e['copyright']} |"
              for e in entries]
    with open(os.path.join(data, "LICENSES.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


# ---------------------------------------------------------------------------------------------
def stamp_text(args: argparse.Namespace, versions: Dict[str, str]) -> str:
    h = hashlib.sha256()
    for path in (__file__, source_path("dove_data_sources.py")):
        with open(path, "rb") as f:
            h.update(f.read())
    return json.dumps({"code": h.hexdigest()[:16], "cropSize": args.crop_size, "trainCrops": args.train_crops,
                       "heldoutCrops": args.heldout_crops, "packages": versions}, sort_keys=True)


def prepare(args: argparse.Namespace, data: str, versions: Dict[str, str]) -> None:
    raw = os.path.join(data, "raw")
    t0 = time.time()
    cands, skipped = collect(raw, args.jobs)
    for p, tally in sorted(skipped.items()):
        log(f"{p}: skipped " + ", ".join(f"{n} {why}" for why, n in sorted(tally.items(), key=lambda kv: -kv[1])))
    pictures, family = group(cands)
    log(f"{len(cands)} image files -> {len(pictures)} unique pictures in {len(set(family.values()))} families "
        f"({time.time() - t0:.0f}s)")

    kept, dropped = [], {}  # licence check before the split, so a dropped picture never leaves a hole
    licences = {}
    for pic in pictures:
        lic, holders = licence_for(pic.best, raw)
        if licence_ok(lic):
            kept.append(pic)
            licences[pic.name] = (lic, holders)
        else:
            dropped.setdefault(pic.best.package, []).append(f"{pic.best.rel} ({lic})")
            log(f"skipping {pic.best.package}/{pic.best.rel}: licence '{lic}' does not clearly allow modification and redistribution")
    splits = split(kept, family)

    crop_dir = os.path.join(data, f"crops-{args.crop_size}")
    eval_dir = os.path.join(data, f"eval-{args.crop_size}")
    for sub in ("train", "heldout", crop_dir, eval_dir):
        shutil.rmtree(os.path.join(data, sub), ignore_errors=True)
    for sub in ("train", "heldout", os.path.join(crop_dir, "train"), os.path.join(crop_dir, "heldout"), eval_dir):
        os.makedirs(os.path.join(data, sub), exist_ok=True)

    jobs, names = [], set()
    for pic in kept:
        which = splits[family[pic.name]]
        name = slug(pic.name)
        assert name not in names, f"two pictures named {name}"
        names.add(name)
        jobs.append(Job(pic.best, name, which, args.train_crops if which == "train" else args.heldout_crops,
                        args.crop_size, data, crop_dir))
    t1 = time.time()
    with multiprocessing.Pool(args.jobs) as pool:
        results = pool.map(write_picture, jobs, chunksize=4)
    log(f"wrote {len(jobs)} pictures and their crops ({time.time() - t1:.0f}s, {args.jobs} processes)")

    entries, crop_index, thumbs = [], [], []
    for pic, job, (records, size, t) in zip(kept, jobs, results):
        best = pic.best
        lic, holders = licences[pic.name]
        crop_index += records
        thumbs.append(t)
        entries.append({
            "name": job.name, "kind": best.kind, "split": job.split, "family": slug(family[pic.name]),
            "package": best.package, "source": best.rel, "width": best.width, "height": best.height,
            "kept": {"box": list(best.box), "composited": best.composited, "size": list(size)},
            "duplicatesDropped": sorted(m.rel for m in pic.members if m is not best),
            "licence": lic, "copyright": holders,
        })
    counts = {s: sum(1 for e in entries if e["split"] == s) for s in ("train", "heldout")}
    by_kind = {k: {s: sum(1 for e in entries if e["split"] == s and e["kind"] == k) for s in ("train", "heldout")}
               for k in KINDS}
    manifest = {
        "packages": versions, "shortSide": SHORT_SIDE, "cropSize": args.crop_size, "counts": counts,
        "countsByKind": by_kind,
        "crops": {s: sum(1 for c in crop_index if c["split"] == s) for s in ("train", "heldout")},
        "cropSides": {"minFraction": CROP_MIN_FRACTION, "distribution": "log-uniform", "flipped": False},
        "eval": {"dir": f"eval-{args.crop_size}", "pictures": counts["heldout"],
                 "view": "short side resized (Lanczos), centre crop"},
        "skipped": skipped, "skippedForLicence": dropped,
        "pictures": entries,
    }
    with open(os.path.join(data, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    with open(os.path.join(crop_dir, "index.json"), "w") as f:
        json.dump(crop_index, f, indent=0)
    write_licences(data, versions, entries, dropped)
    sheets = contact_sheets(data, entries, thumbs)
    log(f"{counts['train']} train / {counts['heldout']} held-out pictures; by kind (train/held-out): "
        + ", ".join(f"{k} {v['train']}/{v['heldout']}" for k, v in by_kind.items()))
    log(f"{manifest['crops']['train']} / {manifest['crops']['heldout']} crops of {args.crop_size}px in {crop_dir}; "
        f"{counts['heldout']} whole views in {eval_dir}; contact sheets: {', '.join(sheets)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--crop-size", type=int, default=64)
    ap.add_argument("--train-crops", type=int, default=150, help="crops per training picture")
    ap.add_argument("--heldout-crops", type=int, default=8, help="crops per held-out picture")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="processes writing pictures")
    ap.add_argument("--force", action="store_true", help="prepare again even if nothing changed")
    args = ap.parse_args()
    for name in ("crop_size", "train_crops", "heldout_crops", "jobs"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be at least 1")
    data = os.path.abspath(args.data)
    os.makedirs(data, exist_ok=True)

    versions = fetch(data)
    stamp = os.path.join(data, ".prepared")
    text = stamp_text(args, versions)
    if not args.force and os.path.exists(stamp) and open(stamp).read() == text:
        with open(os.path.join(data, "manifest.json")) as f:
            m = json.load(f)
        log(f"up to date: {m['counts']['train']} train / {m['counts']['heldout']} held-out pictures, "
            f"crops in {os.path.join(data, f'crops-{args.crop_size}')}")
        print(data)
        return
    if os.path.exists(stamp):
        os.remove(stamp)  # a preparation that stops half-way must not look finished
    prepare(args, data, versions)
    with open(stamp, "w") as f:
        f.write(text)
    print(data)


if __name__ == "__main__":
    main()
