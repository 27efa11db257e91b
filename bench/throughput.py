"""Output frames/s and peak memory of a full Deblur output frame per backend, size and configuration.

    python -m bench.throughput [--quick] [--configs tiny paper] [--sizes 540p 720p 1080p] [--budget S]

One output frame costs ``stages`` stage calls in streaming (the filter computes each stage's frame
once), so frames/s = 1 / (stages x seconds per stage call). Each row runs in a fresh process with
random weights of the configuration (speed does not depend on the values): model load, warm-up
call at the row's size (torch.compile compiles and onnxruntime exports there), then timed calls of
``StageRunner.run`` (CPU tensors in and out, transfers included) until the repeats are done or the
row's time budget is spent; frames/s come from the best timed call (load elsewhere on the machine
only ever slows a call down), the median is kept too. Peak memory is the high-water mark over the
timed calls minus the RSS before the first call (the model loaded), and on CUDA
``torch.cuda.max_memory_allocated``. Eager torch rows also time each stage part (flow, encoder,
aggregation, reconstruction) with module hooks.

Under background load, torch's OpenMP threads wait on each other at every parallel region, which
costs most where the ops are many and small (PWC-Net's flow): ``--threads 1`` gives numbers that
contention distorts less, at the price of the second core.

Achieved FLOP/s use bench.model_cost's analytic FLOPs; the reference is fp32 sgemm measured in the
same run on the CPU (best of start and end), and on a GPU dense 8192^3 products of the row's precision
measured in the same run. A row whose lower bound (warm-up + one call at 100% of the reference) exceeds
its budget is skipped, and says so. The filter rows compare vsarvo.Deblur in a VapourSynth script
(frames pulled through ``clip.frames()``) with the same runner called on the same frames, and count
model calls per output frame.
"""
from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.flops import FlopCount
from bench.fresh_process import PointFailed, emit_point, run_point
from bench.machine import cpu_name, describe_machine, measure_gpu_dense, measure_sgemm, usable_cores
from bench.memory import peak_rss_bytes, reset_peak_rss, rss_bytes
from bench.model_cost import PARTS, SIZES, bench_configs, parse_size, shipped_config_name, stage_flops
from bench.record import RESULTS_DIR, envelope, write_json

__all__ = ["BACKEND_ROWS", "PartTimer", "measure_row", "measure_filter", "plan_rows", "main"]

# (label, backend, compile, channels_last) on every device; precisions per device below. The runner's
# default memory layout is channels-last; the NCHW row shows what that layout buys, so it is measured
# for the first configuration at the first size only.
BACKEND_ROWS = [("torch eager", "torch", False, True), ("torch eager NCHW", "torch", False, False),
                ("torch compile", "torch", True, True), ("ort", "ort", False, True)]
PRECISIONS = {"cpu": ["fp32"], "cuda": ["fp32", "fp16", "bf16"]}
# torch.compile and onnxruntime rows on CUDA in one precision (the filter's default on a GPU).
CUDA_COMPILED_PRECISION = "fp16"
FULL_BUDGET_S = 600.0
QUICK_BUDGET_S = 120.0
# Upper bound on a warm-up that compiles (torch.compile) or exports (onnxruntime).
BUILD_ALLOWANCE_S = 1200.0


class PartTimer:
    """Wall time per stage part, accumulated over the stage calls made while it is attached.

    Hooks go on ``stage.flow``, ``stage.encoder``, ``stage.aggregation`` and every child of
    ``stage.reconstruction`` (the stage calls those children directly). On CUDA each hook
    synchronises, so attach it only to calls that are not otherwise timed.
    """

    def __init__(self, stage: torch.nn.Module, *, cuda: bool) -> None:
        self.seconds = {part: 0.0 for part in PARTS}
        self._cuda = cuda
        self._started: dict[int, float] = {}
        self._handles = []
        for part, attr in PARTS.items():
            module = getattr(stage, attr)
            if module is None:
                continue
            targets = list(module.children()) if part == "reconstruction" else [module]
            for target in targets:
                self._handles.append(target.register_forward_pre_hook(self._pre))
                self._handles.append(target.register_forward_hook(self._post(part)))

    def _now(self) -> float:
        if self._cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    def _pre(self, module: torch.nn.Module, args: Any) -> None:
        self._started[id(module)] = self._now()

    def _post(self, part: str):  # noqa: ANN202 - a forward hook
        def hook(module: torch.nn.Module, args: Any, output: Any) -> None:
            self.seconds[part] += self._now() - self._started.pop(id(module))

        return hook

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


