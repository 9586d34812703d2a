"""The data preparation of scripts/get-data (tools/dove_data.py) on small synthetic pictures: the
decisions that keep training data honest (split, licences, transparency, tiles, texture maps, crops)."""
import sys

import numpy as np
import pytest
from PIL import Image

from dove_testutil import TOOLS_DIR

sys.path.insert(0, TOOLS_DIR)
import dove_data as dd  # noqa: E402
from dove_data_sources import SOURCES, Rule  # noqa: E402


def noise(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def candidate(name, kind="photo", family=None, composited=False, size=(800, 600)):
    c = dd.Candidate("pkg", f"{name}.jpg", kind, "skip", size[0], size[1], (0, 0) + size, f"pkg/{name}",
                     family or f"pkg/{name}", composited)
    return c


def test_split_keeps_families_whole_and_holds_out_enough_photos():
    pictures, family = [], {}
    for i in range(300):
        kind = "photo" if i % 5 == 0 else "texture"  # 60 photos among 300 pictures
        fam = f"fam{i // 2}"  # two pictures per family
        p = dd.Picture(f"pic{i:03d}", [candidate(f"pic{i:03d}", kind)])
        pictures.append(p)
        family[p.name] = fam
    splits = dd.split(pictures, family)
    held_fams = [f for f, s in splits.items() if s == "heldout"]
    assert 0.09 <= len(held_fams) / len(splits) <= 0.3
    held_photos = sum(1 for p in pictures if splits[family[p.name]] == "heldout" and p.best.kind == "photo")
    assert held_photos >= dd.MIN_HELDOUT_PHOTOS
    assert splits == dd.split(list(reversed(pictures)), family)  # deterministic, order-free


def test_split_never_holds_out_composited_cutouts():
    pictures = [dd.Picture(f"cut{i}", [candidate(f"cut{i}", composited=True)]) for i in range(50)]
    family = {p.name: p.name for p in pictures}
    pictures.append(dd.Picture("scene", [candidate("scene")]))
    family["scene"] = "scene"
    splits = dd.split(pictures, family)
    assert all(splits[f"cut{i}"] == "train" for i in range(50))
    assert splits["scene"] == "heldout"


def test_opaque_block_finds_the_ground_under_a_transparent_sky():
    alpha = np.zeros((100, 200), dtype=np.uint8)
    alpha[40:, :] = 255
    alpha[40:45, 10] = 0  # a hole in the first ground rows: they are not fully opaque
    assert dd.opaque_block(alpha) == (0, 45, 200, 100)
    assert dd.opaque_block(np.zeros((10, 10), dtype=np.uint8)) is None


def test_tile_period_cuts_repeated_textures_to_one_tile():
    tile = noise(64, 96).mean(axis=2)
    g = np.tile(tile, (2, 3)).astype(np.float32)  # 2 tiles down, 3 across
    assert dd.tile_period(g, 1) == 96 and dd.tile_period(g, 0) == 64
    photo = noise(128, 192, seed=1).mean(axis=2).astype(np.float32)
    assert dd.tile_period(photo, 1) == 192 and dd.tile_period(photo, 0) == 128


def test_texture_reject_tells_maps_and_drawings_from_photographic_textures():
    grain = noise(128, 128).astype(np.float32)
    assert dd.texture_reject(grain) is None
    normal = np.zeros((128, 128, 3), np.float32) + (128, 128, 255)
    normal += np.random.default_rng(2).normal(0, 20, normal.shape)
    assert dd.texture_reject(normal) == "normal map (by colour)"
    grey = np.repeat(noise(128, 128)[..., :1], 3, axis=2).astype(np.float32)
    assert dd.texture_reject(grey) == "colourless map"
    drawing = np.zeros((128, 128, 3), np.float32) + (250, 240, 200)
    drawing[40:90, 40:90] = (200, 30, 30)
    drawing[:20] = grain[:20]
    assert dd.texture_reject(drawing) == "large flat areas (drawing, sign, atlas or render)"
    for stem in ("wall003_nm", "stk_generic_ice_a_gloss", "rockNormal", "BaseTeamBlue-nm", "icon-nitro"):
        assert dd.map_name(stem), stem
    for stem in ("wall003_gold", "metal_rusted", "lighthouse", "rockwall", "mossy_stone"):
        assert not dd.map_name(stem), stem


def test_dep5_globs_match_installed_and_archived_paths():
    assert dd.Dep5Glob("data/textures/egypt2.jpg").matches("usr/share/games/supertuxkart/data/textures/egypt2.jpg")
    assert not dd.Dep5Glob("data/textures/egypt2.jpg").matches("usr/share/games/supertuxkart/data/textures/egypt.jpg")
    assert dd.Dep5Glob("base/textures/tex_buildings/*").matches(
        "usr/share/games/ufoai/base/0textures.pk3.d/textures/tex_buildings/wall022.png")
    # an exact upstream path whose folder is not installed: the file name decides
    assert dd.Dep5Glob("16.04/Bridge_by_Sander_Klootwijk.jpg").matches("usr/share/backgrounds/Bridge_by_Sander_Klootwijk.jpg")
    assert dd.Dep5Glob("*").matches("anything/at/all.png")


def test_licence_for_takes_the_last_matching_paragraph(tmp_path):
    doc = tmp_path / "pkg" / "usr/share/doc/pkg"
    doc.mkdir(parents=True)
    (doc / "copyright").write_text(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
        "Files: *\nCopyright: 2020 Someone\nLicense: GPL-2+\n\n"
        "Files:\n data/textures/rock*.jpg\nCopyright:\n 2021 Rock Person\nLicense: CC-BY-SA-3.0\n\n"
        "Files: debian/*\nCopyright: 2022 Packager\nLicense: CC-BY-NC-4.0\n")
    dd.package_paragraphs.cache_clear()
    rock = dd.Candidate("pkg", "usr/share/pkg/data/textures/rock1.jpg", "texture", "skip", 1, 1, (0, 0, 1, 1), "", "")
    other = dd.Candidate("pkg", "usr/share/pkg/data/textures/wood.jpg", "texture", "skip", 1, 1, (0, 0, 1, 1), "", "")
    assert dd.licence_for(rock, str(tmp_path)) == ("CC-BY-SA-3.0", "2021 Rock Person")
    assert dd.licence_for(other, str(tmp_path)) == ("GPL-2+", "2020 Someone")
    dd.package_paragraphs.cache_clear()


@pytest.mark.parametrize("lic,ok", [
    ("GPL-2+", True), ("CC-BY-SA-4.0", True), ("CC0-1.0", True), ("public-domain", True), ("Expat", True),
    ("GPL-3+ or CC-BY-SA-3.0", True), ("CC-BY-NC-4.0", False), ("CC-BY-ND-3.0", False), ("custom", False),
    ("unclear", False), ("", False), ("GPL-2+ (package) / CC-BY-SA-3.0 (images, per its copyright file)", True),
])
def test_licence_ok(lic, ok):
    assert dd.licence_ok(lic) is ok


def test_crops_are_deterministic_multiscale_and_inside_the_picture():
    img = Image.fromarray(noise(768, 1024))
    a = dd.crops(img, 64, 150, "seed")
    b = dd.crops(img, 64, 150, "seed")
    assert [x[1] for x in a] == [x[1] for x in b]
    assert all(np.array_equal(np.asarray(x[0]), np.asarray(y[0])) for x, y in zip(a[:5], b[:5]))
    sides = np.array([info["side"] for _, info in a])
    assert sides.min() >= int(0.12 * 768) and sides.max() <= 768
    assert np.median(sides) < 350  # log-uniform: the median side is near the geometric mean (~266), not 430
    assert all(info["x"] + info["side"] <= 1024 and info["y"] + info["side"] <= 768 for _, info in a)
    assert all(c.size == (64, 64) for c, _ in a)
    small = dd.crops(Image.fromarray(noise(256, 256)), 64, 10, "s")
    assert all(info["side"] >= 64 for _, info in small)  # never enlarged


def test_crop_count_follows_the_area():
    assert dd.crop_count((1365, 768), 150) == 150
    assert dd.crop_count((768, 768), 150) == 150
    assert dd.crop_count((512, 512), 150) == 67
    assert dd.crop_count((256, 256), 150) == 19  # the floor, most/8


def test_whole_view_is_a_centre_crop_of_the_short_side():
    arr = np.zeros((200, 400, 3), np.uint8)
    arr[:, 100:300] = 255  # the centre square is white
    view = dd.whole_view(Image.fromarray(arr), 64)
    assert view.size == (64, 64)
    assert np.asarray(view)[:, 4:60].min() > 240


def test_every_source_rule_is_well_formed():
    for package, src in SOURCES.items():
        assert "./usr/share/doc/*/copyright" in src.extract, package
        for rule in src.rules:
            assert isinstance(rule, Rule)
            assert rule.kind in ("photo", "texture", "artwork", "skip"), (package, rule)
            assert rule.alpha in ("skip", "crop", "composite"), (package, rule)
            assert rule.kind != "skip" or rule.why, (package, rule)


def test_opaque_block_never_includes_a_transparent_pixel():
    rng = np.random.default_rng(3)
    alpha = np.zeros((120, 300), dtype=np.uint8)
    alpha[50:] = 255
    alpha[50:60][rng.random((10, 300)) < 0.3] = 0  # ragged treetops
    alpha[90:, 7] = 0  # a thin transparent gap low down
    x0, y0, x1, y1 = dd.opaque_block(alpha)
    assert (alpha[y0:y1, x0:x1] >= 250).all()
    assert y1 - y0 >= 50 and x1 - x0 >= 290
