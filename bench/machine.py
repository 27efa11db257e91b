"""The machine a number was measured on: its description and its measured matrix-product rate.

Achieved FLOP/s only mean something next to what the same machine reaches on the friendliest
workload there is, a large dense matrix product, measured in the same run: fp32 ``torch.matmul``
on the CPU (sgemm), and on a GPU fp32/fp16/bf16 products of 8192^3 (the reference for that
precision's rows).
"""
from __future__ import annotations

import datetime
import os
import platform
import statistics
import time
from typing import Any

import torch

__all__ = ["describe_machine", "cpu_name", "measure_sgemm", "measure_gpu_dense", "usable_cores"]


def usable_cores() -> int:
    """CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo (the platform's processor string elsewhere)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_machine() -> dict[str, Any]:
    """CPU, cores, torch threads and version, GPUs, and the 1/5/15-minute load average at this moment.

    A load average above the core count means other processes were competing for the CPU while the
    numbers beside it were measured.
    """
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    return {
        "utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu_name(),
        "cores": usable_cores(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "gpus": gpus,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def _rate(seconds: list[float], flops: float) -> dict[str, float]:
    return {"flops_per_s": flops / min(seconds), "median_flops_per_s": flops / statistics.median(seconds)}


def measure_sgemm(*, n: int = 2048, repeats: int = 5) -> dict[str, Any]:
    """fp32 ``torch.matmul`` of two n x n matrices on the CPU, with torch's current thread count.

    Returns ``flops_per_s`` (best of ``repeats``: the rate the machine can reach, the reference for
    fractions) and ``median_flops_per_s`` (what it reached typically, which shows contention), with
    n, repeats and threads.
    """
    if n < 64 or repeats < 1:
        raise ValueError(f"n must be >= 64 and repeats >= 1, got n={n}, repeats={repeats}")
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.matmul(a, b)  # first call pays for thread-pool start-up and packing buffers
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.matmul(a, b)
        seconds.append(time.perf_counter() - start)
    return {"n": n, "repeats": repeats, "threads": torch.get_num_threads(), **_rate(seconds, 2.0 * n**3)}


def measure_gpu_dense(*, n: int = 8192, repeats: int = 10, device: str = "cuda:0") -> dict[str, Any]:
    """Dense n x n x n products on a GPU in fp32, fp16 and bf16 (CUDA events), with the GPU's name.

    fp32 is measured as torch runs it by default (TF32 off unless the caller turned it on; the
    setting is recorded). Returns ``{"device_name", "n", "tf32", "fp32": rate, "fp16": rate, "bf16": rate}``
    with each rate as in ``measure_sgemm``.
    """
    if not torch.cuda.is_available():
        raise RuntimeError("measure_gpu_dense needs CUDA")
    dev = torch.device(device)
    result: dict[str, Any] = {
        "device_name": torch.cuda.get_device_name(dev),
        "n": n,
        "repeats": repeats,
        "tf32": bool(torch.backends.cuda.matmul.allow_tf32),
    }
    for name, dtype in (("fp32", torch.float32), ("fp16", torch.float16), ("bf16", torch.bfloat16)):
        a = torch.randn(n, n, device=dev, dtype=dtype)
        b = torch.randn(n, n, device=dev, dtype=dtype)
        for _ in range(3):
            torch.matmul(a, b)
        torch.cuda.synchronize(dev)
        seconds = []
        for _ in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            torch.matmul(a, b)
            end.record()
            end.synchronize()
            seconds.append(start.elapsed_time(end) / 1000.0)
        result[name] = _rate(seconds, 2.0 * n**3)
        del a, b
    torch.cuda.empty_cache()
    return result
