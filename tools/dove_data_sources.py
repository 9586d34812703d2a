"""Which Debian packages scripts/get-data fetches, which of their files it keeps, and what each file is.

Every package was looked at on contact sheets (bash scripts/get-data writes sheets of what it kept to
<data>/sheets/). A file is kept only when a rule below names it; the first matching rule decides:
  kind    photo   a real photograph of a scene or object
          texture a photographic texture or material
          artwork an illustration, render or abstract design
          skip    not kept (the reason is logged)
  alpha   what to do with a picture that has transparent pixels: "skip" it (default), "crop" it to
          its largest fully opaque block (panoramas with a transparent sky), or "composite" it on
          neutral grey (photo cut-outs; composited pictures always train, never evaluate)
  auto    game texture folders: also drop normal/gloss/mask maps, colourless maps and flat fills,
          recognised by name and by content (see dove_data.texture_reject)
Paths are globs (fnmatch: * also matches /) on the file's path inside the package; files inside a
.pk3/.zip archive appear under <archive>.d/ once extracted.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Tuple


@dataclass(frozen=True)
class Rule:
    glob: str
    kind: str  # photo | texture | artwork | skip
    alpha: str = "skip"  # skip | crop | composite
    auto: bool = False
    why: str = ""  # for kind skip: the reason, logged


@dataclass(frozen=True)
class Source:
    extract: Tuple[str, ...]  # tar globs (relative to the package root, ./ prefixed) to unpack
    rules: Tuple[Rule, ...]
    archives: Tuple[str, ...] = ()  # globs of members to take out of .pk3/.zip archives, which are then removed


def _photos(prefix: str, names: List[str], **kw: object) -> List[Rule]:
    return [Rule(f"{prefix}{n}", "photo", **kw) for n in names]  # type: ignore[arg-type]


_PLASMA_PHOTOS = ["FallenLeaf", "Path", "DarkestHour", "summer_1am", "EveningGlow", "Grey", "Kite",
                  "ColorfulCups", "OneStandsOut", "ColdRipple", "BytheWater"]
_TUXPAINT_PHOTO_STAMPS = [
    "animals/birds/albino_peahen", "animals/birds/crowned_crane", "animals/birds/helmeted_guineafowl",
    "animals/fish/lobster", "animals/insects/Woodlouse", "animals/insects/bee", "animals/insects/mantis",
    "animals/mammals/bears/european-bear", "animals/mammals/bovines/gnu-baby-stand",
    "animals/mammals/bovines/gnu-baby", "animals/mammals/bovines/indian_blackbuck",
    "food/fruit/Apricot_whole", "food/fruit/Cherry_Stella", "food/fruit/Strawberry2", "food/fruit/avocado",
    "food/fruit/cherimoya", "food/fruit/orange_seville", "food/spices/ginger", "household/Lightbulb",
    "household/tools/cementmixer", "medical/stethoscope", "military/vehicles/bradley",
    "military/vehicles/f22_raptor", "military/vehicles/infantry-stryker", "plants/flowers/anemone_red",
    "plants/flowers/daffodil", "plants/trees/holm_oak", "plants/trees/liberia-palm", "plants/trees/rambutan",
    "plants/trees/tree336", "town/monuments/inukshuk-photo", "vehicles/construction/dumper",
    "vehicles/emergency/firetruck", "vehicles/flight/balloon360", "vehicles/flight/planes/747",
    "vehicles/race/indycar", "vehicles/wheel_tractor",
]
_COLOBOT_TEXTURES = ["cloud0*", "desert*", "dirty0*", "green0*", "mars0*", "mars1*", "moon1*", "mix0*",
                     "terra0*", "water1*", "roca2", "chili01", "objects/wood01"]
_DOC = "./usr/share/doc/*/copyright"  # every package's copyright file travels with its pictures

SOURCES: Dict[str, Source] = {
    # Desktop wallpapers (the original four packages).
    "gnome-backgrounds": Source((_DOC, "./usr/share/backgrounds/*"), (
        Rule("usr/share/backgrounds/gnome/*", "artwork"),)),
    "mate-backgrounds": Source((_DOC, "./usr/share/backgrounds/*"), (
        Rule("usr/share/backgrounds/mate/nature/*", "photo"),
        Rule("usr/share/backgrounds/mate/*", "artwork"))),
    "plasma-workspace-wallpapers": Source((_DOC, "./usr/share/wallpapers/*"), tuple(
        _photos("usr/share/wallpapers/", [f"{n}/*" for n in _PLASMA_PHOTOS])
        + [Rule("usr/share/wallpapers/*/contents/screenshot.*", "skip", why="preview of a wallpaper"),
           Rule("usr/share/wallpapers/*", "artwork")])),
    "ukui-wallpapers": Source((_DOC, "./usr/share/backgrounds/*"), (
        Rule("usr/share/backgrounds/*", "artwork"),)),
    # Ubuntu Touch / Lomiri wallpapers: mostly photographs, one licence paragraph per file.
    "lomiri-wallpapers": Source((_DOC, "./usr/share/backgrounds/*"), (
        Rule("usr/share/backgrounds/*", "artwork"),)),
    "lomiri-wallpapers-16.04": Source((_DOC, "./usr/share/backgrounds/*"), (
        Rule("*/umang_by_*", "artwork"),
        Rule("*/analogpattern_by_*", "texture"),
        Rule("usr/share/backgrounds/*.jpg", "photo"))),
    "lomiri-wallpapers-20.04": Source((_DOC, "./usr/share/backgrounds/*"), (
        Rule("*/Kleiber_by_*", "photo"),
        Rule("usr/share/backgrounds/*.jpg", "artwork"))),
    # Debian's own themes: the wallpapers are SVG; the GRUB backgrounds are their rasterised form.
    "desktop-base": Source((_DOC, "./usr/share/desktop-base/*/grub/grub-16x9.png"), (
        Rule("usr/share/desktop-base/*-theme/grub/grub-16x9.png", "artwork"),)),
    "gimp-data": Source((_DOC, "./usr/share/gimp/2.0/scripts/images/*"), (
        Rule("*/scripts/images/texture.jpg", "texture"),
        Rule("*/scripts/images/beavis.jpg", "photo"))),
    # Tux Paint: photographs shipped as drawing templates, and photo cut-outs shipped as stamps.
    "tuxpaint-data": Source((_DOC, "./usr/share/tuxpaint/templates/*.jpg"), (
        Rule("usr/share/tuxpaint/templates/*.jpg", "photo"),)),
    "tuxpaint-stamps-default": Source((_DOC, "./usr/share/tuxpaint/stamps/*.png"), tuple(
        _photos("usr/share/tuxpaint/stamps/", [f"{n}.png" for n in _TUXPAINT_PHOTO_STAMPS], alpha="composite")
        + [Rule("*", "skip", why="cartoon, symbol or mirrored copy")])),
    # Stellarium: photographic horizon panoramas (transparent sky cropped away) and scenery textures.
    "stellarium-data": Source((_DOC, "./usr/share/stellarium/landscapes/*", "./usr/share/stellarium/scenery3d/*"), (
        Rule("*illum*", "skip", why="light-pollution layer"),
        Rule("*_fog*", "skip", why="fog layer"),
        Rule("*-lgt*", "skip", why="light layer"),
        Rule("*/landscapes/ocean/*", "artwork", alpha="crop"),  # rendered with Terragen
        *[Rule(f"*/landscapes/{n}/*", "photo", alpha="crop")
          for n in ("garching", "grossmugl", "guereins", "hurricane", "mars", "moon", "trees")],
        Rule("*/landscapes/*", "skip", why="generated planet surface"),
        Rule("*/Sterngarten/Sterngarten_20100320.png", "photo"),
        Rule("*Google_Earth*", "skip", why="Google Earth imagery: licence of the imagery not stated"),
        Rule("*/Tafel_*", "skip", why="sign with text and diagrams"),
        Rule("*bump*", "skip", why="bump map"), Rule("*_height*", "skip", why="height map"),
        Rule("*dontUse*", "skip", why="marked unused"), Rule("*Square100m*", "skip", why="grid"),
        Rule("*/Ungeziffer.png", "skip", why="mask"),
        Rule("*/scenery3d/*.jpg", "texture", auto=True), Rule("*/scenery3d/*.png", "texture", auto=True))),
    # Games whose terrain and material textures are photographs.
    "extremetuxracer-data": Source((_DOC, "./usr/share/games/etr/terrains/*", "./usr/share/games/etr/env/*"), (
        Rule("*/etr/env/*H.png", "skip", why="256-colour copy of a skybox face"),
        Rule("*/etr/env/*", "artwork"),  # rendered mountain skyboxes
        Rule("*/etr/terrains/*", "texture", auto=True))),
    "colobot-common-textures": Source((_DOC, "./usr/share/games/colobot/textures/*"), tuple(
        Rule(f"usr/share/games/colobot/textures/{n}.png", "texture", auto=True) for n in _COLOBOT_TEXTURES)),
    "supertuxkart-data": Source((_DOC, "./usr/share/games/supertuxkart/data/textures/*.jpg",
                                 "./usr/share/games/supertuxkart/data/textures/*.png",
                                 "./usr/share/games/supertuxkart/data/tracks/*.jpg",
                                 "./usr/share/games/supertuxkart/data/tracks/*.png"), (
        Rule("*screenshot*", "skip", why="render of the game"), Rule("*sshot*", "skip", why="render of the game"),
        Rule("*/stkflag_*", "skip", why="banner with text"),
        Rule("*/data/*", "texture", auto=True))),
    "ufoai-textures": Source((_DOC, "./usr/share/games/ufoai/base/0textures.pk3"), (
        Rule("*/textures/tex_misc/advert*", "skip", why="advertisement with text"),
        Rule("*/textures/*/banner*", "skip", why="banner with text"),
        Rule("*/textures/*/helipad*", "skip", why="sign"),
        Rule("*/textures/*/*biohazard*", "skip", why="sign"),
        Rule("*/textures/tex_pics/*", "artwork", auto=True),  # pictures on walls: paintings, prints, posters
        Rule("*/textures/tex_mattn/art*", "artwork", auto=True),
        Rule("*/0textures.pk3.d/textures/*", "texture", auto=True)),
        archives=("textures/*.jpg", "textures/*.png")),
}

# Looked at and left out (the numbers are from the contact sheets made when choosing).
NOT_USED: Dict[str, str] = {
    "sway-backgrounds": "one logo wallpaper at eight sizes",
    "marble-data": "its pictures >= 256 px are documentation screenshots; the map tiles are smaller",
    "kstars-data": "79 MB for one photograph (the splash sky); the rest are moon-phase renders and icons",
    "visp-images-data": "grayscale lab sequences of a few scenes, calibration grids, and a Klimt test image",
    "openarena-081-textures": "mostly dark hand-painted game textures, few photographic ones",
}
