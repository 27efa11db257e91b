"""Where compiled artefacts (ONNX graphs, TensorRT engines, timing caches) live, and how they are written.

Everything that would invalidate an artefact is in its file name, so a cache hit never needs a check
beyond "the file exists". Files are written to a temporary name in the same folder and renamed when
complete, so a crashed or concurrent build never leaves a half-written artefact under the final name.
"""
from __future__ import annotations

import logging
import os
import re
import tempfile
from pathlib import Path

__all__ = ["CACHE_ENV", "cache_dir", "safe_name"]

log = logging.getLogger("vsarvo.export")

# Overrides the default cache folder (~/.cache/vsarvo, or $XDG_CACHE_HOME/vsarvo).
CACHE_ENV = "VSARVO_CACHE"


def _default_dir() -> Path:
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override)
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


def cache_dir(requested: str | os.PathLike[str] | None = None, *, kind: str) -> Path:
    """The folder for artefacts of one ``kind`` ("onnx", "tensorrt", "torch_tensorrt"), created if needed.

    ``requested`` (else $VSARVO_CACHE, else the user cache folder) is used when it can be written to;
    otherwise a per-user folder under the system temp dir is used and a warning names both.
    """
    preferred = (Path(requested) if requested is not None else _default_dir()) / kind
    if _writable(preferred):
        return preferred
    fallback = Path(tempfile.gettempdir()) / f"vsarvo-cache-{os.getuid()}" / kind
    if not _writable(fallback):
        raise OSError(f"neither {preferred} nor {fallback} can be written; pass a writable cache folder")
    log.warning("cache folder %s is not writable; using %s instead", preferred, fallback)
    return fallback


def safe_name(text: str) -> str:
    """``text`` reduced to characters that are safe in a file name on every platform."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "unknown"
