"""GPU inference: frames/s per path, size and configuration, parity with fp32, the filter end to end.

    python -m bench.gpu [--budget 420] [--row-budget 6] [--out bench/results/gpu.json]
    python -m bench.gpu --cpu-tiny            # the same benchmark, tiny and small, on the CPU (CI)
    bash bench/gpu_run.sh                     # on a lent GPU: carried wheels, results under $OUT

This module plans the rows, keeps the budget and writes the results; bench.gpu_measure measures
one stage call, bench.gpu_filter the filter through vspipe. Rows run in priority order (both
configurations at 1080p first, 4K and the longer filter rows last) and the JSON is rewritten after
every row, so a run stopped at its time limit keeps what it measured; a row that would not fit in
what is left of ``--budget`` is skipped and says so.

- model rows: one stage call (3 frames -> 1) on device-resident frames, channels-last, after one
  warm-up call (three for a compiled path: it compiles at the first, once for the row's frame
  size, and reduce-overhead records its CUDA graphs at the next); each timed call is
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
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from bench.fresh_process import PointFailed, run_point
from bench.gpu_measure import cpu_matmul, measure_model, measure_parity
from bench.machine import measure_gpu_dense
from bench.model_cost import SIZES, bench_configs, parse_size, shipped_config_name, stage_flops
from bench.record import RESULTS_DIR, envelope, write_json
from bench.throughput import _write_weights

__all__ = ["PARITY_DB", "FRAME_SIZES", "RunPath", "gpu_plan", "cpu_tiny_plan", "parse_frame_size", "row_name",
           "print_table", "main", "suite_main"]

PARITY_DB = 45.0
FRAME_SIZES = {**SIZES, "2160p": (3840, 2160)}
BASELINE = "eager fp16"
TILE = 512  # the tile edge an out-of-memory row is retried with
COMPILE_TIMEOUT_S = 180.0
# The CPU mode's filter rows: enough frames past the warm-up that the two runs' difference (about 45 ms
# a frame at 64x64) stands well clear of process start-up noise (about 0.1 s); 6 frames left 0.18 s.
CPU_FILTER_FRAMES = 24


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


def _model_row(config: str, size: str, path: RunPath) -> dict[str, Any]:
    label, width, height = parse_frame_size(size)
    return {"kind": "model", "config": config, "size": label, "width": width, "height": height,
            "path": path.label, "precision": path.precision, "compile_mode": path.compile_mode}


def _parity_row(config: str, size: str, precisions: list[str]) -> dict[str, Any]:
    label, width, height = parse_frame_size(size)
    return {"kind": "parity", "config": config, "size": label, "width": width, "height": height, "precisions": precisions}


def _filter_row(config: str, size: str, frames: int, precision: str, streams: int = 1) -> dict[str, Any]:
    label, width, height = parse_frame_size(size)
    return {"kind": "filter", "config": config, "size": label, "width": width, "height": height, "frames": frames,
            "precision": precision, "streams": streams}


def gpu_plan(compile_modes: list[str], *, filter_frames: int = 24) -> list[dict[str, Any]]:
    """The GPU rows in priority order, so that what the budget cuts is what matters least: both
    configurations at 1080p eager with their parity, the filter at 1080p (one model call at a time, then
    two on their own CUDA streams), paper at 1080p through the
    first of ``compile_modes`` (put the quickest to build first), 540p, tiny at 4K with parity, tiny
    compiled, paper at 4K with parity, the other compile modes, then the longer filter rows."""
    eager = [RunPath("fp16"), RunPath("bf16")]
    compiled = {config: [_model_row(config, "1080p", RunPath("fp16", mode)) for mode in compile_modes]
                for config in ("paper", "tiny")}
    rows: list[dict[str, Any]] = []
    for config in ("paper", "tiny"):
        rows += [_model_row(config, "1080p", p) for p in eager]
        rows.append(_parity_row(config, "1080p", ["fp16", "bf16"]))
    rows += [_filter_row("tiny", "1080p", filter_frames, "fp16", streams) for streams in (1, 2)]
    rows += compiled["paper"][:1]
    rows += [_model_row(config, "540p", p) for config in ("tiny", "paper") for p in eager]
    rows += [_model_row("tiny", "2160p", p) for p in eager] + [_parity_row("tiny", "2160p", ["fp16", "bf16"])]
    rows += compiled["tiny"][:1]
    rows += [_model_row("paper", "2160p", p) for p in eager] + [_parity_row("paper", "2160p", ["fp16", "bf16"])]
    rows += compiled["paper"][1:] + compiled["tiny"][1:]
    rows += [_filter_row("paper", "1080p", 8, "fp16"), _filter_row("tiny", "2160p", 6, "fp16"),
             _filter_row("paper", "2160p", 6, "fp16")]
    return rows


def cpu_tiny_plan(size: str = "64x64") -> list[dict[str, Any]]:
    """The CPU mode: the tiny configuration at one small size, eager fp32 and bf16, parity, the filter with
    one and with two model calls at a time."""
    return [_model_row("tiny", size, RunPath("fp32")), _model_row("tiny", size, RunPath("bf16")),
            _parity_row("tiny", size, ["bf16"]), *(_filter_row("tiny", size, CPU_FILTER_FRAMES, "fp32", streams)
                                                   for streams in (1, 2))]


def row_name(row: dict[str, Any]) -> str:
    """'kind config size path' (path for model rows only; 'streams N' for filter rows with N > 1), what
    --only matches."""
    streams = f"streams {row['streams']}" if row.get("streams", 1) > 1 else None
    return " ".join(filter(None, [row["kind"], row["config"], row["size"], row.get("path"), streams]))


class _Run:
    """The run's state: results so far (rewritten to ``out`` after every row), the budget, references."""

    def __init__(self, result: dict[str, Any], out: str, *, budget_s: float, row_budget_s: float, repeats: int,
                 device: str, weights: dict[str, str], started: float | None = None) -> None:
        self.result, self.out, self.budget_s, self.row_budget_s = result, out, budget_s, row_budget_s
        self.repeats, self.device, self.weights = repeats, device, weights
        self.cuda = device.startswith("cuda")
        self.started = time.perf_counter() if started is None else started
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
    call = run.call_estimate_s(row)
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
            measured = run_point("bench.gpu_measure", spec, timeout=timeout)
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
    except Exception as exc:  # one broken row must not cost the others
        run.add({**row, "status": "failed", "reason": f"{type(exc).__name__}: {exc}"})
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
    try:
        measured = run_filter(spec, timeout=max(30.0, run.left_s()))
    except Exception as exc:  # one broken row must not cost the others
        measured = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"}
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
    began = time.perf_counter()  # the budget counts from here: the reference and the weights are in it
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m bench.gpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu-tiny", action="store_true", help="the CPU mode: tiny, 64x64, eager fp32/bf16, parity, the filter")
    parser.add_argument("--device", default="cuda:0", help="the GPU (default cuda:0)")
    parser.add_argument("--budget", type=float, default=None, help="seconds for the whole run (default 420, CPU mode 150)")
    parser.add_argument("--row-budget", type=float, default=None, help="seconds of timed calls per row (default 6, CPU mode 3)")
    parser.add_argument("--repeats", type=int, default=None, help="timed stage calls per row at most (default 20, CPU mode 2)")
    parser.add_argument("--compile-modes", nargs="*", default=["reduce-overhead", "max-autotune-no-cudagraphs"],
                        help="torch.compile modes measured at 1080p (none: no compiled rows)")
    parser.add_argument("--filter-frames", type=int, default=24, help="clip length of the 1080p filter row")
    parser.add_argument("--only", nargs="+", default=None, metavar="TEXT",
                        help="keep the rows whose 'kind config size path' contains any TEXT (e.g. 'filter paper 2160p')")
    parser.add_argument("--note", default=None, help="conditions worth recording")
    parser.add_argument("--out", default=str(RESULTS_DIR / "gpu.json"))
    args = parser.parse_args(argv)
    if not args.cpu_tiny and not torch.cuda.is_available():
        raise SystemExit("bench.gpu: CUDA is not available here; run `python -m bench.gpu --cpu-tiny` for the CPU mode")

    cpu = args.cpu_tiny
    device = "cpu" if cpu else args.device
    result = envelope("gpu", argv, args.note)
    result.update(mode="cpu-tiny" if cpu else "gpu", device=device, torch=torch.__version__, cuda=torch.version.cuda,
                  device_name="cpu" if cpu else torch.cuda.get_device_name(torch.device(device)),
                  baseline="eager fp32" if cpu else BASELINE, parity_threshold_db=PARITY_DB,
                  budget_s=args.budget or (150.0 if cpu else 420.0), row_budget_s=args.row_budget or (3.0 if cpu else 6.0),
                  repeats=args.repeats or (2 if cpu else 20), rows=[])
    plan = cpu_tiny_plan() if cpu else gpu_plan(args.compile_modes, filter_frames=args.filter_frames)
    if args.only:
        plan = [row for row in plan if any(text in row_name(row) for text in args.only)]
        if not plan:
            raise SystemExit(f"bench.gpu: --only {' '.join(args.only)} keeps no row; row names look like "
                             f"'{row_name(gpu_plan(args.compile_modes)[0])}'")
    print("measuring matmul ...", file=sys.stderr, flush=True)
    result["matmul"] = cpu_matmul(512, 5) if cpu else measure_gpu_dense(device=device)
    with tempfile.TemporaryDirectory(prefix="vsarvo-bench-gpu-") as tmp:
        run = _Run(result, args.out, budget_s=result["budget_s"], row_budget_s=result["row_budget_s"],
                   repeats=result["repeats"], device=device, weights=_weights(Path(tmp)), started=began)
        for row in plan:
            print(f"{row_name(row)} ...", file=sys.stderr, flush=True)
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
