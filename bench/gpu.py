"""GPU inference: frames/s per path, size and configuration, parity with fp32, the filter end to end.

    python -m bench.gpu [--budget 420] [--row-budget 12] [--out bench/results/gpu.json]
    python -m bench.gpu --cpu-tiny            # the same benchmark, tiny and small, on the CPU (CI)

Rows run in priority order (the paper configuration at 1080p first, 4K and the extra filter rows
last) and the JSON is rewritten after every row, so a run stopped at its time limit keeps what it
measured; a row that would not fit in what is left of ``--budget`` is skipped and says so.

- model rows: one stage call (3 frames -> 1) on device-resident frames, channels-last, after one
  warm-up call (a compiled path compiles there, once for the row's frame size); each timed call is
  bracketed by CUDA events (a synchronised host clock on the CPU) until ``--repeats`` calls or the
  row's budget. frames/s per output frame = 1 / (stages x median stage call). Eager fp16 is the
  baseline every other path at that configuration and size is compared with. Compiled paths run
  in a fresh process with a time limit (a compile that does not finish costs only its row).
- peak memory: ``torch.cuda.max_memory_allocated`` over the row (reset before it); an out-of-memory
  row is recorded as such and retried with the stage's exact tiling.
- reference: dense matrix products of the same run (bench.machine: 8192^3 on a GPU); each row
  states its fraction of the bf16 rate, from bench.model_cost's analytic FLOPs per stage call.
- parity: fp16 and bf16 outputs against fp32 (TF32 off) on the same frames, PSNR in dB; it
  counts at >= 45 dB.
- filter rows: bench.gpu_filter (vspipe on a procedural clip), frames/s after warm-up against the
  eager model row of the same configuration, size and precision (the filter's default path).
"""
from __future__ import annotations

import argparse
import gc
import inspect
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from bench.fresh_process import PointFailed, emit_point, run_point
from bench.machine import measure_gpu_dense
from bench.memory import peak_rss_bytes, reset_peak_rss, rss_bytes
from bench.model_cost import SIZES, bench_configs, parse_size, shipped_config_name, stage_flops
from bench.record import RESULTS_DIR, envelope, write_json
from bench.throughput import _moving_pattern, _write_weights

__all__ = ["PARITY_DB", "FRAME_SIZES", "RunPath", "gpu_plan", "cpu_tiny_plan", "parse_frame_size", "psnr",
           "measure_model", "measure_parity", "print_table", "main", "suite_main"]

PARITY_DB = 45.0
FRAME_SIZES = {**SIZES, "2160p": (3840, 2160)}
BASELINE = "eager fp16"
TILE = 512  # the tile edge an out-of-memory row is retried with
COMPILE_TIMEOUT_S = 180.0
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class RunPath:
    """A way to run the stage: a label, a precision and a torch.compile mode (None = eager)."""

    def __init__(self, precision: str, compile_mode: str | None = None) -> None:
        self.precision, self.compile_mode = precision, compile_mode
        self.label = f"eager {precision}" if compile_mode is None else f"compile {precision} {compile_mode}"


def parse_frame_size(text: str) -> tuple[str, int, int]:
    """bench.model_cost's sizes plus 2160p (4K UHD)."""
    if text in FRAME_SIZES:
        return (text, *FRAME_SIZES[text])
    return parse_size(text)


def psnr(out: torch.Tensor, ref: torch.Tensor) -> float:
    """PSNR in dB of ``out`` against ``ref`` (both in [0, 1]); inf when they are equal."""
    mse = torch.mean((out.double() - ref.double()) ** 2).item()
    return math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse)


def _inputs(width: int, height: int, device: str, dtype: torch.dtype) -> list[torch.Tensor]:
    frames = torch.from_numpy(_moving_pattern(3, height, width))
    return [frames[i:i + 1].to(device, dtype).contiguous(memory_format=torch.channels_last) for i in range(3)]


def _stage(weights: str, device: str, dtype: torch.dtype) -> torch.nn.Module:
    from vsarvo.weights import load_model

    stage = load_model(weights).stage.to(device=device, dtype=dtype).eval()
    return stage.to(memory_format=torch.channels_last)


