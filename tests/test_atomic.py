"""The one temp-name-then-rename helper every writer in the project uses."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from vsarvo.atomic import atomic_path, write_bytes_atomic, write_text_atomic


def test_a_completed_write_replaces_the_file_with_normal_permissions(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "report.json"
    write_text_atomic(target, "old")
    write_text_atomic(target, "new", fsync=True)
    assert target.read_text() == "new"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
    assert sorted(p.name for p in target.parent.iterdir()) == ["report.json"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = write_bytes_atomic(tmp_path / "weights.bin", b"good")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("disk full")
    assert target.read_bytes() == b"good"
    assert [p.name for p in tmp_path.iterdir()] == ["weights.bin"]


def test_the_temporary_name_keeps_the_suffix_writers_pick_formats_by(tmp_path: Path) -> None:
    with atomic_path(tmp_path / "curves.png") as tmp:
        assert tmp.parent == tmp_path and tmp.name.endswith(".png") and tmp.name != "curves.png"
        tmp.write_bytes(b"png")
    assert (tmp_path / "curves.png").read_bytes() == b"png"


def test_temporary_glob_matches_the_temporary_file_atomic_path_makes(tmp_path):
    from vsarvo.atomic import temporary_glob

    for name in ("arvo-job.json", "clip.mkv.log"):
        with atomic_path(tmp_path / name) as tmp:
            tmp.write_text("x")
            assert list(tmp_path.glob(temporary_glob(name))) == [tmp]
            assert list(tmp_path.glob(temporary_glob("*" + Path(name).suffix))) == [tmp]
        assert list(tmp_path.glob(temporary_glob(name))) == []
