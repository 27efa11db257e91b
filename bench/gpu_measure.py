"""One stage call on a device, measured: time per call, peak memory, and parity with fp32.

The measuring half of bench.gpu (which plans the rows and keeps the budget). A stage here is the
model's own module on device-resident frames, channels-last, so the numbers are the model's and
not the host transfers'. Also the CPU's matrix-product rate for bench.gpu's CPU mode.

    python -m bench.gpu_measure --point SPEC      (bench.gpu runs compiled rows this way, in a fresh process)
"""
from __future__ import annotations

import argparse
import gc
import inspect
import json
import math
import statistics
import sys
import time
from typing import Any

import torch

from bench.fresh_process import emit_point
from bench.memory import peak_rss_bytes, reset_peak_rss, rss_bytes
from bench.throughput import _moving_pattern

__all__ = ["DTYPES", "psnr", "frames_on_device", "load_stage", "timed_call", "measure_model", "measure_parity",
           "cpu_matmul", "main"]

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def psnr(out: torch.Tensor, ref: torch.Tensor) -> float:
    """PSNR in dB of ``out`` against ``ref`` (both in [0, 1]); inf when they are equal."""
    mse = torch.mean((out.double() - ref.double()) ** 2).item()
    return math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse)


def frames_on_device(width: int, height: int, device: str, dtype: torch.dtype) -> list[torch.Tensor]:
    """Three consecutive frames of smooth moving content [1, 3, H, W], on ``device``, channels-last."""
    frames = torch.from_numpy(_moving_pattern(3, height, width))
    return [frames[i:i + 1].to(device, dtype).contiguous(memory_format=torch.channels_last) for i in range(3)]


def load_stage(weights: str, device: str, dtype: torch.dtype) -> torch.nn.Module:
    """The stage module of a weight file on ``device`` in ``dtype``, eval mode, channels-last."""
    from vsarvo.weights import load_model

    stage = load_model(weights).stage.to(device=device, dtype=dtype).eval()
    return stage.to(memory_format=torch.channels_last)


def timed_call(fn, args: list[torch.Tensor], kwargs: dict[str, Any], cuda: bool) -> tuple[torch.Tensor, float]:  # noqa: ANN001
    """``fn(*args, **kwargs)`` and its seconds: between CUDA events on a GPU, by the host clock on the CPU."""
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
    stage = load_stage(spec["weights"], device, dtype)
    forward = stage if spec["compile_mode"] is None else torch.compile(stage, mode=spec["compile_mode"], dynamic=False)
    kwargs = _tile_kwargs(stage, spec.get("tile"))
    inputs = frames_on_device(int(spec["width"]), int(spec["height"]), device, dtype)
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
                timed_call(forward, inputs, kwargs, cuda)
                warmup_s.append(time.perf_counter() - warm_start)
            began = time.perf_counter()
            while len(seconds) < int(spec["repeats"]):
                _, s = timed_call(forward, inputs, kwargs, cuda)
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
                stage = load_stage(weights, device, dtype)
                outputs[precision] = stage(*frames_on_device(width, height, device, dtype)).float().clamp(0, 1).cpu()
                del stage
                gc.collect()
                if device.startswith("cuda"):
                    torch.cuda.empty_cache()
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul_tf32, cudnn_tf32
    return {p: psnr(outputs[p], outputs["fp32"]) for p in precisions}


def cpu_matmul(n: int, repeats: int) -> dict[str, Any]:
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu_measure", description=__doc__.split("\n\n")[0])
    parser.add_argument("--point", required=True, help="a model row's spec as JSON (see measure_model)")
    args = parser.parse_args(argv)
    emit_point(measure_model(json.loads(args.point)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
