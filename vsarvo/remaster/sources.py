"""Which files a remaster job takes, and where each one's output goes.

A source argument is a video file, a folder (searched recursively for video extensions), a glob
pattern (``'in/**/*.mkv'``), a list file (``.txt``/``.list``/``.lst``: one path per line, relative
to the list's folder, ``#`` comments) or a vsarvo job manifest (``arvo-job.json``: its sources).
A file found in a folder keeps its path relative to that folder under the output folder (with the
output container's extension); any other file goes to the output folder's top.
"""
from __future__ import annotations

import glob
import json
import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SourceFile", "VIDEO_EXTENSIONS", "LIST_EXTENSIONS", "find_sources"]

VIDEO_EXTENSIONS = frozenset({
    ".mkv", ".mp4", ".m4v", ".mov", ".avi", ".webm", ".ts", ".m2ts", ".mts", ".mpg", ".mpeg", ".vob",
    ".wmv", ".flv", ".ogv", ".mxf", ".3gp", ".dv", ".y4m", ".nut",
})
LIST_EXTENSIONS = frozenset({".txt", ".list", ".lst"})


@dataclass(frozen=True)
class SourceFile:
    """A source (absolute path) and its path relative to the folder it was found in (its name alone
    when it was named directly), which its output keeps under the output folder."""

    path: Path
    relative: Path


def _walk(folder: Path, exclude: Path | None) -> list[SourceFile]:
    found = []
    for root, dirs, files in os.walk(folder):
        here = Path(root)
        # The job's own output folder may sit inside a source folder; its outputs are not sources.
        dirs[:] = sorted(d for d in dirs if exclude is None or (here / d).resolve() != exclude)
        for name in sorted(files):
            path = here / name
            if path.suffix.lower() in VIDEO_EXTENSIONS and not name.startswith("."):
                found.append(SourceFile(path.resolve(), path.relative_to(folder)))
    return found


def _listed(list_file: Path) -> list[str]:
    if list_file.suffix.lower() == ".json":
        try:
            files = json.loads(list_file.read_text())["files"]
            return [entry["source"] for entry in files.values()]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{list_file} is not a vsarvo job manifest ({exc})") from exc
    entries = []
    for line in list_file.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            entries.append(str(list_file.parent / line))
    return entries


def find_sources(arguments: list[str], *, exclude: Path | None = None) -> list[SourceFile]:
    """Expand source arguments into files, in argument order (folder contents sorted), each once.

    Args:
        arguments: files, folders, glob patterns, list files or job manifests.
        exclude: a folder whose contents are never sources (the job's output folder).

    Raises:
        ValueError: an argument that names nothing, or a list naming a missing file.
    """
    exclude = exclude.resolve() if exclude is not None else None
    sources: list[SourceFile] = []
    for argument in arguments:
        path = Path(argument).expanduser()
        if path.is_dir():
            sources += _walk(path, exclude)
        elif path.is_file():
            suffix = path.suffix.lower()
            if suffix in LIST_EXTENSIONS or suffix == ".json":
                for entry in _listed(path):
                    if not Path(entry).is_file():
                        raise ValueError(f"{path} lists {entry}, which is not a file")
                    sources.append(SourceFile(Path(entry).resolve(), Path(Path(entry).name)))
            else:
                sources.append(SourceFile(path.resolve(), Path(path.name)))
        elif glob.has_magic(argument):
            matches = sorted(Path(match) for match in glob.glob(os.path.expanduser(argument), recursive=True))
            files = [
                match for match in matches
                if match.is_file() and not match.name.startswith(".")
                and (exclude is None or not match.resolve().is_relative_to(exclude))
            ]
            if not files:
                raise ValueError(f"no files match {argument!r}")
            sources += [SourceFile(match.resolve(), Path(match.name)) for match in files]
        else:
            raise ValueError(f"{argument} does not exist")
    unique: dict[Path, SourceFile] = {}
    for source in sources:
        unique.setdefault(source.path, source)
    return list(unique.values())