def _timed_call(fn, args: list[torch.Tensor], kwargs: dict[str, Any], cuda: bool) -> tuple[torch.Tensor, float]:  # noqa: ANN001
    if cuda:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        out = fn(*args, **kwargs)
        end.record()
        end.synchronize()
        return out, start.elapsed_time(end) / 1000.0
    began = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - began


def _tile_kwargs(stage: torch.nn.Module, tile: int | None) -> dict[str, Any]:
    if tile is None:
        return {}
    if "tile" not in inspect.signature(stage.forward).parameters:
        raise RuntimeError("the stage has no tile option")
    return {"tile": tile}


def measure_model(spec: dict[str, Any]) -> dict[str, Any]:
    """One model row in this process: load, warm up (compile), time stage calls, read peak memory.

    ``spec``: weights, device, width, height, precision, compile_mode, tile, repeats, row_budget_s.
    Returns status "ok" with warmup_s, seconds (each timed call) and peak_allocated_bytes (GPU) or
    peak_rss_growth_bytes (CPU); status "oom" with the reason when the device ran out of memory.
    """
    device, cuda = spec["device"], spec["device"].startswith("cuda")
    dtype = DTYPES[spec["precision"]]
    torch.manual_seed(0)
    stage = _stage(spec["weights"], device, dtype)
    forward = stage if spec["compile_mode"] is None else torch.compile(stage, mode=spec["compile_mode"], dynamic=False)
    kwargs = _tile_kwargs(stage, spec.get("tile"))
    inputs = _inputs(int(spec["width"]), int(spec["height"]), device, dtype)
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    baseline_rss, _ = rss_bytes(), reset_peak_rss()
    seconds: list[float] = []
    try:
        with torch.inference_mode():
            warmup_s = []
            # Compiled paths: the first call compiles, the next ones record CUDA graphs (reduce-overhead).
            for _ in range(1 if spec["compile_mode"] is None else 3):
                warm_start = time.perf_counter()
                _timed_call(forward, inputs, kwargs, cuda)
                warmup_s.append(time.perf_counter() - warm_start)
            began = time.perf_counter()
            while len(seconds) < int(spec["repeats"]):
                _, s = _timed_call(forward, inputs, kwargs, cuda)
                seconds.append(s)
                if time.perf_counter() - began + s > float(spec["row_budget_s"]):
                    break
    except torch.OutOfMemoryError as exc:
        return {"status": "oom", "reason": f"out of memory: {str(exc).splitlines()[0]}"}
    finally:
        del stage, forward, inputs
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()
    result: dict[str, Any] = {"status": "ok", "warmup_s": warmup_s, "seconds": seconds}
    if cuda:
        result["peak_allocated_bytes"] = torch.cuda.max_memory_allocated()
    else:
        result["peak_rss_growth_bytes"] = max(0, peak_rss_bytes() - baseline_rss)
    return result


def measure_parity(weights: str, device: str, width: int, height: int, precisions: list[str]) -> dict[str, float]:
    """PSNR (dB) of each precision's stage output against fp32's on the same frames (TF32 off)."""
    matmul_tf32, cudnn_tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    outputs: dict[str, torch.Tensor] = {}
    try:
        with torch.inference_mode():
            for precision in ["fp32", *precisions]:
                dtype = DTYPES[precision]
                stage = _stage(weights, device, dtype)
                outputs[precision] = stage(*_inputs(width, height, device, dtype)).float().clamp(0, 1).cpu()
                del stage
                gc.collect()
                if device.startswith("cuda"):
                    torch.cuda.empty_cache()
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul_tf32, cudnn_tf32
    return {p: psnr(outputs[p], outputs["fp32"]) for p in precisions}


