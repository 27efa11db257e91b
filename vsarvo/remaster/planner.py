"""A remaster job's plan: which files it takes, where each one's output goes, and the settings
(with their hash) that decide whether a finished output can be kept on a re-run."""
from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from vsarvo.digest import file_sha256
from vsarvo.remaster.encoder import Encoder
from vsarvo.remaster.job import DeblurOptions, FileTask, UsageError
from vsarvo.remaster.manifest import LOG_DIR, settings_hash
from vsarvo.remaster.sources import SourceFile, find_sources

__all__ = ["PlannedFile", "plan_job", "weights_digest"]


class PlannedFile(NamedTuple):
    """One file of the job: its task, and the settings it is made with and their hash."""

    task: FileTask
    digest: str
    settings: dict[str, Any]


def weights_digest(weights: str | None) -> str:
    """SHA-256 of the weight file the filter will load (the shipped one when ``weights`` is None).

    Raises:
        UsageError: the file is missing.
    """
    if weights is None:
        from vsarvo.weights import default_weights_path  # loads torch: only when no --weights is given

        path = default_weights_path()
    else:
        path = Path(weights)
    if not path.is_file():
        raise UsageError(f"weights not found: {path}; pass --weights <file.safetensors written by 'arvo train'>")
    return file_sha256(path)


def _output_path(source: SourceFile, out: Path, encoder: Encoder, owners: dict[Path, Path]) -> Path:
    """Where ``source``'s output goes under ``out``; ``owners`` (output -> source so far) catches clashes."""
    output = out / source.relative.with_suffix(encoder.extension)
    if output in owners:
        raise UsageError(
            f"{source.path} and {owners[output]} would both be written to {output}; "
            "remaster them into different --out folders"
        )
    if output.resolve() == source.path:
        raise UsageError(f"{source.path} would be overwritten by its own output; choose another --out")
    owners[output] = source.path
    return output


def plan_job(sources: list[str], out: Path, encoder: Encoder, deblur: DeblurOptions) -> list[PlannedFile]:
    """The job's files in source order, from the SRC arguments ``sources``, into the folder ``out``.

    Raises:
        UsageError: no sources, a source that would be overwritten, or two sources with one output.
    """
    try:
        found = find_sources(sources, exclude=out)
    except (ValueError, OSError) as exc:
        raise UsageError(str(exc)) from exc
    if not found:
        raise UsageError(f"no video files in {' '.join(sources)}")
    digest = weights_digest(deblur.weights)
    planned = []
    owners: dict[Path, Path] = {}
    for source in found:
        output = _output_path(source, out, encoder, owners)
        stat = source.path.stat()
        key = output.relative_to(out).as_posix()
        settings = {
            "source": {"path": str(source.path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns},
            "deblur": deblur.settings(digest),
            "encode": encoder.settings(),
        }
        task = FileTask(
            key=key, source=str(source.path), output=str(output), deblur=deblur, encoder=encoder,
            log=str(out / LOG_DIR / f"{key}.log"),
        )
        planned.append(PlannedFile(task, settings_hash(settings), settings))
    return planned