def _frames(width: int, height: int, count: int = 3) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return [torch.rand(1, 3, height, width, generator=gen) for _ in range(count)]


def _device_name(device: str) -> str:
    return torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else cpu_name()


def measure_row(spec: dict[str, Any]) -> dict[str, Any]:
    """One backend row in this process (meant for a fresh one): load, warm up, time, measure memory.

    Returns status "ok" with warmup_s, seconds (per timed stage call), part_seconds (per call, eager
    torch only), baseline_rss_bytes, peak_rss_bytes, peak_growth_bytes (and cuda_peak_allocated_bytes on
    CUDA), device_name and threads; status "skipped" with the reason when the backend cannot start here.
    """
    from vsarvo.backends import BackendError, create_runner, from_flat
    from vsarvo.weights import WeightsError

    device, width, height = spec["device"], int(spec["width"]), int(spec["height"])
    cuda = device.startswith("cuda")
    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    torch_only = {"compile": spec["compile"], "channels_last": spec.get("channels_last", True)}
    backend = from_flat(spec["backend"], device=device, precision=spec["precision"],
                        **(torch_only if spec["backend"] == "torch" else {}))
    try:
        runner = create_runner(backend, weights=spec["weights"])
    except (BackendError, ImportError, WeightsError) as exc:
        return {"status": "skipped", "reason": f"{spec['backend']} cannot start here: {exc}"}
    frames = _frames(width, height)
    baseline = rss_bytes()
    warmup_s = []
    for _ in range(int(spec["warmup"])):
        start = time.perf_counter()
        runner.run(*frames)
        warmup_s.append(time.perf_counter() - start)
    gc.collect()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    peak_reset = reset_peak_rss()
    eager_stage = getattr(runner, "stage", None) if spec["backend"] == "torch" and not spec["compile"] else None
    timer = PartTimer(eager_stage, cuda=False) if eager_stage is not None and not cuda else None
    seconds: list[float] = []
    budget = float(spec["budget_s"])
    began = time.perf_counter()
    while True:
        start = time.perf_counter()
        runner.run(*frames)
        seconds.append(time.perf_counter() - start)
        spent = time.perf_counter() - began
        if len(seconds) >= int(spec["repeats"]) or spent + seconds[-1] > budget:
            break
    peak = peak_rss_bytes()
    result: dict[str, Any] = {"status": "ok"}
    if cuda:
        result["cuda_peak_allocated_bytes"] = torch.cuda.max_memory_allocated()
        result["cuda_peak_reserved_bytes"] = torch.cuda.max_memory_reserved()
    part_calls = seconds
    if eager_stage is not None and cuda:
        # A separate call: the synchronising hooks would distort the timed ones.
        timer = PartTimer(eager_stage, cuda=True)
        start = time.perf_counter()
        runner.run(*frames)
        part_calls = [time.perf_counter() - start]
    if timer is not None:
        timer.remove()
        result["part_seconds"] = {part: s / len(part_calls) for part, s in timer.seconds.items()}
        result["part_calls_s"] = part_calls
    result.update(
        warmup_s=warmup_s,
        seconds=seconds,
        baseline_rss_bytes=baseline,
        peak_rss_bytes=peak,
        peak_growth_bytes=max(0, peak - baseline),
        peak_reset=peak_reset,
        device_name=_device_name(device),
        threads=torch.get_num_threads(),
        runner_precision=runner.precision,
    )
    return result


def _moving_pattern(frames: int, height: int, width: int) -> np.ndarray:
    """Smooth RGB content moving 2 px per frame (no cut between frames), float32 [frames, 3, H, W] in [0, 1]."""
    ys = np.arange(height, dtype=np.float32)[:, None]
    xs = np.arange(width, dtype=np.float32)[None, :]
    out = np.empty((frames, 3, height, width), np.float32)
    for n in range(frames):
        x = xs - 2 * n
        for c in range(3):
            out[n, c] = 0.5 + 0.25 * np.sin(x / (17 + 5 * c)) * np.cos(ys / (23 + 3 * c)) + 0.2 * np.sin((x + ys) / 61)
    return out