def _cpu_matmul(n: int, repeats: int) -> dict[str, Any]:
    """fp32 and bf16 n^3 products on the CPU (best of ``repeats``), the CPU mode's reference."""
    result: dict[str, Any] = {"device_name": "cpu", "n": n, "repeats": repeats}
    for name in ("fp32", "bf16"):
        a, b = torch.randn(n, n, dtype=DTYPES[name]), torch.randn(n, n, dtype=DTYPES[name])
        torch.matmul(a, b)
        seconds = []
        for _ in range(repeats):
            began = time.perf_counter()
            torch.matmul(a, b)
            seconds.append(time.perf_counter() - began)
        result[name] = {"flops_per_s": 2.0 * n**3 / min(seconds), "median_flops_per_s": 2.0 * n**3 / statistics.median(seconds)}
    return result


def _model_row(config: str, size: str, path: RunPath) -> dict[str, Any]:
    label, width, height = parse_frame_size(size)
    return {"kind": "model", "config": config, "size": label, "width": width, "height": height,
            "path": path.label, "precision": path.precision, "compile_mode": path.compile_mode}


def _parity_row(config: str, size: str, precisions: list[str]) -> dict[str, Any]:
    label, width, height = parse_frame_size(size)
    return {"kind": "parity", "config": config, "size": label, "width": width, "height": height, "precisions": precisions}


def _filter_row(config: str, size: str, frames: int, precision: str) -> dict[str, Any]:
    label, width, height = parse_frame_size(size)
    return {"kind": "filter", "config": config, "size": label, "width": width, "height": height, "frames": frames,
            "precision": precision}


def gpu_plan(compile_modes: list[str], *, filter_frames: int = 24) -> list[dict[str, Any]]:
    """The GPU rows in priority order, so that what the budget cuts is what matters least: both
    configurations at 1080p eager and their parity, the filter at 1080p, the first of ``compile_modes``
    at 1080p (put the quickest to build first), 540p, 4K with parity, the other compile modes, then
    the longer filter rows."""
    eager = [RunPath("fp16"), RunPath("bf16")]
    rows: list[dict[str, Any]] = []
    for config in ("paper", "tiny"):
        rows += [_model_row(config, "1080p", p) for p in eager]
        rows.append(_parity_row(config, "1080p", ["fp16", "bf16"]))
    rows.append(_filter_row("tiny", "1080p", filter_frames, "fp16"))
    compiled = [[_model_row(config, "1080p", RunPath("fp16", mode)) for config in ("paper", "tiny")] for mode in compile_modes]
    rows += compiled[0] if compiled else []
    rows += [_model_row(config, "540p", p) for config in ("tiny", "paper") for p in eager]
    for config in ("tiny", "paper"):
        rows += [_model_row(config, "2160p", p) for p in eager]
        rows.append(_parity_row(config, "2160p", ["fp16", "bf16"]))
    rows += [row for mode_rows in compiled[1:] for row in mode_rows]
    rows += [_filter_row("paper", "1080p", 8, "fp16"), _filter_row("tiny", "2160p", 6, "fp16"),
             _filter_row("paper", "2160p", 6, "fp16")]
    return rows


def cpu_tiny_plan(size: str = "64x64") -> list[dict[str, Any]]:
    """The CPU mode: the tiny configuration at one small size, eager fp32 and bf16, parity, the filter."""
    return [_model_row("tiny", size, RunPath("fp32")), _model_row("tiny", size, RunPath("bf16")),
            _parity_row("tiny", size, ["bf16"]), _filter_row("tiny", size, 6, "fp32")]


