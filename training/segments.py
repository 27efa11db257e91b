"""A run's segment log, ``segments.jsonl``: one JSON record per training segment (one invocation of
``arvo train``, a ``grow`` or a flow-net retraining), appended when the segment ends.

A record holds what the model card's Reproduce table needs, as the run itself measured it:
``name``, ``kind`` ("train", "grow", "flow" or "side" for a trial outside the shipped weights' lineage),
``start`` and ``end`` step, ``device``, ``command``, ``config`` (the TrainConfig as a dict, or None for
segments converted from an old log), ``best_val`` ([step, PSNR dB] within the segment, or None),
``val_set`` and ``source`` (what wrote the record). Records converted from an old log may add
``lr`` and ``stages`` (read from its step lines) and ``flow_epe`` (the last held-out end-point error).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from vsarvo.atomic import write_text_atomic

__all__ = ["KINDS", "append_segment", "read_segments", "command_settings", "settings_of", "changed_settings"]

KINDS = ("train", "grow", "flow", "side")
_REQUIRED = ("name", "kind", "start", "end", "device", "command", "config", "best_val", "val_set", "source")
# Settings that say where or how verbosely a segment ran, not what it trained.
_NOT_RECIPE = {"--out-dir", "--resume", "--log-every", "--checkpoint-every", "--device", "--threads",
               "--render-workers", "--time-limit", "--checkpoint", "--out", "--steps"}


def _checked(record: dict[str, Any]) -> dict[str, Any]:
    missing = [key for key in _REQUIRED if key not in record]
    if missing:
        raise ValueError(f"segment record {record.get('name')!r} lacks {missing}")
    if record["kind"] not in KINDS:
        raise ValueError(f"segment record {record['name']!r} has kind {record['kind']!r}, not one of {KINDS}")
    return record


def append_segment(path: str | os.PathLike[str], record: dict[str, Any]) -> None:
    """Adds ``record`` as the last line of ``path`` (rewritten through a temporary name)."""
    path = Path(path)
    before = path.read_text() if path.is_file() else ""
    write_text_atomic(path, before + json.dumps(_checked(record), sort_keys=True) + "\n")


def read_segments(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The records of ``path`` in the order the segments ran."""
    lines = Path(path).read_text().splitlines()
    return [_checked(json.loads(line)) for line in lines if line.strip()]


def command_settings(command: str) -> dict[str, str]:
    """``--flag value`` pairs of an ``arvo train`` command; a switch maps to "on" (``--flag``) or "off"
    (``--no-flag``). For a ``grow ..., then arvo train ...`` record, those of the train part."""
    part = command.split(", then ")[-1]
    tokens = part.replace("(", " ( ").replace(")", " ) ").split()
    settings: dict[str, str] = {}
    depth = 0
    for i, token in enumerate(tokens):
        depth += (token == "(") - (token == ")")
        if depth or not token.startswith("--"):
            continue
        value = tokens[i + 1].rstrip(",;") if i + 1 < len(tokens) else "--"
        if not value.startswith("--") and value not in "()":
            settings[token] = value
        elif token.startswith("--no-"):
            settings["--" + token.removeprefix("--no-")] = "off"
        else:
            settings[token] = "on"
    return settings


def settings_of(record: dict[str, Any]) -> dict[str, str]:
    """The segment's recipe as ``--flag -> value``: from its config when recorded, else its command."""
    config = record.get("config")
    if config is not None:
        flat = {**{k: v for k, v in config.items() if k != "model"}, **config.get("model", {})}
        return {"--" + key.replace("_", "-"): ("on" if value else "off") if isinstance(value, bool) else str(value)
                for key, value in flat.items() if value is not None}
    return command_settings(record["command"]) if record.get("command") else {}


def _same(a: str, b: str) -> bool:
    try:
        return float(a) == float(b)
    except ValueError:
        return a == b


def changed_settings(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """``--flag value`` for each recipe setting of ``after`` that ``before`` also sets, to another value."""
    changed = [(flag, value) for flag, value in after.items()
               if flag not in _NOT_RECIPE and flag in before and not _same(before[flag], value)]
    return [flag if value == "on" else "--no-" + flag[2:] if value == "off" else f"{flag} {value}"
            for flag, value in changed]
