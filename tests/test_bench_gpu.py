"""bench.gpu: the GPU benchmark's CPU tiny mode end to end, its report table, the device run script.

bench/ is not installed; these tests import it from the repository root (``python -m pytest``).
"""
from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench import gpu, gpu_filter, gpu_measure, report
from bench.record import REPO_ROOT

RUN_SCRIPT = REPO_ROOT / "bench" / "gpu_run.sh"
# The install step the device README prescribes for carried wheels.
DEVICE_INSTALL = ("-m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "
                  ".whl/")


# --- arithmetic ----------------------------------------------------------------------------------

def test_archive_cost_is_video_frames_over_frames_per_second():
    # 10,000 h x 3600 s x 25 frames = 900 million frames; at 25 frames/s that is 10,000 GPU-hours.
    assert report.archive_gpu_hours(25.0) == pytest.approx(10_000)
    assert report.archive_gpu_hours(100.0) == pytest.approx(2_500)
    assert report.archive_gpu_hours(3.0, hours=1, video_fps=30) == pytest.approx(10)
    with pytest.raises(ValueError, match="> 0"):
        report.archive_gpu_hours(0.0)


def test_psnr_of_a_uniform_offset():
    ref = torch.full((1, 3, 8, 8), 0.5)
    assert gpu_measure.psnr(ref + 0.01, ref) == pytest.approx(40.0)
    assert gpu_measure.psnr(ref, ref) == math.inf


def test_fps_after_warmup_counts_only_the_extra_frames():
    # 24 frames in 10 s of output, the first 4 in 2 s: 20 frames in 8 s.
    assert gpu_filter.fps_after_warmup(24, 4, 10.0, 2.0) == pytest.approx(2.5)
    with pytest.raises(ValueError, match="too few frames"):
        gpu_filter.fps_after_warmup(24, 4, 2.0, 2.0)
    with pytest.raises(ValueError, match="warmup"):
        gpu_filter.fps_after_warmup(4, 4, 10.0, 2.0)


def test_output_seconds_reads_vspipes_summary_line():
    stderr = "Script evaluation done\nOutput 24 frames in 12.34 seconds (1.94 fps)\n"
    assert gpu_filter.output_seconds(stderr) == pytest.approx(12.34)
    with pytest.raises(RuntimeError, match="Output N frames"):
        gpu_filter.output_seconds("Error: frame 0 failed")


# --- the plan ------------------------------------------------------------------------------------

def test_gpu_plan_puts_the_criteria_first_and_covers_every_size_and_config():
    plan = gpu.gpu_plan(["reduce-overhead", "max-autotune-no-cudagraphs"])
    head = [(r["kind"], r["config"], r["size"], r.get("path"), r.get("streams")) for r in plan[:8]]
    assert head == [("model", "paper", "1080p", "eager fp16", None), ("model", "paper", "1080p", "eager bf16", None),
                    ("parity", "paper", "1080p", None, None), ("model", "tiny", "1080p", "eager fp16", None),
                    ("model", "tiny", "1080p", "eager bf16", None), ("parity", "tiny", "1080p", None, None),
                    ("filter", "tiny", "1080p", None, 1), ("filter", "tiny", "1080p", None, 2)]
    assert [gpu.row_name(r) for r in plan[6:8]] == ["filter tiny 1080p", "filter tiny 1080p streams 2"]
    models = {(r["config"], r["size"], r["path"]) for r in plan if r["kind"] == "model"}
    for config in ("tiny", "paper"):
        for size in ("540p", "1080p", "2160p"):
            assert {(config, size, "eager fp16"), (config, size, "eager bf16")} <= models
        assert (config, "1080p", "compile fp16 reduce-overhead") in models
        assert (config, "1080p", "compile fp16 max-autotune-no-cudagraphs") in models
    assert (plan[-1]["kind"], plan[-1]["size"]) == ("filter", "2160p")
    assert next(r for r in plan if r["size"] == "2160p")["width"] == 3840
    assert not any(r.get("compile_mode") for r in gpu.gpu_plan([]))


def test_cpu_tiny_plan_is_small_and_uncompiled():
    plan = gpu.cpu_tiny_plan()
    assert [(r["kind"], r.get("path"), r.get("streams")) for r in plan] == [
        ("model", "eager fp32", None), ("model", "eager bf16", None), ("parity", None, None), ("filter", None, 1),
        ("filter", None, 2)]
    assert {(r["config"], r["width"], r["height"]) for r in plan} == {("tiny", 64, 64)}


# --- the run loop: out of memory, budget --------------------------------------------------------