class _Run:
    """The run's state: results so far (rewritten to ``out`` after every row), the budget, references."""

    def __init__(self, result: dict[str, Any], out: str, *, budget_s: float, row_budget_s: float, repeats: int,
                 device: str, weights: dict[str, str]) -> None:
        self.result, self.out, self.budget_s, self.row_budget_s = result, out, budget_s, row_budget_s
        self.repeats, self.device, self.weights = repeats, device, weights
        self.cuda = device.startswith("cuda")
        self.started = time.perf_counter()
        self.configs = bench_configs(["tiny", "paper"])
        self._flops: dict[tuple[str, int, int], int] = {}

    def left_s(self) -> float:
        return self.budget_s - (time.perf_counter() - self.started)

    def flops(self, row: dict[str, Any]) -> int:
        key = (row["config"], row["width"], row["height"])
        if key not in self._flops:
            self._flops[key] = stage_flops(self.configs[row["config"]], row["width"], row["height"]).total
        return self._flops[key]

    def reference(self, precision: str) -> float:
        matmul = self.result["matmul"]
        return matmul.get(precision, matmul["bf16"])["flops_per_s"]

    def call_estimate_s(self, row: dict[str, Any]) -> float:
        """Seconds one eager stage call of ``row`` should take: its measured time when there is one,
        else its FLOPs at the slowest rate an ok row reached so far (1 % of the bf16 matmul before any)."""
        measured = self.model_row(row["config"], row["size"], f"eager {row['precision']}")
        if measured is not None:
            return measured["stage_s"]
        rates = [r["achieved_flops_per_s"] for r in self.result["rows"] if r["kind"] == "model" and r["status"] == "ok"]
        return self.flops(row) / (min(rates) if rates else 0.01 * self.reference("bf16"))

    def model_row(self, config: str, size: str, path: str) -> dict[str, Any] | None:
        return next((r for r in self.result["rows"] if r["kind"] == "model" and r["status"] == "ok"
                     and (r["config"], r["size"], r["path"]) == (config, size, path) and r.get("tile") is None), None)

    def add(self, row: dict[str, Any]) -> None:
        self.result["rows"].append(row)
        self.result["elapsed_s"] = time.perf_counter() - self.started
        _speedups(self.result["rows"], self.result["baseline"])
        write_json(self.out, self.result)
        print(f"  {_describe(row)}", file=sys.stderr, flush=True)


def _speedups(rows: list[dict[str, Any]], baseline: str) -> None:
    """Each ok model row's frames/s over the baseline path's at the same configuration and size."""
    base = {(r["config"], r["size"]): r["output_fps"] for r in rows
            if r["kind"] == "model" and r["status"] == "ok" and r["path"] == baseline and r.get("tile") is None}
    for r in rows:
        if r["kind"] == "model" and r["status"] == "ok":
            b = base.get((r["config"], r["size"]))
            r["speedup_vs_baseline"] = None if b is None else r["output_fps"] / b


def _describe(row: dict[str, Any]) -> str:
    head = f"{row['kind']} {row['config']} {row['size']} {row.get('path', '')}".strip()
    if row["status"] != "ok":
        return f"{head}: {row['status']} ({row.get('reason')})"
    if row["kind"] == "model":
        return f"{head}: {row['output_fps']:.3g} frames/s, {100 * row['fraction_of_bf16_matmul']:.1f} % of bf16 matmul"
    if row["kind"] == "parity":
        return f"{head}: " + ", ".join(f"{p} {db:.1f} dB" for p, db in row["psnr_db"].items())
    return f"{head}: {row['fps_after_warmup']:.3g} frames/s after warm-up ({row['runner']})"


def _complete_model(run: _Run, row: dict[str, Any], measured: dict[str, Any]) -> dict[str, Any]:
    out = {**row, **measured}
    if measured["status"] != "ok":
        return out
    stages = run.configs[row["config"]].stages
    stage_s = statistics.median(measured["seconds"])
    flops = run.flops(row)
    achieved = flops / stage_s
    out.update(stage_s=stage_s, stage_s_min=min(measured["seconds"]), timed_calls=len(measured["seconds"]),
               stage_calls_per_output_frame=stages, output_fps=1.0 / (stages * stage_s), stage_flops=flops,
               achieved_flops_per_s=achieved, fraction_of_bf16_matmul=achieved / run.reference("bf16"),
               fraction_of_own_matmul=achieved / run.reference(row["precision"]))
    return out


