"""The real-photo collection: catalogue, held-out split, installer, listing and the compact crop set."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from vsarvo.training.data.photo_catalogue import CATALOGUE, CataloguedPhoto, packages
from vsarvo.training.data.photo_crops import CROPS_MANIFEST, write_crops
from vsarvo.training.data.photos import MANIFEST, install, list_photos, main, read_manifest, split_of

HELD_OUT = {
    "plasma-workspace-wallpapers/EveningGlow.jpg",
    "mate-backgrounds/Dune.jpg",
    "mate-backgrounds/RainDrops.jpg",
    "mate-backgrounds/Wood.jpg",
    "lomiri-wallpapers-16.04/aitzgorri_by_Aitzol_Berasategi.jpg",
    "scikit-image/coffee.png",
}


def test_catalogue_names_are_unique_and_licensed():
    names = [photo.name for photo in CATALOGUE]
    assert len(names) == len(set(names)) == 39
    assert all(photo.licence and photo.credit and photo.kind in ("deb", "pypi") for photo in CATALOGUE)
    assert packages("pypi") == ["scikit-image"]
    assert "plasma-workspace-wallpapers" in packages("deb")


def test_held_out_split_is_stable_and_about_fifteen_percent():
    held_out = {photo.name for photo in CATALOGUE if split_of(photo.name) == "held_out"}
    assert held_out == HELD_OUT
    shares = [split_of(f"package/photo{i}.jpg") == "held_out" for i in range(2000)]
    assert 0.12 < np.mean(shares) < 0.18


def _fake_collection(root, count=12):
    entries = []
    for i in range(count):
        name = f"pkg/photo{i:02d}.png"
        (root / "pkg").mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((80, 96, 3), i * 5 % 256, np.uint8)).save(root / name)
        entries.append({"name": name, "file": name, "split": split_of(name)})
    (root / MANIFEST).write_text(json.dumps({"photos": entries}))
    return entries


def test_listed_splits_are_disjoint_and_cover_the_collection(tmp_path):
    entries = _fake_collection(tmp_path, 40)
    train, held_out = list_photos(tmp_path, "train"), list_photos(tmp_path, "held_out")
    assert held_out and not set(train) & set(held_out)
    assert sorted(train + held_out) == sorted(tmp_path / e["file"] for e in entries)
    assert train == sorted(train)


def test_listing_without_an_install_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="photos install"):
        list_photos(tmp_path, "train")
    _fake_collection(tmp_path)
    with pytest.raises(ValueError, match="split"):
        list_photos(tmp_path, "test")


def test_install_copies_a_pypi_photo_with_its_provenance(tmp_path):
    photo = CataloguedPhoto("pypi", "scikit-image", "skimage/data/coffee.png", "CC0-1.0", "Rachel Michetti")
    (entry,) = install(tmp_path, catalogue=[photo])
    assert (entry["width"], entry["height"]) == (600, 400)
    assert entry["split"] == "held_out" and entry["licence"] == "CC0-1.0"
    assert entry["version"] and entry["bytes"] == (tmp_path / entry["file"]).stat().st_size
    import hashlib
    assert entry["sha256"] == hashlib.sha256((tmp_path / entry["file"]).read_bytes()).hexdigest()
    assert read_manifest(tmp_path) == [entry]
    assert (tmp_path / "copyright" / "scikit-image").is_file()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("apt-get") is None, reason="needs apt-get")
def test_install_unpacks_a_debian_package_without_installing_it(tmp_path):
    photo = next(p for p in CATALOGUE if p.package == "lomiri-wallpapers-20.04")
    (entry,) = install(tmp_path, catalogue=[photo])
    assert (entry["width"], entry["height"]) == (6028, 3391)
    assert entry["licence"] == "CC-BY-SA-3.0" and entry["version"].startswith("20.04")
    assert "CC-BY-SA-3.0" in (tmp_path / "copyright" / "lomiri-wallpapers-20.04").read_text()


def _photos(tmp_path, count=3):
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        path = tmp_path / f"source{i}.png"
        Image.fromarray((rng.random((300, 400, 3)) * 255).astype(np.uint8)).save(path)
        paths.append(path)
    return paths


def test_crops_stay_within_the_budget_and_draw_on_every_photo(tmp_path):
    sources = _photos(tmp_path)
    budget = 60_000
    written = write_crops(sources, tmp_path / "crops", max_bytes=budget, size=96, quality=92, seed=1)
    assert len(written) >= 3
    assert sum(p.stat().st_size for p in written) <= budget
    records = json.loads((tmp_path / "crops" / CROPS_MANIFEST).read_text())["crops"]
    assert {r["source"] for r in records} == {str(p) for p in sources}
    with Image.open(written[0]) as image:
        assert image.size == (96, 96) and image.format == "JPEG"


def test_crops_are_repeatable(tmp_path):
    sources = _photos(tmp_path)
    first = write_crops(sources, tmp_path / "a", max_bytes=30_000, size=64, seed=2)
    second = write_crops(sources, tmp_path / "b", max_bytes=30_000, size=64, seed=2)
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]


def test_crops_refuse_bad_input(tmp_path):
    with pytest.raises(ValueError, match="install"):
        write_crops([], tmp_path, max_bytes=1000)
    with pytest.raises(ValueError, match="smaller"):
        write_crops(_photos(tmp_path, 1), tmp_path / "c", max_bytes=10_000, size=512)


def test_crops_command_uses_only_the_train_split(tmp_path):
    _fake_collection(tmp_path, 20)
    out = tmp_path / "crops"
    assert main(["crops", "--dest", str(tmp_path), "--out", str(out), "--max-mb", "0.05", "--size", "64"]) == 0
    sources = {r["source"] for r in json.loads((out / CROPS_MANIFEST).read_text())["crops"]}
    assert sources and sources <= {str(p) for p in list_photos(tmp_path, "train")}
