"""Install the catalogued real photographs into a folder and list them by split.

Usage::

    python -m vsarvo.training.data.photos install --dest data/photos
    python -m vsarvo.training.data.photos crops --dest data/photos --out data/photo_crops --max-mb 20

``install`` fetches the Debian packages of :mod:`.photo_catalogue` with ``apt-get download`` (no root
needed: the ``.deb`` is unpacked with ``dpkg-deb -x`` into a scratch folder, never installed), copies
the scikit-image photos from the installed distribution, and writes ``<dest>/manifest.json``: per
photo its package, version, licence, credit, file, size, pixel size, sha256 and split, with each
package's copyright file copied to ``<dest>/copyright/``. Run it once before training, never at run
time; the folder is not committed. ``crops`` writes the compact carry set (:mod:`.photo_crops`).

The held-out split is fixed by the source image's name (a hash of package and file name), so it
does not depend on which packages were reachable or in which order they were installed, and about
:data:`HELD_OUT_SHARE` of the images are never seen in training.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from vsarvo.atomic import atomic_path, write_text_atomic
from vsarvo.digest import file_sha256

from .photo_catalogue import CATALOGUE, CataloguedPhoto, packages

__all__ = ["HELD_OUT_SHARE", "MANIFEST", "split_of", "install", "list_photos", "main"]

HELD_OUT_SHARE = 0.15
MANIFEST = "manifest.json"
# Fixed for good: changing it would move images between the splits. Of the salts tried in turn, the
# first giving the catalogue a held-out share of 15 % drawn from several packages.
_SPLIT_SALT = "vsarvo-photos-v6"
_SPLITS = ("train", "held_out")


def split_of(name: str) -> str:
    """``"held_out"`` for about :data:`HELD_OUT_SHARE` of source image names, ``"train"`` for the rest."""
    digest = hashlib.sha256(f"{_SPLIT_SALT}:{name}".encode()).digest()
    return "held_out" if int.from_bytes(digest[:8], "big") / 2**64 < HELD_OUT_SHARE else "train"


def _deb_version(deb: Path) -> str:
    return subprocess.run(["dpkg-deb", "-f", str(deb), "Version"], check=True, capture_output=True,
                          text=True).stdout.strip()


def _unpack_deb(package: str, scratch: Path) -> tuple[Path, str]:
    """Download one package with apt-get and unpack it; return its file tree and version."""
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise RuntimeError("installing the photos needs apt-get and dpkg-deb (a Debian or Ubuntu system)")
    work = scratch / package
    work.mkdir(parents=True)
    result = subprocess.run(["apt-get", "download", package], cwd=work, capture_output=True, text=True)
    debs = sorted(work.glob("*.deb"))
    if result.returncode != 0 or not debs:
        raise RuntimeError(f"apt-get download {package} failed ({result.stderr.strip()[-300:]}); "
                           "run 'apt-get update' first, or check that the package exists in your release")
    tree = work / "tree"
    subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(tree)], check=True)
    return tree, _deb_version(debs[0])


def _pypi_tree(package: str) -> tuple[Path, str]:
    """The installed distribution's site-packages folder and version."""
    try:
        dist = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        raise RuntimeError(f"{package} is not installed: pip install -e '.[train]'") from None
    return Path(dist.locate_file("")), dist.version


def _copyright_file(tree: Path, photo: CataloguedPhoto) -> Path | None:
    if photo.kind == "deb":
        candidate = tree / "usr/share/doc" / photo.package / "copyright"
    else:
        dist = importlib.metadata.distribution(photo.package)
        candidate = next((Path(dist.locate_file(f)) for f in dist.files or () if f.name.startswith("LICENSE")), None)
    return candidate if candidate is not None and candidate.is_file() else None