def _run_model(run: _Run, row: dict[str, Any], tile: int | None = None) -> None:
    compiled = row["compile_mode"] is not None
    call = run.call_estimate_s({**row, "precision": row["precision"]})
    need = 3 * call + min(run.row_budget_s, run.repeats * call) + (120.0 if compiled else 5.0)
    if need > run.left_s():
        run.add({**row, "tile": tile, "status": "skipped",
                 "reason": f"needs ~{need:.0f} s, {max(0.0, run.left_s()):.0f} s of the run's budget left"})
        return
    spec = {**row, "weights": run.weights[row["config"]], "device": run.device, "tile": tile,
            "repeats": run.repeats, "row_budget_s": run.row_budget_s}
    if compiled:
        # A fresh process with a time limit: a compile that runs long costs this row only.
        timeout = min(COMPILE_TIMEOUT_S, run.left_s())
        try:
            measured = run_point("bench.gpu", spec, timeout=timeout)
        except PointFailed as exc:
            measured = {"status": "failed", "reason": exc.reason}
    else:
        try:
            measured = measure_model(spec)
        except Exception as exc:  # one broken row must not cost the others
            measured = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"}
    run.add(_complete_model(run, {**row, "tile": tile}, measured))
    if measured["status"] == "oom" and tile is None and not compiled:
        _run_model(run, row, tile=TILE)


def _run_parity(run: _Run, row: dict[str, Any]) -> None:
    need = 8 * run.call_estimate_s({**row, "precision": row["precisions"][0]}) + 10.0
    if need > run.left_s():
        run.add({**row, "status": "skipped", "reason": f"needs ~{need:.0f} s, {max(0.0, run.left_s()):.0f} s left"})
        return
    try:
        db = measure_parity(run.weights[row["config"]], run.device, row["width"], row["height"], row["precisions"])
    except torch.OutOfMemoryError as exc:
        run.add({**row, "status": "oom", "reason": f"out of memory: {str(exc).splitlines()[0]}"})
        return
    run.add({**row, "status": "ok", "psnr_db": db, "threshold_db": PARITY_DB,
             "counts": all(v >= PARITY_DB for v in db.values())})