def _run(tmp_path, budget_s: float) -> gpu._Run:
    result = {"rows": [], "baseline": "eager fp32", "matmul": {"bf16": {"flops_per_s": 1e11}, "fp32": {"flops_per_s": 5e10}}}
    return gpu._Run(result, str(tmp_path / "gpu.json"), budget_s=budget_s, row_budget_s=1.0, repeats=2,
                    device="cpu", weights={"tiny": "unused.safetensors"})


def test_an_out_of_memory_row_is_recorded_and_retried_tiled(tmp_path, monkeypatch):
    specs = []

    def fake_measure(spec):
        specs.append(spec)
        if spec["tile"] is None:
            return {"status": "oom", "reason": "out of memory: tried to allocate 80 GiB"}
        return {"status": "ok", "warmup_s": [0.2], "seconds": [0.1, 0.3], "peak_rss_growth_bytes": 1e6}

    monkeypatch.setattr(gpu, "measure_model", fake_measure)
    run = _run(tmp_path, budget_s=600)
    gpu._run_model(run, gpu._model_row("tiny", "64x64", gpu.RunPath("fp32")))
    assert [s["tile"] for s in specs] == [None, gpu.TILE]
    oom, tiled = run.result["rows"]
    assert (oom["status"], oom["tile"]) == ("oom", None)
    assert (tiled["status"], tiled["tile"]) == ("ok", gpu.TILE)
    assert tiled["stage_s"] == pytest.approx(0.2)  # the median of the timed calls
    assert tiled["output_fps"] == pytest.approx(1 / (2 * 0.2))  # tiny: 2 stage calls per output frame
    assert tiled["fraction_of_bf16_matmul"] == pytest.approx(tiled["stage_flops"] / 0.2 / 1e11)
    saved = json.loads((tmp_path / "gpu.json").read_text())
    assert [r["status"] for r in saved["rows"]] == ["oom", "ok"]


def test_a_row_that_does_not_fit_the_budget_is_skipped_without_running(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu, "measure_model", lambda spec: pytest.fail("a skipped row must not run"))
    run = _run(tmp_path, budget_s=0.0)
    gpu._run_model(run, gpu._model_row("tiny", "64x64", gpu.RunPath("fp32")))
    (row,) = run.result["rows"]
    assert row["status"] == "skipped" and "of the run's budget left" in row["reason"]


# --- vspipe configuration ------------------------------------------------------------------------