def _install_photo(photo: CataloguedPhoto, tree: Path, version: str, dest: Path) -> dict | None:
    source = tree / photo.path
    if not source.is_file():
        print(f"photos: {photo.package} {version} has no {photo.path}; skipped", file=sys.stderr)
        return None
    target = dest / photo.package / photo.installed_name
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)
    with Image.open(target) as image:
        width, height = image.size
    return {"name": photo.name, "file": str(target.relative_to(dest)), "package": photo.package,
            "kind": photo.kind, "version": version, "licence": photo.licence, "credit": photo.credit,
            "bytes": target.stat().st_size, "width": width, "height": height,
            "sha256": file_sha256(target), "split": split_of(photo.name)}


def install(dest: str | Path, *, catalogue: Sequence[CataloguedPhoto] = CATALOGUE) -> list[dict]:
    """Fetch every catalogued photo into ``dest`` and write its manifest; return the manifest entries."""
    names = [photo.name for photo in catalogue]
    if len(set(names)) != len(names):
        raise ValueError(f"catalogue names must be unique (give duplicates a file_name); got {sorted(names)}")
    dest = Path(dest)
    entries: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="vsarvo-photos-") as scratch:
        for kind in ("deb", "pypi"):
            for package in packages(kind):
                chosen = [p for p in catalogue if p.package == package]
                if not chosen:
                    continue
                tree, version = _unpack_deb(package, Path(scratch)) if kind == "deb" else _pypi_tree(package)
                licence = _copyright_file(tree, chosen[0])
                if licence is not None:
                    with atomic_path(dest / "copyright" / package) as tmp:
                        shutil.copyfile(licence, tmp)
                entries += [e for p in chosen if (e := _install_photo(p, tree, version, dest)) is not None]
                print(f"photos: {package} {version}: {sum(e['package'] == package for e in entries)} photos",
                      file=sys.stderr)
    if not entries:
        raise RuntimeError("no photo could be installed; see the messages above")
    write_text_atomic(dest / MANIFEST, json.dumps({"photos": entries}, indent=1) + "\n")
    return entries


def read_manifest(root: str | Path) -> list[dict]:
    """The entries of ``<root>/manifest.json``."""
    path = Path(root) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run 'python -m vsarvo.training.data.photos install "
                                f"--dest {root}' (or 'make photos') first")
    return json.loads(path.read_text())["photos"]


def list_photos(root: str | Path, split: str) -> list[Path]:
    """The installed photos of one split (``"train"`` or ``"held_out"``), sorted by name."""
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {_SPLITS}, got {split!r}")
    entries = sorted(read_manifest(root), key=lambda e: e["name"])
    return [Path(root) / e["file"] for e in entries if split_of(e["name"]) == split]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vsarvo.training.data.photos", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    install_cmd = commands.add_parser("install", help="fetch the catalogued photos and write the manifest")
    install_cmd.add_argument("--dest", default="data/photos")
    crops_cmd = commands.add_parser("crops", help="write JPEG crops of the train split within a size budget")
    crops_cmd.add_argument("--dest", default="data/photos", help="the installed photos")
    crops_cmd.add_argument("--out", default="data/photo_crops")
    crops_cmd.add_argument("--max-mb", type=float, default=20.0)
    crops_cmd.add_argument("--size", type=int, default=640, help="crop side in pixels")
    crops_cmd.add_argument("--quality", type=int, default=92)
    crops_cmd.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.command == "install":
        entries = install(args.dest)
        megapixels = sum(e["width"] * e["height"] for e in entries) / 1e6
        held = sum(e["split"] == "held_out" for e in entries)
        print(f"photos: {len(entries)} photos, {megapixels:.0f} MP, {held} held out, in {args.dest}", file=sys.stderr)
    else:
        from .photo_crops import write_crops

        written = write_crops(list_photos(args.dest, "train"), args.out, max_bytes=int(args.max_mb * 2**20),
                              size=args.size, quality=args.quality, seed=args.seed)
        print(f"photos: {len(written)} crops in {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