def _run_filter(run: _Run, row: dict[str, Any]) -> None:
    from bench.gpu_filter import run_filter

    stages = run.configs[row["config"]].stages
    need = 1.5 * row["frames"] * stages * run.call_estimate_s(row) + 40.0
    if need > run.left_s():
        run.add({**row, "status": "skipped", "reason": f"needs ~{need:.0f} s, {max(0.0, run.left_s()):.0f} s left"})
        return
    warmup = max(1, min(4, row["frames"] // 3))
    spec = {**row, "weights": run.weights[row["config"]], "device": run.device, "tile": None, "warmup": warmup}
    measured = run_filter(spec, timeout=max(30.0, run.left_s()))
    out = {**row, **measured, "warmup_frames": warmup}
    bare = run.model_row(row["config"], row["size"], f"eager {row['precision']}")
    if measured["status"] == "ok" and bare is not None:
        out.update(bare_fps=bare["output_fps"], ratio_to_bare=measured["fps_after_warmup"] / bare["output_fps"])
    run.add(out)


def _weights(folder: Path) -> dict[str, str]:
    """tiny: the shipped weights when they are tiny's; otherwise random weights (seed 0) per configuration."""
    from vsarvo.weights import default_weights_path

    configs = bench_configs(["tiny", "paper"])
    shipped = shipped_config_name()
    paths = _write_weights({n: c for n, c in configs.items() if n != shipped}, folder)
    if shipped in configs:
        paths[shipped] = str(default_weights_path())
    return paths


def print_table(rows: list[dict[str, Any]]) -> None:
    print(f"{'config':6} {'size':>7} {'row':44} {'frames/s':>9} {'x base':>7} {'% bf16':>7} {'peak MB':>8}")
    for r in rows:
        head = f"{r['config']:6} {r['size']:>7}"
        if r["status"] != "ok":
            print(f"{head} {r['kind'] + ' ' + r.get('path', ''):44} {r['status']}: {r.get('reason')}")
        elif r["kind"] == "model":
            name = r["path"] + (f" tiled {r['tile']}" if r.get("tile") else "")
            speedup = "-" if r.get("speedup_vs_baseline") is None else f"{r['speedup_vs_baseline']:.2f}"
            peak = r.get("peak_allocated_bytes", r.get("peak_rss_growth_bytes", 0)) / 1e6
            print(f"{head} {name:44} {r['output_fps']:9.3g} {speedup:>7} {100 * r['fraction_of_bf16_matmul']:7.2f} {peak:8.0f}")
        elif r["kind"] == "parity":
            print(f"{head} {'parity vs fp32':44} " + ", ".join(f"{p} {v:.1f} dB" for p, v in r["psnr_db"].items()))
        else:
            ratio = "" if "ratio_to_bare" not in r else f" ({r['ratio_to_bare']:.2f}x the bare model)"
            print(f"{head} {'filter (' + r['runner'] + ', ' + str(r['frames']) + ' frames)':44} "
                  f"{r['fps_after_warmup']:9.3g}{ratio}")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m bench.gpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--point", help=argparse.SUPPRESS)  # child process: measure one compiled row
    parser.add_argument("--cpu-tiny", action="store_true", help="the CPU mode: tiny, 64x64, eager fp32/bf16, parity, the filter")
    parser.add_argument("--device", default="cuda:0", help="the GPU (default cuda:0)")
    parser.add_argument("--budget", type=float, default=None, help="seconds for the whole run (default 420, CPU mode 150)")
    parser.add_argument("--row-budget", type=float, default=None, help="seconds of timed calls per row (default 10, CPU mode 3)")
    parser.add_argument("--repeats", type=int, default=None, help="timed stage calls per row at most (default 20, CPU mode 2)")
    parser.add_argument("--compile-modes", nargs="*", default=["reduce-overhead", "max-autotune-no-cudagraphs"],
                        help="torch.compile modes measured at 1080p (none: no compiled rows)")
    parser.add_argument("--filter-frames", type=int, default=24, help="clip length of the 1080p filter row")
    parser.add_argument("--note", default=None, help="conditions worth recording")
    parser.add_argument("--out", default=str(RESULTS_DIR / "gpu.json"))
    args = parser.parse_args(argv)
    if args.point is not None:
        emit_point(measure_model(json.loads(args.point)))
        return 0
    if not args.cpu_tiny and not torch.cuda.is_available():
        raise SystemExit("bench.gpu: CUDA is not available here; run `python -m bench.gpu --cpu-tiny` for the CPU mode")

    cpu = args.cpu_tiny
    device = "cpu" if cpu else args.device
    result = envelope("gpu", argv, args.note)
    result.update(mode="cpu-tiny" if cpu else "gpu", device=device, torch=torch.__version__, cuda=torch.version.cuda,
                  device_name="cpu" if cpu else torch.cuda.get_device_name(torch.device(device)),
                  baseline="eager fp32" if cpu else BASELINE, parity_threshold_db=PARITY_DB,
                  budget_s=args.budget or (150.0 if cpu else 420.0), row_budget_s=args.row_budget or (3.0 if cpu else 10.0),
                  repeats=args.repeats or (2 if cpu else 20), rows=[])
    print("measuring matmul ...", file=sys.stderr, flush=True)
    result["matmul"] = _cpu_matmul(512, 5) if cpu else measure_gpu_dense(device=device)
    plan = cpu_tiny_plan() if cpu else gpu_plan(args.compile_modes, filter_frames=args.filter_frames)
    with tempfile.TemporaryDirectory(prefix="vsarvo-bench-gpu-") as tmp:
        run = _Run(result, args.out, budget_s=result["budget_s"], row_budget_s=result["row_budget_s"],
                   repeats=result["repeats"], device=device, weights=_weights(Path(tmp)))
        for row in plan:
            print(f"{row['kind']} {row['config']} {row['size']} {row.get('path', '')} ...", file=sys.stderr, flush=True)
            {"model": _run_model, "parity": _run_parity, "filter": _run_filter}[row["kind"]](run, row)
    print_table(result["rows"])
    return 0


def suite_main(argv: list[str] | None = None) -> int:
    """``python -m bench``'s entry: the GPU benchmark where CUDA is available, else a note and no result."""
    if not torch.cuda.is_available():
        print("bench.gpu: no CUDA device here; skipped (python -m bench.gpu --cpu-tiny runs the CPU mode)", file=sys.stderr)
        return 0
    return main(argv)


if __name__ == "__main__":
    sys.exit(main())