def measure_filter(spec: dict[str, Any]) -> dict[str, Any]:
    """vsarvo.Deblur through ``clip.frames()`` vs the same runner on the same frames, in this process.

    The source is a YUV420P8 clip (what most sources decode to), so the filter's work includes its
    format conversions and its scene-change measure (defaults). The bare model runs every stage over
    the clip's RGB frames with clamped neighbours, as the filter does: stages x N calls. The time to
    produce the source frames alone is measured and subtracted from the filter's. Returns seconds
    for each path, overhead_pct, model_calls and model_calls_per_output_frame (counted with a global
    forward hook on the stage module), device_name and threads. With ``repeats`` > 1 the two paths
    alternate and each keeps its best run.
    """
    import vapoursynth as vs

    from vsarvo.backends import Backend, create_runner
    from vsarvo.filter import Deblur
    from vsarvo.model.arvo import ARVoStage, clamp_index

    device, width, height, count = spec["device"], int(spec["width"]), int(spec["height"]), int(spec["frames"])
    core = vs.core
    pattern = _moving_pattern(count, height, width)
    blank = core.std.BlankClip(format=vs.RGBS, width=width, height=height, length=count, fpsnum=25, fpsden=1)

    def fill(n: int, f: vs.VideoFrame) -> vs.VideoFrame:
        out = f.copy()
        for p in range(3):
            np.copyto(np.asarray(out[p]), pattern[n, p])
        return out

    source = core.resize.Bicubic(core.std.ModifyFrame(blank, blank, fill), format=vs.YUV420P8, matrix_s="709")
    rgb = core.resize.Bicubic(source, format=vs.RGBS, matrix_in_s="709")
    inputs = [torch.from_numpy(np.stack([np.asarray(f[p]) for p in range(3)])).unsqueeze(0) for f in rgb.frames()]

    torch.set_num_threads(usable_cores())  # what the filter picks for one stream
    runner = create_runner(Backend.Torch(device=device, precision=spec["precision"]), weights=spec["weights"])
    stages = runner.stages
    calls = [0]

    def count_call(module: torch.nn.Module, args: Any) -> None:
        if isinstance(module, ARVoStage):
            calls[0] += 1

    runner.run(inputs[0], inputs[0], inputs[0])  # warm-up outside both measurements
    repeats = int(spec.get("repeats", 1))
    bare_runs, filter_runs, source_runs = [], [], []
    hook = torch.nn.modules.module.register_module_forward_pre_hook(count_call)
    try:
        # Alternate the two paths and keep the best of each, so a burst of load elsewhere on the
        # machine does not land on one path only.
        for _ in range(repeats):
            calls[0] = 0
            start = time.perf_counter()
            x = inputs
            for _ in range(stages):
                x = [runner.run(x[clamp_index(j - 1, count)], x[j], x[clamp_index(j + 1, count)]) for j in range(count)]
            bare_runs.append(time.perf_counter() - start)
            bare_calls = calls[0]

            start = time.perf_counter()
            for _ in source.frames():
                pass
            source_runs.append(time.perf_counter() - start)

            # A new Deblur clip each time (nothing cached from the previous run); the model is shared.
            clip = Deblur(source, weights=spec["weights"], backend="torch", device=device, precision=spec["precision"])
            calls[0] = 0
            start = time.perf_counter()
            for _ in clip.frames():
                pass
            filter_runs.append(time.perf_counter() - start)
            filter_calls = calls[0]
            threads = torch.get_num_threads()
    finally:
        hook.remove()
    bare_s, source_s, filter_s = min(bare_runs), min(source_runs), min(filter_runs)
    model_s = filter_s - source_s
    return {
        "status": "ok",
        "source_format": "YUV420P8",
        "repeats": repeats,
        "bare_s": bare_s,
        "bare_s_all": bare_runs,
        "filter_s_all": filter_runs,
        "bare_model_calls": bare_calls,
        "source_s": source_s,
        "filter_s": filter_s,
        "overhead_pct": 100.0 * (model_s - bare_s) / bare_s,
        "model_calls": filter_calls,
        "model_calls_per_output_frame": filter_calls / count,
        "filter_s_per_output_frame": model_s / count,
        "bare_s_per_output_frame": bare_s / count,
        "device_name": _device_name(device),
        "threads": threads,
        "vs_threads": core.num_threads,
    }


