"""gpu_window.sh: a lent GPU's training segment, benchmark and CUDA tests in one device call.

The real gpu_window.sh, training/gpu_segment.sh and bench/gpu_run.sh run from a copy of the checkout's
layout; only python3 is a stand-in (no GPU here), which logs its arguments (after PYTHONSAFEPATH and
PYTHONPATH) and writes the files the real programs write under their --out (gpu_segment.py's docstring
and bench/gpu_run.sh's header list them); its pytest prints a summary line as pytest -q does.
"""
from __future__ import annotations

import os
import re
import shutil
import site
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ("gpu_window.sh", "training/device_call.sh", "training/gpu_segment.sh", "bench/gpu_run.sh")

TESTS_COMMAND = "-m pytest -q -m gpu tests/test_gpu.py -p no:cacheprovider"
TESTS_PASS = 'echo "22 passed in 41.20s"'

STAND_IN = """#!/bin/sh
echo "SAFEPATH=${{PYTHONSAFEPATH:-}} PYTHONPATH=$PYTHONPATH ARGS=$*" >> {calls}
out_of() {{ while [ "$1" != "--out" ]; do shift; done; echo "$2"; }}
case "$*" in
  *vsarvo.training.gpu_segment*)
    out=$(out_of "$@"); mkdir -p "$out"
    for f in segment.json curves.png run.tar.000 run.tar.001 run.tar.002; do echo x > "$out/$f"; done
    exit {train_status} ;;
  *bench.gpu*) echo '{{"benchmark": "gpu"}}' > "$(out_of "$@")" ;;
  *bench.report*) echo table > "$(out_of "$@")" ;;
  *"-m pytest"*) {tests} ;;
esac
"""


def window(tmp_path: Path, *, train_status: int = 0, tests: str = TESTS_PASS,
           **env: str) -> tuple[subprocess.CompletedProcess[str], Path, list[str]]:
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
    (bin_dir / "python3").write_text(STAND_IN.format(calls=calls, train_status=train_status, tests=tests))
    (bin_dir / "python3").chmod(0o755)
    (bin_dir / "nvidia-smi").write_text("#!/bin/sh\necho 'NVIDIA H200'\n")
    (bin_dir / "nvidia-smi").chmod(0o755)
    out = tmp_path / "OUT"
    run_env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "OUT": str(out), "PYTHONPATH": "", **env}
    done = subprocess.run(["bash", "gpu_window.sh"], cwd=root, env=run_env, capture_output=True, text=True, timeout=60)
    log = calls.read_text().splitlines() if calls.exists() else []
    return done, out, log


EIGHT_FILES = ["bench/gpu.json", "bench/gpu.log", "train/curves.png", "train/run.tar.000", "train/run.tar.001",
               "train/run.tar.002", "train/segment.json", "train/train_log.txt"]


def returned(out: Path) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())


def test_trains_then_benchmarks_then_tests_with_the_split_budget_and_returns_at_most_8_files(tmp_path):
    done, out, log = window(tmp_path)
    assert done.returncode == 0, done.stderr
    train = next(i for i, line in enumerate(log) if "vsarvo.training.gpu_segment run" in line)
    bench = next(i for i, line in enumerate(log) if "-m bench.gpu " in line)
    tests = next(i for i, line in enumerate(log) if "-m pytest" in line)
    assert train < bench < tests
    assert f"--out {out}/train --budget 230" in log[train]
    assert log[bench].endswith(f"-m bench.gpu --budget 170 --out {out}/bench/gpu.json")
    assert log[tests].endswith(TESTS_COMMAND)
    files = returned(out)
    assert files == EIGHT_FILES
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", part) for f in files for part in f.split("/"))
    gpu_log = (out / "bench" / "gpu.log").read_text()
    assert "NVIDIA H200" in gpu_log  # nvidia-smi folded into the log
    assert gpu_log.index("NVIDIA H200") < gpu_log.index("22 passed in 41.20s") < gpu_log.index(
        "GPU tests ended with status 0")  # the tests' output and status folded in after the benchmark's
    assert "GPU tests ended with status 0 (22 passed in 41.20s;" in done.stderr
    assert "then GPU tests 60 s" in done.stderr


def test_the_tests_run_on_the_carried_wheels_and_the_mapped_package(tmp_path):
    done, _, log = window(tmp_path)
    assert done.returncode == 0, done.stderr
    installs = [line.split(" ARGS=")[1] for line in log if "-m pip install" in line]
    tests = next(line for line in log if "-m pytest" in line)
    # The benchmark and the tests install the carried wheels with the same command (carried_wheels).
    assert len(installs) == 2 and installs[0] == installs[1]
    assert installs[1].endswith(".whl/vapoursynth-81-cp312-abi3-manylinux_2_28_x86_64.whl")
    safepath, pythonpath = re.fullmatch(r"SAFEPATH=(\S*) PYTHONPATH=(\S*) ARGS=.*", tests).groups()
    assert safepath == "1"  # or the checkout's vsarvo/ hides the mapped one
    mapped, wheels = pythonpath.split(":")[:2]
    assert wheels == "/tmp/site" and mapped.startswith("/") and mapped != str(tmp_path / "checkout")


