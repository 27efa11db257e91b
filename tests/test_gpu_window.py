"""gpu_window.sh: a lent GPU's training segment and benchmark in one device call.

The real gpu_window.sh, training/gpu_segment.sh and bench/gpu_run.sh run from a copy of the checkout's
layout; only python3 is a stand-in (no GPU here), which logs its arguments and writes the files the real
programs write under their --out (gpu_segment.py's docstring and bench/gpu_run.sh's header list them).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ("gpu_window.sh", "training/device_call.sh", "training/gpu_segment.sh", "bench/gpu_run.sh")

STAND_IN = """#!/bin/sh
echo "ARGS=$*" >> {calls}
out_of() {{ while [ "$1" != "--out" ]; do shift; done; echo "$2"; }}
case "$*" in
  *vsarvo.training.gpu_segment*)
    out=$(out_of "$@"); mkdir -p "$out"
    for f in segment.json curves.png run.tar.000 run.tar.001 run.tar.002; do echo x > "$out/$f"; done
    exit {train_status} ;;
  *bench.gpu*) echo '{{"benchmark": "gpu"}}' > "$(out_of "$@")" ;;
  *bench.report*) echo table > "$(out_of "$@")" ;;
esac
"""


def window(tmp_path: Path, *, train_status: int = 0, **env: str) -> tuple[subprocess.CompletedProcess[str], Path, list[str]]:
    root = tmp_path / "checkout"
    for script in SCRIPTS:
        (root / script).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO_ROOT / script, root / script)
    (root / ".whl").mkdir()
    (root / ".whl" / "vapoursynth-81-cp312-abi3-manylinux_2_28_x86_64.whl").write_bytes(b"\0" * 1000)
    (root / "carry" / "footage_shards").mkdir(parents=True)
    (root / "carry" / "footage_shards" / "footage_000.npz").write_bytes(b"\0" * 2 * 2**20)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls.log"
    (bin_dir / "python3").write_text(STAND_IN.format(calls=calls, train_status=train_status))
    (bin_dir / "python3").chmod(0o755)
    (bin_dir / "nvidia-smi").write_text("#!/bin/sh\necho 'NVIDIA H200'\n")
    (bin_dir / "nvidia-smi").chmod(0o755)
    out = tmp_path / "OUT"
    run_env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "OUT": str(out), "PYTHONPATH": "", **env}
    done = subprocess.run(["bash", "gpu_window.sh"], cwd=root, env=run_env, capture_output=True, text=True, timeout=60)
    log = calls.read_text().splitlines() if calls.exists() else []
    return done, out, log


def test_trains_then_benchmarks_with_the_split_budget_and_returns_at_most_8_files(tmp_path):
    done, out, log = window(tmp_path)
    assert done.returncode == 0, done.stderr
    train = next(i for i, line in enumerate(log) if "vsarvo.training.gpu_segment run" in line)
    bench = next(i for i, line in enumerate(log) if "-m bench.gpu " in line)
    assert train < bench
    assert f"--out {out}/train --budget 290" in log[train]
    assert log[bench].endswith(f"-m bench.gpu --budget 170 --out {out}/bench/gpu.json")
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == ["bench/gpu.json", "bench/gpu.log", "train/curves.png", "train/run.tar.000", "train/run.tar.001",
                     "train/run.tar.002", "train/segment.json", "train/train_log.txt"]
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", part) for f in files for part in f.split("/"))
    assert "NVIDIA H200" in (out / "bench" / "gpu.log").read_text()  # nvidia-smi folded into the log


def test_the_benchmark_runs_even_when_the_training_fails_and_the_failure_is_the_exit_status(tmp_path):
    done, out, log = window(tmp_path, train_status=3)
    assert done.returncode == 3
    assert any("-m bench.gpu " in line for line in log)
    assert (out / "bench" / "gpu.json").is_file()
    assert "training ended with status 3" in done.stderr


def test_budgets_come_from_the_environment(tmp_path):
    done, out, log = window(tmp_path, WINDOW_TRAIN_S="100", WINDOW_BENCH_S="50")
    assert done.returncode == 0, done.stderr
    assert any(f"--out {out}/train --budget 100" in line for line in log)
    assert any(line.endswith(f"-m bench.gpu --budget 50 --out {out}/bench/gpu.json") for line in log)


@pytest.mark.parametrize("limit", ["0", "1"])
def test_what_travelled_over_the_limit_stops_before_any_work(tmp_path, limit):
    # The carried folders hold 2 MiB: a 1 MiB limit refuses as a 0 MiB one does.
    done, _, log = window(tmp_path, WINDOW_MAX_MIB=limit)
    assert done.returncode == 2
    assert "make gpu-window-carry" in done.stderr
    assert log == []
