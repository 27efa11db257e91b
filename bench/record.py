"""Result files: where they live, the envelope every benchmark writes, atomic writing and loading."""
from __future__ import annotations

import contextlib
import json
import os
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator

from bench.machine import describe_machine

__all__ = ["RESULTS_DIR", "REPO_ROOT", "envelope", "atomic_output", "write_json", "load_results"]

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "bench" / "results"


def envelope(benchmark: str, argv: list[str], note: str | None) -> dict[str, Any]:
    """The fields every result file starts with: which benchmark, the command that reproduces it, the machine.

    ``note`` is free text about the conditions (e.g. "a training run was using the CPU"); the machine
    description records the load average too, so contention is visible even without a note.
    """
    # The note is recorded in its own field; it is not needed to reproduce the numbers.
    command = list(argv)
    if "--note" in command:
        i = command.index("--note")
        del command[i:i + 2]
    return {
        "benchmark": benchmark,
        "command": shlex.join(["python", "-m", f"bench.{benchmark}", *command]),
        "note": note,
        "machine": describe_machine(),
    }


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block succeeds, rename it onto ``path``.

    Readers never see a half-written file; the result gets the usual permissions (0666 less the umask)
    rather than the private ones of a temporary file. On failure the temporary file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem + ".", suffix=path.suffix + ".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json(path: str | os.PathLike[str], data: dict[str, Any]) -> Path:
    """Write ``data`` as indented JSON to ``path`` atomically."""
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")
    print(f"wrote {path}", file=sys.stderr)
    return Path(path)


def load_results(folder: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """Every ``*.json`` in ``folder`` that carries a ``benchmark`` field, keyed by that field."""
    results: dict[str, dict[str, Any]] = {}
    for path in sorted(Path(folder).glob("*.json")):
        data = json.loads(path.read_text())
        if isinstance(data, dict) and "benchmark" in data:
            results[data["benchmark"]] = data
    return results