def test_a_failing_test_run_is_reported_and_loses_nothing(tmp_path):
    done, out, log = window(tmp_path, tests='echo "1 failed, 21 passed in 40.00s"; exit 1')
    assert done.returncode == 0, done.stderr  # the exit status is the training's and the benchmark's
    assert returned(out) == EIGHT_FILES
    gpu_log = (out / "bench" / "gpu.log").read_text()
    assert "NVIDIA H200" in gpu_log and "1 failed, 21 passed" in gpu_log
    assert gpu_log.rstrip().endswith("GPU tests ended with status 1")
    assert "GPU tests ended with status 1 (1 failed, 21 passed in 40.00s;" in done.stderr
    assert "8 files under $OUT" in done.stderr


def test_the_tests_stop_at_their_own_budget(tmp_path):
    start = time.monotonic()
    done, out, log = window(tmp_path, tests="exec sleep 30", WINDOW_TESTS_S="1")
    assert time.monotonic() - start < 20
    assert done.returncode == 0, done.stderr
    assert "GPU tests ended with status 124 (stopped at its budget of 1 s;" in done.stderr
    assert "(WINDOW_TESTS_S 1 s)" in (out / "bench" / "gpu.log").read_text()
    assert returned(out) == EIGHT_FILES


def test_the_mapped_vsarvo_is_found_before_the_checkouts_own(tmp_path):
    # On the device no vsarvo is installed and the scripts run `python3 -m vsarvo.training...` from the
    # repository root: without PYTHONSAFEPATH the root's vsarvo/ (no training/) comes first on sys.path.
    # -S leaves out site's .pth files, and with them this checkout's editable install.
    paths = ":".join(site.getsitepackages())
    script = (f'source training/device_call.sh && map_vsarvo && PYTHONPATH="$PYTHONPATH:{paths}" '
              f'"{sys.executable}" -S -c "import vsarvo.training, vsarvo.export"; s=$?; rm -rf "$VSARVO_MAP"; exit $s')
    env = {**os.environ, "PYTHONPATH": ""}
    env.pop("PYTHONSAFEPATH", None)
    done = subprocess.run(["bash", "-c", script], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_the_benchmark_runs_even_when_the_training_fails_and_the_failure_is_the_exit_status(tmp_path):
    done, out, log = window(tmp_path, train_status=3)
    assert done.returncode == 3
    assert any("-m bench.gpu " in line for line in log)
    assert (out / "bench" / "gpu.json").is_file()
    assert "training ended with status 3" in done.stderr
    assert any("-m pytest" in line for line in log)


def test_budgets_come_from_the_environment(tmp_path):
    done, out, log = window(tmp_path, WINDOW_TRAIN_S="100", WINDOW_BENCH_S="50", WINDOW_TESTS_S="20")
    assert done.returncode == 0, done.stderr
    assert any(f"--out {out}/train --budget 100" in line for line in log)
    assert any(line.endswith(f"-m bench.gpu --budget 50 --out {out}/bench/gpu.json") for line in log)
    assert "then GPU tests 20 s" in done.stderr and "(WINDOW_TESTS_S 20 s)" in (out / "bench" / "gpu.log").read_text()


@pytest.mark.parametrize("limit", ["0", "1"])
def test_what_travelled_over_the_limit_stops_before_any_work(tmp_path, limit):
    # The carried folders hold 2 MiB: a 1 MiB limit refuses as a 0 MiB one does.
    done, _, log = window(tmp_path, WINDOW_MAX_MIB=limit)
    assert done.returncode == 2
    assert "make gpu-window-carry" in done.stderr
    assert log == []


def test_the_mapped_package_imports_where_vsarvo_is_not_installed(tmp_path):
    # The device image has torch but not vsarvo. Its stand-in here: this interpreter without its site
    # machinery (-S: the editable install's finder never loads), with the site-packages entries other
    # than vsarvo's on PYTHONPATH. Run from the repository root, as a device call is, the checkout's
    # vsarvo/ (no training/) must not hide the mapped package.
    packages = tmp_path / "site-packages"
    packages.mkdir()
    for entry in Path(site.getsitepackages()[0]).iterdir():
        if not entry.name.startswith(("vsarvo", "__editable__")) and entry.suffix != ".pth":
            (packages / entry.name).symlink_to(entry)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").write_text(f'#!/bin/sh\nexec {sys.executable} -S "$@"\n')
    (bin_dir / "python3").chmod(0o755)
    command = ('source training/device_call.sh && map_vsarvo && PYTHONPATH="$PYTHONPATH:$SITE" '
               'python3 -c "import vsarvo.training.gpu_segment, vsarvo.export.onnx_export, vsarvo; '
               'print(vsarvo.__path__[0])"; status=$?; rm -rf "$VSARVO_MAP"; exit $status')
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SITE": str(packages), "PYTHONPATH": ""}
    done = subprocess.run(["bash", "-c", command], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert Path(done.stdout.strip()).parent != REPO_ROOT  # the mapped folder, not the checkout's vsarvo/
