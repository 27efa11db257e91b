"""Write files so that no reader ever sees one half-written: a temporary name beside it, then a rename.

Every file the project produces (weights, checkpoints, engines, manifests, reports, PNGs, remastered
videos) goes through ``atomic_path`` or ``commit``: an interrupted write leaves the previous file, or
none, never a truncated one.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

__all__ = ["atomic_path", "commit", "temporary_glob", "write_bytes_atomic", "write_text_atomic"]


def _fsync_directory(folder: Path) -> None:
    """Flush a folder's entries (a rename in it) to disk; a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on a folder; the rename is then as durable as they allow
    finally:
        os.close(fd)


def commit(tmp: str | os.PathLike[str], final: str | os.PathLike[str], *, fsync: bool = True) -> Path:
    """Rename the finished file ``tmp`` onto ``final`` (same folder) and return ``final``.

    With ``fsync``, the file's data reaches the disk before the rename and the folder's entry after
    it, so a crash or power cut right after cannot leave the final name over missing data.
    """
    tmp, final = Path(tmp), Path(final)
    if fsync:
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    os.replace(tmp, final)
    if fsync:
        _fsync_directory(final.parent)
    return final


# How a temporary file of ``atomic_path`` is named beside its target: ``.<stem>.<random>.tmp<suffix>``.
_TEMPORARY_PREFIX, _TEMPORARY_SUFFIX = ".{stem}.", ".tmp{suffix}"


def temporary_glob(name: str) -> str:
    """The glob pattern matching the temporary files ``atomic_path`` makes for a target named ``name``
    (``"*"`` as the stem: those of any target with that suffix)."""
    path = Path(name)
    return _TEMPORARY_PREFIX.format(stem=path.stem) + "*" + _TEMPORARY_SUFFIX.format(suffix=path.suffix)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, fsync: bool = False) -> Iterator[Path]:
    """Yield a temporary path (``.<stem>.<random>.tmp<suffix>``) beside ``path``; when the block
    succeeds, rename it onto ``path``.

    The temporary name ends in ``path``'s own suffix (``.x.tmp.png``), so writers that pick the format
    from the extension (PIL, matplotlib) still do. The result gets the usual permissions (0666 less the
    umask) rather than a temporary file's private ones; ``fsync`` makes the rename durable (see
    ``commit``; for manifests that must survive a power cut). On failure the temporary file is removed
    and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=_TEMPORARY_PREFIX.format(stem=path.stem),
                                suffix=_TEMPORARY_SUFFIX.format(suffix=path.suffix))
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        commit(tmp, path, fsync=fsync)
    finally:
        # Never raises over the error that ended the block: a name that cannot be removed stays.
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes, *, fsync: bool = False) -> Path:
    with atomic_path(path, fsync=fsync) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: str | os.PathLike[str], text: str, *, fsync: bool = False) -> Path:
    with atomic_path(path, fsync=fsync) as tmp:
        tmp.write_text(text)
    return Path(path)