def test_configure_vsscript_lets_vspipe_embed_this_interpreter(tmp_path):
    config = gpu_filter.configure_vsscript(tmp_path / "config")
    assert config == tmp_path / "config" / "vapoursynth" / "vapoursynth.toml"
    assert json.dumps(sys.executable) in config.read_text()
    script = tmp_path / "blank.vpy"
    script.write_text("import vapoursynth as vs\nvs.core.std.BlankClip(length=3).set_output()\n")
    done = subprocess.run([str(gpu_filter.vspipe_path()), str(script), "--"], capture_output=True, text=True,
                          env={**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config")}, timeout=120)
    assert done.returncode == 0, done.stderr
    assert gpu_filter.output_seconds(done.stderr) >= 0


def test_configure_vsscript_without_a_shared_libpython_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_filter, "libpython_path", lambda: None)
    with pytest.raises(RuntimeError, match="libpython3.x package"):
        gpu_filter.configure_vsscript(tmp_path)


# --- the CPU tiny mode end to end, and the report's GPU section ---------------------------------

@pytest.mark.slow
def test_cpu_tiny_mode_measures_every_row_and_the_report_renders_them(tmp_path):
    out = tmp_path / "gpu.json"
    done = subprocess.run([sys.executable, "-m", "bench.gpu", "--cpu-tiny", "--out", str(out)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    data = json.loads(out.read_text())
    assert (data["benchmark"], data["mode"], data["device"], data["baseline"]) == ("gpu", "cpu-tiny", "cpu", "eager fp32")
    rows = data["rows"]
    assert [(r["kind"], r.get("path"), r["status"]) for r in rows] == [
        ("model", "eager fp32", "ok"), ("model", "eager bf16", "ok"), ("parity", None, "ok"), ("filter", None, "ok"),
        ("filter", None, "ok")]
    fp32, bf16, parity, filt, filt_two = rows
    assert (filt["streams"], filt_two["streams"]) == (1, 2)
    for row in (fp32, bf16):
        for key in ("stage_s", "output_fps", "achieved_flops_per_s", "fraction_of_bf16_matmul", "speedup_vs_baseline"):
            assert math.isfinite(row[key]) and row[key] > 0, key
        assert row["output_fps"] == pytest.approx(1 / (2 * row["stage_s"]))
        assert row["peak_rss_growth_bytes"] >= 0 and row["timed_calls"] >= 1
    assert fp32["speedup_vs_baseline"] == 1.0
    assert parity["psnr_db"]["bf16"] >= gpu.PARITY_DB and parity["counts"] is True
    for row in (filt, filt_two):
        assert row["runner"] == "vspipe" and row["frames"] == gpu.CPU_FILTER_FRAMES
        assert math.isfinite(row["fps_after_warmup"]) and row["fps_after_warmup"] > 0
        assert row["ratio_to_bare"] == pytest.approx(row["fps_after_warmup"] / fp32["output_fps"])

    assert report.main(["--results", str(tmp_path)]) == 0
    table = (tmp_path / "TABLE.md").read_text()
    assert "### GPU benchmark, CPU tiny mode" in table
    assert f"| tiny | 64x64 | eager fp32 | {fp32['output_fps']:.3g} | 1.00x |" in table
    fastest = max(filt["fps_after_warmup"], filt_two["fps_after_warmup"])  # the batch cost takes the faster
    hours = 10_000 * 3600 * 25 / fastest / 3600
    assert f"costs {hours:,.0f} CPU-hours at the measured rate of `tiny` at 64x64" in table


def _gpu_fixture() -> dict:
    machine = {"utc": "2026-12-05T10:00:00+00:00", "cpu": "Test CPU", "cores": 16, "torch_threads": 16,
               "torch": "2.11.0+cu130", "python": "3.12.3", "gpus": ["NVIDIA H200"], "load_average": [0.5, 0.4, 0.3]}
    model = {"kind": "model", "config": "paper", "size": "1080p", "status": "ok", "tile": None, "stage_s": 0.5,
             "peak_allocated_bytes": 9.5e9, "fraction_of_bf16_matmul": 0.0244}
    return {
        "benchmark": "gpu", "command": "python -m bench.gpu --budget 420 --out gpu.json", "note": None,
        "machine": machine, "mode": "gpu", "device": "cuda:0", "device_name": "NVIDIA H200", "torch": "2.11.0+cu130",
        "cuda": "13.0", "baseline": "eager fp16", "parity_threshold_db": 45.0,
        "matmul": {"n": 8192, "bf16": {"flops_per_s": 7.9e14}, "fp16": {"flops_per_s": 7.8e14}, "fp32": {"flops_per_s": 5e13}},
        "rows": [
            {**model, "path": "eager fp16", "output_fps": 1.0, "speedup_vs_baseline": 1.0},
            {**model, "path": "compile fp16 reduce-overhead", "output_fps": 3.5, "speedup_vs_baseline": 3.5,
             "stage_s": 0.143},
            {"kind": "model", "config": "paper", "size": "2160p", "path": "eager fp16", "status": "oom", "tile": None,
             "reason": "out of memory: tried to allocate 80 GiB"},
            {"kind": "parity", "config": "paper", "size": "1080p", "status": "ok", "psnr_db": {"fp16": 51.23, "bf16": 44.9},
             "counts": False},
            {"kind": "filter", "config": "tiny", "size": "1080p", "frames": 24, "precision": "fp16", "status": "ok",
             "runner": "vspipe", "fps_after_warmup": 10.0, "bare_fps": 10.5, "ratio_to_bare": 10.0 / 10.5},
        ],
    }


def test_report_renders_the_gpu_table_naming_the_gpu_torch_and_command(tmp_path):
    (tmp_path / "gpu.json").write_text(json.dumps(_gpu_fixture()))
    assert report.main(["--results", str(tmp_path)]) == 0
    lines = (tmp_path / "TABLE.md").read_text().splitlines()
    assert "### GPU: NVIDIA H200" in lines
    assert "| paper | 1080p | eager fp16 | 1 | 1.00x | 500 | 2.44 | 9,500 |" in lines
    assert "| paper | 1080p | compile fp16 reduce-overhead | 3.5 | 3.50x | 143 | 2.44 | 9,500 |" in lines
    assert "| paper | 1080p | 51.2 | 44.9 | NO |" in lines
    assert "| tiny | 1080p | 24 | vspipe | fp16 | 1 | 10 | 10.5 | 0.95 |" in lines
    assert "- model paper 2160p eager fp16: oom (out of memory: tried to allocate 80 GiB)" in lines
    # The filter's end-to-end rate is what a batch job sees: 900 million frames at 10 frames/s.
    assert any(line.startswith("- A 10,000-hour archive at 25 fps costs 25,000 GPU-hours at the measured rate of "
                               "`tiny` at 1080p (10 frames/s, the filter through vspipe") for line in lines)
    # No filter row for paper: its fastest model path.
    assert any("costs 71,429 GPU-hours at the measured rate of `paper` at 1080p (3.5 frames/s, the model alone, "
               "compile fp16 reduce-overhead" in line for line in lines)
    conditions = next(line for line in lines if line.startswith("_Measured"))
    assert "GPU: NVIDIA H200" in conditions and "torch 2.11.0+cu130, CUDA 13.0" in conditions
    assert "bf16 790" in conditions and "Reproduce: `python -m bench.gpu --budget 420 --out gpu.json`" in conditions


# --- the device run script -----------------------------------------------------------------------

def test_run_script_is_valid_bash():
    done = subprocess.run(["bash", "-n", str(RUN_SCRIPT)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_run_script_installs_the_carried_wheels_and_writes_under_out(tmp_path):
    # A stand-in python3 logs its arguments and plays each step; the script runs from a copy of the
    # checkout's layout with one carried wheel.
    root = tmp_path / "checkout"
    (root / "bench").mkdir(parents=True)
    (root / "bench" / "gpu_run.sh").write_text(RUN_SCRIPT.read_text())
    (root / "training").mkdir()
    (root / "training" / "device_call.sh").write_text((REPO_ROOT / "training" / "device_call.sh").read_text())
    (root / ".whl").mkdir()
    (root / ".whl" / "vapoursynth-81-cp312-abi3-manylinux_2_28_x86_64.whl").write_bytes(b"")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls.log"
    (bin_dir / "python3").write_text(f"""#!/bin/sh
echo "PYTHONPATH=$PYTHONPATH ARGS=$*" >> {calls}
case "$*" in
  *bench.gpu*) while [ "$1" != "--out" ]; do shift; done; echo '{{"benchmark": "gpu"}}' > "$2" ;;
  *bench.report*) while [ "$1" != "--out" ]; do shift; done; echo table > "$2" ;;
esac
""")
    (bin_dir / "python3").chmod(0o755)
    out = tmp_path / "OUT"
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "OUT": str(out), "PYTHONPATH": ""}
    done = subprocess.run(["bash", "bench/gpu_run.sh", "--compile-modes"], cwd=root, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    log = calls.read_text().splitlines()
    assert DEVICE_INSTALL in log[0] and log[0].endswith(".whl/vapoursynth-81-cp312-abi3-manylinux_2_28_x86_64.whl")
    bench_call = next(line for line in log if "bench.gpu" in line)
    assert bench_call.startswith(f"PYTHONPATH={root}:/tmp/site")
    assert bench_call.endswith(f"-m bench.gpu --budget 420 --out {out}/gpu.json --compile-modes")
    assert any(f"-m bench.report --results {out} --out {out}/TABLE.md" in line for line in log)
    # What comes back from $OUT: at most 8 plain files, named in letters, digits, '.', '_' and '-'.
    files = sorted(p.name for p in out.iterdir())
    assert files == ["TABLE.md", "gpu.json", "gpu.log", "nvidia-smi.txt"]
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", name) for name in files)


def test_only_keeps_the_named_rows_and_refuses_a_filter_that_keeps_none(tmp_path):
    plan = gpu.gpu_plan(["reduce-overhead"])
    kept = [gpu.row_name(r) for r in plan if "filter paper" in gpu.row_name(r)]
    assert kept == ["filter paper 1080p", "filter paper 2160p"]
    assert gpu.row_name(plan[0]) == "model paper 1080p eager fp16"
    with pytest.raises(SystemExit, match="keeps no row"):
        gpu.main(["--cpu-tiny", "--only", "no such row", "--out", str(tmp_path / "gpu.json")])
    assert not (tmp_path / "gpu.json").exists()


@pytest.mark.slow
def test_a_row_measured_in_a_fresh_process_comes_back_whole():
    # Compiled rows run this way on the GPU; here an eager row checks the protocol and the fields.
    from bench.fresh_process import run_point
    from vsarvo.weights import default_weights_path

    spec = {**gpu._model_row("tiny", "64x64", gpu.RunPath("fp32")), "weights": str(default_weights_path()),
            "device": "cpu", "tile": None, "repeats": 2, "row_budget_s": 30.0}
    measured = run_point("bench.gpu_measure", spec, timeout=300)
    assert measured["status"] == "ok"
    assert len(measured["warmup_s"]) == 1 and len(measured["seconds"]) == 2
    assert all(s > 0 for s in measured["seconds"]) and measured["peak_rss_growth_bytes"] >= 0
