"""The real photographs that registry packages ship, chosen by hand for training on real content.

Each entry names the package, the file inside it, the licence its copyright file states for that file,
and the credit line. Only photographs are listed: the same packages also ship vector art, renders and
gradients (all of GNOME 43's backgrounds, UKUI's, most of Plasma's, MATE's abstract and desktop sets),
which teach nothing about real texture and are left out. Where a package ships one picture at several
sizes, the largest is listed once, so a source image is never both in training and held out.

Debian entries are fetched with ``apt-get download`` (``kind="deb"``); PyPI entries are copied from the
installed distribution that ships them (``kind="pypi"``, scikit-image's sample data, a project
dependency of the ``train`` extra).
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CataloguedPhoto", "CATALOGUE", "packages"]


@dataclass(frozen=True)
class CataloguedPhoto:
    """One photograph: where it comes from and under which terms it may be used."""

    kind: str  # "deb" or "pypi"
    package: str
    path: str  # inside the package's file tree (deb) or the distribution (pypi)
    licence: str  # SPDX identifier, as the package's copyright file states it
    credit: str
    file_name: str = ""  # name of the installed copy when the package's own is not unique; default: its own

    @property
    def installed_name(self) -> str:
        return self.file_name or self.path.rsplit("/", 1)[-1]

    @property
    def name(self) -> str:
        """The stable name of the source image: package and file name, used for the held-out split."""
        return f"{self.package}/{self.installed_name}"


def _plasma(folder: str, file: str) -> CataloguedPhoto:
    # Plasma names each file by its size inside a folder named after the picture.
    return CataloguedPhoto("deb", "plasma-workspace-wallpapers", f"usr/share/wallpapers/{folder}/contents/images/{file}",
                           "GPL-2.0-or-later", f"{folder}, KDE Visual Design Group",
                           f"{folder}.{file.rsplit('.', 1)[-1]}")


def _mate(file: str, credit: str) -> CataloguedPhoto:
    return CataloguedPhoto("deb", "mate-backgrounds", f"usr/share/backgrounds/mate/nature/{file}", "GPL-2.0-or-later", credit)


def _lomiri(package: str, file: str, licence: str) -> CataloguedPhoto:
    author = file.rsplit(".", 1)[0].split("_by_", 1)[-1].replace("_", " ")
    return CataloguedPhoto("deb", package, f"usr/share/backgrounds/{file}", licence, author)


def _skimage(file: str, licence: str, credit: str) -> CataloguedPhoto:
    return CataloguedPhoto("pypi", "scikit-image", f"skimage/data/{file}", licence, credit)


CATALOGUE: tuple[CataloguedPhoto, ...] = (
    _plasma("BytheWater", "1280x1024.jpg"),
    _plasma("ColdRipple", "1280x1024.jpg"),
    _plasma("ColorfulCups", "2560x1600.jpg"),
    _plasma("DarkestHour", "1280x1024.jpg"),
    _plasma("EveningGlow", "1280x1024.jpg"),
    _plasma("FallenLeaf", "1280x1024.jpg"),
    _plasma("Grey", "1280x1024.jpg"),
    _plasma("OneStandsOut", "1280x1024.jpg"),
    _plasma("Path", "1280x1024.jpg"),
    _plasma("summer_1am", "1280x1024.jpg"),
    _mate("Aqua.jpg", "Charles Barbin"),
    _mate("Blinds.jpg", "Lennart Poettering"),
    _mate("Dune.jpg", "Marco Cogoni"),
    _mate("FreshFlower.jpg", "Jens Ansorg"),
    _mate("Garden.jpg", "Charles Barbin"),
    _mate("GreenMeadow.jpg", "Timothy Schellhase"),
    _mate("LadyBird.jpg", "Charles Barbin"),
    _mate("RainDrops.jpg", "blackcombwhistler07"),
    _mate("Storm.jpg", "Sergey Nazarov"),
    _mate("TwoWings.jpg", "Charles Barbin"),
    _mate("Wood.jpg", "Jean-Francois Fortin Tam"),
    _mate("YellowFlower.jpg", "Charles Barbin"),
    _lomiri("lomiri-wallpapers-16.04", "Bridge_by_Sander_Klootwijk.jpg", "CC-BY-SA-4.0"),
    _lomiri("lomiri-wallpapers-16.04", "Dragonfly_by_Bolly.jpg", "CC-BY-SA-4.0"),
    _lomiri("lomiri-wallpapers-16.04", "Picture_0B_by_freespace.jpg", "CC-BY-4.0"),
    _lomiri("lomiri-wallpapers-16.04", "Picture_1A_by_freespace.jpg", "CC-BY-4.0"),
    _lomiri("lomiri-wallpapers-16.04", "Wine_by_Jakkub_Mede.jpg", "CC-BY-4.0"),
    _lomiri("lomiri-wallpapers-16.04", "aitzgorri_by_Aitzol_Berasategi.jpg", "CC-BY-4.0"),
    _lomiri("lomiri-wallpapers-16.04", "free_by_Peter_Nerlich.jpg", "CC-BY-SA-4.0"),
    _lomiri("lomiri-wallpapers-16.04", "friends_by_Aitzol_Berasategi.jpg", "CC-BY-4.0"),
    _lomiri("lomiri-wallpapers-16.04", "life_by_Aitzol_Berasategi.jpg", "CC-BY-4.0"),
    _lomiri("lomiri-wallpapers-16.04", "picosdeeuropa_by_Aitzol_Berasategi.jpg", "CC-BY-4.0"),
    _lomiri("lomiri-wallpapers-16.04", "seeding_by_Clements_Engelhardt.jpg", "CC0-1.0"),
    _lomiri("lomiri-wallpapers-16.04", "sunset_by_Aitzol_Berasategi.jpg", "CC-BY-4.0"),
    _lomiri("lomiri-wallpapers-20.04", "Kleiber_by_Lukas_Baubkus.jpg", "CC-BY-SA-3.0"),
    _skimage("astronaut.png", "public domain", "NASA (Eileen Collins)"),
    _skimage("chelsea.png", "CC0-1.0", "Stefan van der Walt"),
    _skimage("coffee.png", "CC0-1.0", "Rachel Michetti"),
    _skimage("rocket.jpg", "public domain", "SpaceX"),
)


def packages(kind: str) -> list[str]:
    """The packages of one kind ("deb" or "pypi") that the catalogue draws on, in catalogue order."""
    seen: dict[str, None] = {}
    for photo in CATALOGUE:
        if photo.kind == kind:
            seen.setdefault(photo.package)
    return list(seen)