def _point(spec: dict[str, Any]) -> dict[str, Any]:
    return measure_filter(spec) if spec.get("kind") == "filter" else measure_row(spec)


def plan_rows(*, configs: list[str], sizes: list[str], devices: list[str], quick: bool) -> list[dict[str, Any]]:
    """The backend rows to measure, in order. Quick mode keeps eager torch everywhere and measures
    torch.compile and onnxruntime for the first configuration at the first size only."""
    rows = []
    for config in configs:
        for size in sizes:
            label, width, height = parse_size(size)
            for device in devices:
                kind = "cuda" if device.startswith("cuda") else "cpu"
                for name, backend, compiled, channels_last in BACKEND_ROWS:
                    built = compiled or backend != "torch"
                    first = config == configs[0] and size == sizes[0]
                    if (quick and built or not channels_last) and not first:
                        continue
                    precisions = [CUDA_COMPILED_PRECISION] if built and kind == "cuda" else PRECISIONS[kind]
                    for precision in precisions:
                        rows.append({"kind": "backend", "config": config, "size": label, "width": width,
                                     "height": height, "backend": backend, "label": name, "compile": compiled,
                                     "channels_last": channels_last, "device": device, "precision": precision})
    return rows


def _reference(row: dict[str, Any], references: dict[str, Any]) -> tuple[float, str]:
    if row["device"].startswith("cuda"):
        dense = references["gpu_dense"]
        return dense[row["precision"]]["flops_per_s"], f"{row['precision']} dense {dense['n']}^3 matmul on {dense['device_name']}"
    return references["sgemm_flops_per_s"], "fp32 sgemm on this CPU"


def _run_row(spec: dict[str, Any], *, timeout: float) -> dict[str, Any]:
    """Measure one row in a fresh process; a crash or timeout becomes a "failed" row with the reason."""
    try:
        measured = run_point("bench.throughput", spec, timeout=timeout)
    except PointFailed as exc:
        measured = {"status": "failed", "reason": exc.reason}
    return measured


def _print_progress(measured: dict[str, Any]) -> None:
    if measured["status"] != "ok":
        text = f"{measured['status']}: {measured['reason']}"
    elif "overhead_pct" in measured:
        text = f"filter overhead {measured['overhead_pct']:+.1f}%"
    else:
        text = f"best stage call {min(measured['seconds']):.2f} s of {len(measured['seconds'])}"
    print(f"    -> {text}", file=sys.stderr, flush=True)


def _complete(measured: dict[str, Any], flops: FlopCount, calls: int, references: dict[str, Any]) -> dict[str, Any]:
    """Derived numbers for an "ok" backend row: per stage call and per output frame, FLOP/s and fractions."""
    stage_s = min(measured["seconds"])  # best of the timed calls: load elsewhere only ever slows a call down
    reference, reference_name = _reference(measured, references)
    achieved = flops.total / stage_s
    out = {**measured, "stage_calls_per_output_frame": calls, "stage_s": stage_s,
           "stage_s_median": statistics.median(measured["seconds"]), "timed_calls": len(measured["seconds"]),
           "output_frame_s": calls * stage_s, "output_fps": 1.0 / (calls * stage_s),
           "stage_flops": flops.total, "output_frame_flops": calls * flops.total,
           "achieved_flops_per_s": achieved, "reference_flops_per_s": reference, "reference": reference_name,
           "fraction_of_reference": achieved / reference}
    if "part_seconds" in measured:
        # Part times are averages over the hooked calls, so shares are of the mean hooked call.
        hooked_s = statistics.fmean(measured["part_calls_s"])
        parts = {}
        for part, attr in PARTS.items():
            s = measured["part_seconds"][part]
            part_flops = flops.part(f"ARVoStage.{attr}")
            parts[part] = {"s": s, "flops": part_flops,
                           "fraction_of_reference": (part_flops / s / reference) if s > 0 else None}
        out["parts"] = parts
        for part in parts.values():
            part["share"] = part["s"] / hooked_s
        out["other_s"] = hooked_s - sum(measured["part_seconds"].values())
        out["bottleneck"] = max(parts, key=lambda p: parts[p]["s"])
    return out


