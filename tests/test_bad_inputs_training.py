"""Bad arguments to the training commands (`arvo train`, `arvo eval`, the shard writer, the GPU segment),
run as a user runs them: each is refused at once with exit 2 and a message naming the value and the fix,
no traceback, and nothing written (no output folder, no rendered clips)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

TRAIN = [sys.executable, "-m", "vsarvo.cli", "train", "--out-dir", "run"]
EVAL = [sys.executable, "-m", "vsarvo.cli", "eval", "--out", "report"]
SHARDS = [sys.executable, "-m", "vsarvo.training.shards", "--out", "shards"]
SEGMENT = [sys.executable, "-m", "vsarvo.training.gpu_segment", "run", "--out", "OUT"]

CASES = [
    ("train-steps-negative", TRAIN + ["--steps", "-1"], "--steps -1 is out of range"),
    ("train-steps-zero", TRAIN + ["--steps", "0"], "--steps 0 is out of range"),
    ("train-batch-zero", TRAIN + ["--batch-size", "0"], "--batch-size 0 is out of range"),
    ("train-crop-too-small", TRAIN + ["--crop", "32"], "--crop 32 is too small"),
    ("train-clips-zero", TRAIN + ["--procedural-clips", "0"], "--procedural-clips 0 is out of range"),
    ("train-size-too-small", TRAIN + ["--procedural-size", "16"], "--procedural-size 16 is out of range"),
    ("train-frames-below-window", TRAIN + ["--procedural-frames", "3"], "--procedural-frames 3 is too few"),
    ("train-time-limit-negative", TRAIN + ["--time-limit", "-5"], "--time-limit -5.0 is out of range"),
    ("train-lr-zero", TRAIN + ["--lr", "0"], "--lr 0.0 is out of range"),
    ("train-lr-nan", TRAIN + ["--lr", "nan"], "--lr nan is out of range"),
    ("train-validate-every-zero", TRAIN + ["--validate-every", "0"], "--validate-every 0 is out of range"),
    ("train-precision-unknown", TRAIN + ["--precision", "fp8"], "--precision 'fp8' is unknown"),
    ("train-shards-and-data", TRAIN + ["--shards", "s", "--data", "d"], "both give the training set"),
    ("train-resume-missing", TRAIN + ["--resume", "nope.pt"], "--resume nope.pt does not exist"),
    ("eval-clips-zero", EVAL + ["--clips", "0"], "--clips 0 is out of range"),
    ("eval-frames-zero", EVAL + ["--frames", "0"], "--frames 0 is out of range"),
    ("eval-size-too-small", EVAL + ["--size", "32"], "--size 32 is out of range"),
    ("eval-crop-eats-frame", EVAL + ["--size", "64", "--crop", "40"], "--crop 40 leaves nothing"),
    ("eval-stages-zero", EVAL + ["--stages", "0"], "--stages 0 is out of range"),
    ("eval-weights-missing", EVAL + ["--weights", "nope.safetensors"], "--weights nope.safetensors does not exist"),
    ("shards-clips-zero", SHARDS + ["--clips", "0"], "--clips 0 is out of range"),
    ("segment-resume-missing", SEGMENT + ["--resume", "nope.pt"], "checkpoint nope.pt does not exist"),
    ("segment-budget-zero", SEGMENT + ["--resume", "nope.pt", "--budget", "0"], "--budget 0.0 is out of range"),
]


@pytest.mark.parametrize("argv, message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_training_argument_is_refused_up_front_and_writes_nothing(tmp_path, argv, message):
    result = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert list(Path(tmp_path).iterdir()) == []  # no output folder, no rendered clips
