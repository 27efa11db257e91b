"""`python -m vsarvo.training.segments_from_log LOG --out segments.jsonl`: converts a concatenated
training log (the shipped run's ``train_log.txt``, written before runs recorded their segments) into
``segments.jsonl`` records (:mod:`.segments`).

A segment starts at a ``=== <log file>`` line (a run's own log) or a ``# segment: ...`` note; a
``# side trial`` note starts a trial outside the shipped lineage, and ``<run>/train.log:`` prefixes
split a note's lines among several trials. Steps, learning rate and stages come from the trainer's own
step lines, the best validation from its ``validation PSNR`` lines, the command from the note (text
after ``): ``, or a following ``# arvo ...`` line; a ``=== `` segment records none). The device is
the one a ``# segments below ran on ...`` note names; before the first such note, the CPU the project
trained on (those segments' commands set ``--threads``, a CPU setting).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any, Sequence

from vsarvo.atomic import write_text_atomic

__all__ = ["segments_from_log", "main"]

FIRST_DEVICE = "cpu"
_RUN_LOG = re.compile(r"^=== (?P<log>\S+)$")
_NOTE = re.compile(r"^# (?P<kind>segment|side trials?)\b:?\s*(?P<text>.*)$")
_DEVICE = re.compile(r"^# segments below ran on (?P<device>[^(,]+?)\s*[(,]")
_NOTE_COMMAND = re.compile(r"^# (?P<command>(?:arvo|python) .*)$")
_PREFIX = re.compile(r"^(?P<run>\S+)/train\.log:(?P<line>.*)$")
_STEP = re.compile(r"^step (?P<step>\d+)/\d+ stages (?P<stages>\d+) .* lr (?P<lr>\S+) ")
_VAL = re.compile(r"^step (?P<step>\d+): validation PSNR (?P<psnr>[\d.]+) dB")
_RESUMED = re.compile(r"^resumed at step (?P<step>\d+)")
_VAL_SET = re.compile(r"^validation set changed at step \d+ \(now (?P<set>.+)\);")
_FLOW = re.compile(r"^flow \d+/\d+: .*held-out EPE (?P<epe>[\d.]+) px")
_SPEED = re.compile(r";\s*[\d.-]+ it/s$")
# Remarks the log's notes put in parentheses inside a command ("(effective 1e-4)", "(step 6100)").
_REMARK = re.compile(r"\s*\([^()]*\)")


def _new_segment(name: str, kind: str, device: str, val_set: str | None, source: str) -> dict[str, Any]:
    return {"name": name, "kind": kind, "start": None, "end": None, "device": device, "command": None,
            "config": None, "best_val": None, "val_set": val_set, "source": source,
            "lr": None, "stages": [], "flow_epe": None}


def _from_note(text: str, kind: str, device: str, val_set: str | None, source: str) -> dict[str, Any]:
    """A segment opened by a ``# segment:`` or ``# side trial`` note."""
    run = re.search(r"\(run (\w+)", text)
    name = f"run {run.group(1)}" if run else f"trial {text.split()[0]}" if kind == "side" else text.split("(")[0].strip()
    if "flow_pretrain" in text and "flow net retrained" in text:
        kind, name = "flow", "flow net retrained"
    seg = _new_segment(name, kind, device, val_set, source)
    steps = re.search(r"steps? (\d+)(?:-(\d+))?", text)
    if steps:
        seg["start"] = int(steps.group(1))
        seg["end"] = int(steps.group(2) or steps.group(1))
    if "): " in text:
        seg["command"] = _REMARK.sub("", _SPEED.sub("", text.split("): ", 1)[1])).strip()
    elif kind == "flow":
        seg["command"] = re.search(r"\((python -m [^)]*)\)", text).group(1)
    if kind == "segment":
        command = seg["command"] or ""
        seg["kind"] = "grow" if command.startswith("python -m vsarvo.training.grow") and ", then " not in command else "train"
    return seg


def _take(seg: dict[str, Any], line: str) -> None:
    """Folds one trainer log line into ``seg``."""
    if m := _RESUMED.match(line):
        seg["start"] = int(m["step"])
    elif m := _STEP.match(line):
        step = int(m["step"])
        seg["lr"] = seg["lr"] or float(m["lr"])
        seg["stages"] = sorted({*seg["stages"], int(m["stages"])})
        seg["end"] = max(seg["end"] or 0, step)
    elif m := _VAL.match(line):
        step, psnr = int(m["step"]), float(m["psnr"])
        seg["end"] = max(seg["end"] or 0, step)
        if seg["best_val"] is None or psnr > seg["best_val"][1]:
            seg["best_val"] = [step, psnr]
    elif m := _FLOW.match(line):
        seg["flow_epe"] = float(m["epe"])


def _finished(segments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Fills unlogged starts (0 for the first segment; unknown, None, for a trial logged only by its
    validation lines) and marks a segment that the next one restarted from its own start as a side run:
    nothing it trained reached the shipped weights."""
    for i, seg in enumerate(segments):
        if seg["start"] is None and seg["kind"] != "side":
            seg["start"] = 0
        if seg["end"] is None:
            seg["end"] = seg["start"]
        later = [s for s in segments[i + 1:] if s["kind"] != "side"]
        if seg["kind"] == "train" and later and later[0]["start"] <= seg["start"] < seg["end"]:
            seg["kind"] = "side"
    return segments


def segments_from_log(text: str, source: str = "train_log.txt") -> list[dict[str, Any]]:
    """The segment records of a concatenated training log, in its order."""
    segments: list[dict[str, Any]] = []
    device, val_set = FIRST_DEVICE, None
    trials: dict[str, dict[str, Any]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        where = f"{source} line {number}"
        if m := _DEVICE.match(line):
            device = m["device"]
        elif m := _RUN_LOG.match(line):
            segments.append(_new_segment(Path(m["log"]).stem, "train", device, val_set, where))
        elif m := _NOTE.match(line):
            kind = "segment" if m["kind"] == "segment" else "side"
            segments.append(_from_note(m["text"], kind, device, val_set, where))
            trials = {}
        elif segments and (m := _NOTE_COMMAND.match(line)) and segments[-1]["command"] is None:
            segments[-1]["command"] = _REMARK.sub("", m["command"]).strip()
        elif segments and (m := _PREFIX.match(line)):
            if m["run"] not in trials:
                trials[m["run"]] = _new_segment(m["run"], "side", device, val_set, where)
                segments.append(trials[m["run"]])
            _take(trials[m["run"]], m["line"])
        elif m := _VAL_SET.match(line):
            val_set = segments[-1]["val_set"] = m["set"]
        elif segments:
            _take(segments[-1], line)
    # A note that only introduced prefixed trials holds no segment of its own.
    return _finished([s for s in segments if not (s["kind"] == "side" and s["end"] is None and s["start"] is None)])


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vsarvo.training.segments_from_log", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("log", type=Path, help="a concatenated training log (train_log.txt)")
    p.add_argument("--out", type=Path, required=True, help="segments.jsonl to write")
    args = p.parse_args(argv)
    records = segments_from_log(args.log.read_text(), source=args.log.name)
    write_text_atomic(args.out, "".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
    print(f"wrote {len(records)} segments to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
