"""The on-disk cache of compiled artefacts (exported ONNX graphs, TensorRT engines and timing caches,
torch-tensorrt programs): where it lives, what it holds, and ``arvo cache show|clear``.

The folder is resolved in one place, :func:`cache_root`: the folder asked for, else $VSARVO_CACHE,
else $XDG_CACHE_HOME/vsarvo (~/.cache/vsarvo); where that cannot be written, a per-user folder under
the system's temporary folder, as vs-mlrt does. Artefacts of one kind live in a subfolder of it
(``onnx/``, ``tensorrt/``, ``torch_tensorrt/``), each under a name that encodes everything that would
invalidate it, so a cache hit never needs a check beyond "the file exists".

Torch-free: the ``arvo cache`` command starts at once.
"""
from __future__ import annotations

import argparse
import logging
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from vsarvo.backends.errors import CACHE_FIX, CacheError

__all__ = [
    "CACHE_ENV", "KINDS", "GROUPS", "cache_root", "cache_dir", "safe_name", "Artifact", "list_artifacts",
    "clear_artifacts", "add_parser",
]

log = logging.getLogger("vsarvo.export")

CACHE_ENV = "VSARVO_CACHE"

# The cache's subfolders, and which group ``arvo cache clear --onnx / --engines`` removes them with.
KINDS = {"onnx": "onnx", "tensorrt": "engines", "torch_tensorrt": "engines"}
GROUPS = ("onnx", "engines")


def _preferred_root(requested: str | os.PathLike[str] | None) -> Path:
    if requested is not None:
        return Path(requested).expanduser()
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "vsarvo"


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, suffix=".probe")
    except OSError:
        return False
    os.close(fd)
    os.unlink(probe)
    return True


def cache_root(requested: str | os.PathLike[str] | None = None) -> Path:
    """The cache folder, created if needed: ``requested``, else $VSARVO_CACHE, else the user cache folder;
    a per-user folder under the system temp folder when that cannot be written (a warning names both).

    Raises:
        CacheError: neither can be written (it says how to point the cache elsewhere).
    """
    preferred = _preferred_root(requested)
    if _writable(preferred):
        return preferred
    fallback = Path(tempfile.gettempdir()) / f"vsarvo-cache-{os.getuid()}"
    if not _writable(fallback):
        raise CacheError(
            f"the vsarvo cache folder {preferred} cannot be written, nor its fallback {fallback} in the "
            f"temporary folder (read-only, full or not a folder); {CACHE_FIX}"
        )
    log.warning("cache folder %s is not writable; using %s instead", preferred, fallback)
    return fallback


def cache_dir(requested: str | os.PathLike[str] | None = None, *, kind: str) -> Path:
    """The subfolder for artefacts of one ``kind`` (a key of ``KINDS``) under :func:`cache_root`, created;
    CacheError where it cannot be."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    folder = cache_root(requested) / kind
    try:
        folder.mkdir(exist_ok=True)
    except OSError as exc:
        raise CacheError.writing(folder, exc) from exc
    return folder


def safe_name(text: str) -> str:
    """``text`` reduced to characters that are safe in a file name on every platform."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "unknown"


@dataclass(frozen=True)
class Artifact:
    """One cached file: its path, its kind (a key of ``KINDS``) and its size in bytes."""

    path: Path
    kind: str
    size: int

    @property
    def group(self) -> str:
        return KINDS[self.kind]


def list_artifacts(root: Path) -> list[Artifact]:
    """Every file in ``root``'s artefact subfolders, by kind then name (other files are not the cache's)."""
    found = []
    for kind in KINDS:
        folder = root / kind
        if folder.is_dir():
            found += [Artifact(p, kind, p.stat().st_size) for p in sorted(folder.iterdir()) if p.is_file()]
    return found


def clear_artifacts(root: Path, groups: tuple[str, ...] = GROUPS) -> list[Artifact]:
    """Delete the cached files of ``groups`` ("onnx", "engines") under ``root``; returns what was deleted."""
    unknown = set(groups) - set(GROUPS)
    if unknown:
        raise ValueError(f"groups must be among {', '.join(GROUPS)}, got {sorted(unknown)}")
    removed = []
    for artifact in list_artifacts(root):
        if artifact.group in groups:
            artifact.path.unlink(missing_ok=True)
            removed.append(artifact)
    return removed


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024:
            break
    return f"{value:.1f} {unit}"


def _summary(artifacts: list[Artifact]) -> str:
    parts = []
    for group in GROUPS:
        members = [a for a in artifacts if a.group == group]
        parts.append(f"{group} {_size(sum(a.size for a in members))} in {len(members)}")
    total = sum(a.size for a in artifacts)
    return f"{len(artifacts)} file(s), {_size(total)} ({', '.join(parts)})"


def _show(args: argparse.Namespace) -> int:
    root = cache_root(args.cache)
    artifacts = list_artifacts(root)
    print(f"cache: {root}")
    for artifact in artifacts:
        print(f"{artifact.group:8} {_size(artifact.size):>10}  {artifact.path.relative_to(root)}")
    print(_summary(artifacts))
    return 0


def _clear(args: argparse.Namespace) -> int:
    groups = tuple(g for g in GROUPS if getattr(args, g)) or GROUPS
    root = cache_root(args.cache)
    removed = clear_artifacts(root, groups)
    print(f"removed from {root}: {_summary(removed)}")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``arvo cache show`` and ``arvo cache clear``."""
    cache = subparsers.add_parser(
        "cache", help="show or clear the cached ONNX graphs and TensorRT engines",
        description="The cache of per-frame-size artefacts the ort and trt backends and 'arvo export' write.",
    )
    actions = cache.add_subparsers(dest="cache_command", metavar="ACTION", required=True)
    folder_help = f"cache folder (default: ${CACHE_ENV}, else ~/.cache/vsarvo)"
    show = actions.add_parser("show", help="list the cached files with their sizes and the total")
    show.add_argument("--cache", type=Path, default=None, help=folder_help)
    show.set_defaults(func=_show)
    clear = actions.add_parser("clear", help="delete cached files (default: ONNX graphs and engines)")
    clear.add_argument("--cache", type=Path, default=None, help=folder_help)
    only = clear.add_mutually_exclusive_group()
    only.add_argument("--onnx", action="store_true", help="only the exported ONNX graphs")
    only.add_argument("--engines", action="store_true",
                      help="only the TensorRT engines, timing caches and torch-tensorrt programs")
    clear.set_defaults(func=_clear)