def print_table(rows: list[dict[str, Any]]) -> None:
    print(f"{'config':7} {'size':>6} {'backend':14} {'device':8} {'prec':5} {'fps':>8} {'s/frame':>9} "
          f"{'peak MB':>8} {'% ref':>6}  parts (s per stage call)")
    for r in rows:
        head = f"{r['config']:7} {r['size']:>6} {r.get('label', 'filter'):14} {r['device']:8} {r['precision']:5}"
        if r["status"] != "ok":
            print(f"{head} {r['status']}: {r['reason']}")
        elif r["kind"] == "filter":
            print(f"{head} filter {r['filter_s_per_output_frame']:.2f} s/frame vs bare {r['bare_s_per_output_frame']:.2f}: "
                  f"overhead {r['overhead_pct']:+.1f}%, {r['model_calls_per_output_frame']:.2f} model calls per output frame")
        else:
            parts = "  ".join(f"{p} {v['s']:.2f}" for p, v in r.get("parts", {}).items())
            print(f"{head} {r['output_fps']:8.4f} {r['output_frame_s']:9.2f} {r['peak_growth_bytes'] / 1e6:8.0f} "
                  f"{100 * r['fraction_of_reference']:6.1f}  {parts}")


def _write_weights(configs: dict[str, Any], folder: Path) -> dict[str, str]:
    """Random weights (seed 0) per configuration, in the shipped format, for the runners to load."""
    from vsarvo.model import ARVo
    from vsarvo.weights import save_model

    paths = {}
    for name, config in configs.items():
        torch.manual_seed(0)
        paths[name] = str(save_model(ARVo(config).eval(), folder / f"bench_{name}.safetensors"))
    return paths


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m bench.throughput", description=__doc__.split("\n\n")[0])
    parser.add_argument("--point", help=argparse.SUPPRESS)  # child process: measure one row
    parser.add_argument("--quick", action="store_true",
                        help=f"one timed call per row, {QUICK_BUDGET_S:.0f} s budget, compile/ort rows at one size only")
    parser.add_argument("--configs", nargs="+", default=None, help="default: the shipped weights' configuration, then paper")
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), help="540p, 720p, 1080p or WIDTHxHEIGHT")
    parser.add_argument("--repeats", type=int, default=None, help="timed stage calls per row (default 3, quick 1)")
    parser.add_argument("--budget", type=float, default=None, help="seconds of timed calls per row (default 600, quick 120)")
    parser.add_argument("--filter-size", default=None, help="frame size of the filter-overhead rows (default 540p, quick 640x360)")
    parser.add_argument("--filter-frames", type=int, default=None, help="clip length of the filter rows (default 8, quick 4)")
    parser.add_argument("--no-filter", action="store_true", help="leave out the filter-overhead rows")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads for the backend rows and the sgemm reference (default: torch's own); "
                             "the filter rows use the threads the filter picks")
    parser.add_argument("--devices", nargs="+", default=None,
                        help="cpu and/or cuda:N (default: cpu, plus cuda:0 when CUDA is available)")
    parser.add_argument("--note", default=None, help="conditions worth recording (e.g. background load)")
    parser.add_argument("--out", default=str(RESULTS_DIR / "throughput.json"))
    args = parser.parse_args(argv)
    if args.point is not None:
        emit_point(_point(json.loads(args.point)))
        return 0

    quick = args.quick
    repeats = args.repeats or (1 if quick else 3)
    budget = args.budget or (QUICK_BUDGET_S if quick else FULL_BUDGET_S)
    shipped = shipped_config_name()
    config_names = args.configs or list(dict.fromkeys([shipped or "tiny", "paper"]))
    configs = bench_configs(config_names)
    devices = args.devices or ["cpu"] + (["cuda:0"] if torch.cuda.is_available() else [])
    if any(d.startswith("cuda") for d in devices) and not torch.cuda.is_available():
        raise SystemExit(f"--devices {' '.join(devices)}: CUDA is not available on this machine")

    if args.threads is not None:
        if args.threads < 1:
            raise SystemExit(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    result = envelope("throughput", argv, args.note)
    result["shipped_config"] = shipped
    print("measuring sgemm ...", file=sys.stderr, flush=True)
    sgemm_start = measure_sgemm()
    references: dict[str, Any] = {}
    if torch.cuda.is_available():
        print("measuring dense GPU matmul ...", file=sys.stderr, flush=True)
        references["gpu_dense"] = measure_gpu_dense()
        result["gpu_dense"] = references["gpu_dense"]

    # Rows are completed (FLOP/s, fractions) once the end-of-run sgemm is known; until then each keeps
    # its FLOP count and stage calls per output frame.
    measured_rows: list[tuple[dict[str, Any], FlopCount | None, int]] = []
    flops_cache: dict[tuple[str, int, int], FlopCount] = {}
    with tempfile.TemporaryDirectory(prefix="vsarvo-bench-") as tmp:
        weights = _write_weights(configs, Path(tmp))
        references["sgemm_flops_per_s"] = sgemm_start["flops_per_s"]
        for row in plan_rows(configs=config_names, sizes=args.sizes, devices=devices, quick=quick):
            key = (row["config"], row["width"], row["height"])
            if key not in flops_cache:
                flops_cache[key] = stage_flops(configs[row["config"]], row["width"], row["height"])
            flops = flops_cache[key]
            calls = configs[row["config"]].stages
            reference, _ = _reference(row, references)
            lower_bound = flops.total / reference
            built = row["compile"] or row["backend"] != "torch"
            # Always one warm-up call at the row's size: the first call at a new shape also pays for
            # kernel selection and first-touch allocations (3x a later call at 640x360 on this CPU),
            # and torch.compile compiles and onnxruntime exports there.
            spec = {**row, "weights": weights[row["config"]], "repeats": repeats, "budget_s": budget, "warmup": 1,
                    "threads": args.threads}
            if 2 * lower_bound > budget:
                measured = {"status": "skipped", "reason": (
                    f"needs >= {2 * lower_bound:.0f} s for a warm-up and one call at 100% of the reference "
                    f"({reference / 1e9:.0f} GFLOP/s), budget {budget:.0f} s")}
            else:
                print(f"  {row['config']} {row['size']} {row['label']} {row['device']} {row['precision']} ...",
                      file=sys.stderr, flush=True)
                measured = _run_row(spec, timeout=3 * budget + (BUILD_ALLOWANCE_S if built else 120.0))
            measured_rows.append(({**row, **measured}, flops, calls))
            _print_progress(measured)

        if not args.no_filter:
            label, width, height = parse_size(args.filter_size or ("640x360" if quick else "540p"))
            frames = args.filter_frames or (4 if quick else 8)
            for device in devices:
                precision = "fp32" if device == "cpu" else CUDA_COMPILED_PRECISION
                row = {"kind": "filter", "config": config_names[0], "size": label, "width": width, "height": height,
                       "frames": frames, "device": device, "precision": precision, "repeats": 2 if quick else 3}
                print(f"  filter vs bare model, {label}, {frames} frames, {device} ...", file=sys.stderr, flush=True)
                measured = _run_row({**row, "weights": weights[row["config"]]}, timeout=6 * budget + 300)
                measured_rows.append(({**row, **measured}, None, configs[row["config"]].stages))
                _print_progress(measured)

    sgemm_end = measure_sgemm()
    # Fractions are of the better of the two sgemm readings (the less contended one).
    references["sgemm_flops_per_s"] = max(sgemm_start["flops_per_s"], sgemm_end["flops_per_s"])
    result["sgemm"] = {"start": sgemm_start, "end": sgemm_end, "reference_flops_per_s": references["sgemm_flops_per_s"]}
    rows_out = [_complete(row, flops, calls, references) if row["status"] == "ok" and row["kind"] == "backend" else row
                for row, flops, calls in measured_rows]
    result.update(quick=quick, repeats=repeats, budget_s=budget, rows=rows_out)
    result["load_average_after"] = describe_machine()["load_average"]
    print_table(rows_out)
    write_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
