"""Time and peak memory of ``aggregate`` (deployable) vs ``aggregate_naive`` (literal Eq. 2-4) as the map grows.

    python -m bench.aggregation_memory [--sides 32 48 64 96 128 192 256] [--repeats 3]

Each point is a query map of side x side positions against level-1 keys (the neighbour map
max-pooled by 2: keys = queries / 4), C = 16, batch 1, fp32, measured in a fresh process: peak
RSS growth over the calls (VmHWM after minus VmRSS before) and the best call time. Methods:
``aggregate`` as the model calls it (chunk=None: scaled_dot_product_attention), ``aggregate_chunked``
(explicit query chunks of ``auto_chunk`` rows, the ONNX-export path) and ``aggregate_naive``, which is
not run where its predicted volume (queries x keys x 4 bytes) would pass 8 GB. The summary fits the
log-log slope of peak growth against query positions: ~1 means linear, ~2 quadratic.
"""
from __future__ import annotations

import argparse
import gc
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

from bench.fresh_process import PointFailed, emit_point, run_point
from bench.machine import describe_machine
from bench.memory import peak_rss_bytes, reset_peak_rss, rss_bytes
from bench.record import RESULTS_DIR, envelope, write_json
from vsarvo.atomic import atomic_path

__all__ = ["METHODS", "NAIVE_LIMIT_BYTES", "predicted_volume_bytes", "measure_point", "sweep", "fit_exponent",
           "summarise", "plot", "main"]

CHANNELS = 16
NAIVE_LIMIT_BYTES = 8e9
# Below this, RSS growth is page- and allocator-granularity noise, not a trend worth fitting.
MIN_FIT_BYTES = 1 << 20
# Points whose literal volume is below this are left out of the memory fit: the allocator's own arenas
# (4-5 MB seen on a 0.1 MB volume) swamp what the method allocates, in either direction.
MIN_FIT_VOLUME_BYTES = 8 << 20
# Slopes the summary accepts as "grows ~linearly" and "grows ~quadratically".
LINEAR_MAX_EXPONENT = 1.3
QUADRATIC_MIN_EXPONENT = 1.7
DEFAULT_SIDES = (32, 48, 64, 96, 128, 192, 256)
QUICK_SIDES = (32, 64, 128, 256)


def _aggregate(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    from vsarvo.model.volume import aggregate

    return aggregate(q, k, v)


def _aggregate_chunked(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    from vsarvo.model.volume import aggregate, auto_chunk

    return aggregate(q, k, v, chunk=auto_chunk(k.shape[-2] * k.shape[-1]))


def _aggregate_naive(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    from vsarvo.model.volume import aggregate_naive

    return aggregate_naive(q, k, v)


METHODS: dict[str, Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "aggregate": _aggregate,
    "aggregate_chunked": _aggregate_chunked,
    "aggregate_naive": _aggregate_naive,
}


def key_side(side: int) -> int:
    """Side of the level-1 key map: the neighbour map max-pooled by 2 (ceil, as the model pools)."""
    return -(-side // 2)


def predicted_volume_bytes(side: int, channels: int = CHANNELS) -> int:
    """Bytes of the literal fp32 volume for a side x side query map: queries x keys x 4."""
    return side * side * key_side(side) ** 2 * 4


def measure_point(spec: dict[str, Any]) -> dict[str, Any]:
    """Measure one (method, side) in this process; meant for a fresh process (see fresh_process).

    Returns the spec's fields plus queries, keys, predicted_volume_bytes, peak_growth_bytes,
    seconds (best call), seconds_all and peak_reset (whether VmHWM could be reset before the calls).
    """
    method, side, repeats = spec["method"], int(spec["side"]), int(spec["repeats"])
    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    channels = int(spec.get("channels", CHANNELS))
    fn = METHODS[method]
    ks = key_side(side)
    gen = torch.Generator().manual_seed(0)
    # Well-scaled features (|q.k| of a few units): the literal form must not overflow either.
    q = torch.randn(1, channels, side, side, generator=gen) * 0.25
    k = torch.randn(1, channels, ks, ks, generator=gen) * 0.25
    v = torch.randn(1, channels, ks, ks, generator=gen)
    fn(q[..., :8, :8], k[..., :4, :4], v[..., :4, :4])  # load kernels and thread pools outside the measurement
    gc.collect()
    before = rss_bytes()
    peak_reset = reset_peak_rss()
    baseline = before if peak_reset else peak_rss_bytes()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn(q, k, v)
        seconds.append(time.perf_counter() - start)
        del out
    peak = peak_rss_bytes()
    return {
        **spec,
        "channels": channels,
        "queries": side * side,
        "keys": ks * ks,
        "predicted_volume_bytes": predicted_volume_bytes(side, channels),
        "peak_growth_bytes": max(0, peak - baseline),
        "seconds": min(seconds),
        "seconds_all": seconds,
        "peak_reset": peak_reset,
        "threads": torch.get_num_threads(),
    }


def sweep(sides: list[int], methods: list[str], *, repeats: int, threads: int | None = None,
          timeout: float = 900.0) -> list[dict[str, Any]]:
    """Every (side, method) point, each in a fresh process (``threads``: torch threads there, None for
    torch's own); skipped and failed points say why."""
    points = []
    for side in sides:
        for method in methods:
            spec = {"method": method, "side": side, "repeats": repeats, "channels": CHANNELS, "threads": threads}
            volume = predicted_volume_bytes(side)
            if method == "aggregate_naive" and volume > NAIVE_LIMIT_BYTES:
                points.append({**spec, "status": "skipped", "predicted_volume_bytes": volume,
                               "reason": f"predicted volume {volume / 1e9:.1f} GB > {NAIVE_LIMIT_BYTES / 1e9:.0f} GB"})
                continue
            print(f"  {method} {side}x{side} ...", file=sys.stderr, flush=True)
            try:
                points.append({**run_point("bench.aggregation_memory", spec, timeout=timeout), "status": "ok"})
            except PointFailed as exc:
                points.append({**spec, "status": "failed", "predicted_volume_bytes": volume, "reason": exc.reason})
    return points


def fit_exponent(xs: list[float], ys: list[float]) -> float | None:
    """Least-squares slope of log(y) against log(x) over the points with x, y > 0; None below 2 points."""
    pairs = [(math.log(x), math.log(y)) for x, y in zip(xs, ys) if x > 0 and y > 0]
    if len(pairs) < 2:
        return None
    mx = sum(p[0] for p in pairs) / len(pairs)
    my = sum(p[1] for p in pairs) / len(pairs)
    sxx = sum((p[0] - mx) ** 2 for p in pairs)
    if sxx == 0:
        return None
    return sum((p[0] - mx) * (p[1] - my) for p in pairs) / sxx


def summarise(points: list[dict[str, Any]]) -> dict[str, Any]:
    """Per method: memory and time exponents against query positions, and the linear/quadratic checks.

    Memory is fitted over points whose literal volume is at least 8 MiB and whose growth is at least
    1 MiB. ``checks`` holds
    ``aggregate_grows_linearly`` (exponent <= 1.3) and ``naive_grows_quadratically`` (>= 1.7), None where
    too few points could be fitted.
    """
    summary: dict[str, Any] = {"methods": {}}
    for method in METHODS:
        ok = [p for p in points if p["method"] == method and p.get("status") == "ok"]
        if not ok:
            continue
        mem = [p for p in ok if p["predicted_volume_bytes"] >= MIN_FIT_VOLUME_BYTES
               and p["peak_growth_bytes"] >= MIN_FIT_BYTES]
        summary["methods"][method] = {
            "memory_exponent": fit_exponent([p["queries"] for p in mem], [p["peak_growth_bytes"] for p in mem]),
            "time_exponent": fit_exponent([p["queries"] for p in ok], [p["seconds"] for p in ok]),
            "fitted_points": len(mem),
            "largest_queries": max(p["queries"] for p in ok),
        }
    methods = summary["methods"]
    chunked = methods.get("aggregate", {}).get("memory_exponent")
    naive = methods.get("aggregate_naive", {}).get("memory_exponent")
    summary["checks"] = {
        "aggregate_grows_linearly": None if chunked is None else chunked <= LINEAR_MAX_EXPONENT,
        "naive_grows_quadratically": None if naive is None else naive >= QUADRATIC_MIN_EXPONENT,
    }
    return summary


def plot(points: list[dict[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Log-log PNG: peak RSS growth and best call time against query positions, one curve per method,
    with the naive volume's predicted size dashed, written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, (ax_mem, ax_time) = plt.subplots(1, 2, figsize=(11, 4.2))
    for method in METHODS:
        ok = sorted((p for p in points if p["method"] == method and p.get("status") == "ok"), key=lambda p: p["queries"])
        if not ok:
            continue
        xs = [p["queries"] for p in ok]
        ax_mem.plot(xs, [max(p["peak_growth_bytes"], 1) / 2**20 for p in ok], "o-", label=method)
        ax_time.plot(xs, [p["seconds"] * 1e3 for p in ok], "o-", label=method)
    sides = sorted({p["side"] for p in points})
    ax_mem.plot([s * s for s in sides], [predicted_volume_bytes(s) / 2**20 for s in sides], "k--", lw=1,
                label="literal volume (predicted)")
    for ax, ylabel in ((ax_mem, "peak RSS growth (MiB)"), (ax_time, "best call time (ms)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(f"query positions (keys = queries/4, C = {CHANNELS})")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    ax_mem.set_title("Peak memory")
    ax_time.set_title("Time")
    fig.tight_layout()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, format="png")
    finally:
        plt.close(fig)
    return path


def print_summary(points: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    print(f"{'method':18} {'side':>5} {'queries':>8} {'keys':>7} {'volume MB':>10} {'peak growth MB':>15} {'best s':>9}")
    for p in points:
        if p.get("status") != "ok":
            print(f"{p['method']:18} {p['side']:>5}  {p['status']}: {p['reason']}")
            continue
        print(f"{p['method']:18} {p['side']:>5} {p['queries']:>8} {p['keys']:>7} {p['predicted_volume_bytes'] / 1e6:10.1f} "
              f"{p['peak_growth_bytes'] / 1e6:15.1f} {p['seconds']:9.4f}")
    for method, fit in summary["methods"].items():
        mem = "n/a" if fit["memory_exponent"] is None else f"{fit['memory_exponent']:.2f}"
        tim = "n/a" if fit["time_exponent"] is None else f"{fit['time_exponent']:.2f}"
        print(f"{method}: peak memory ~ queries^{mem} ({fit['fitted_points']} points >= 1 MiB), time ~ queries^{tim}")
    for check, passed in summary["checks"].items():
        print(f"check {check}: {'n/a' if passed is None else 'PASS' if passed else 'FAIL'}")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m bench.aggregation_memory", description=__doc__.split("\n\n")[0])
    parser.add_argument("--point", help=argparse.SUPPRESS)  # child process: measure one point
    parser.add_argument("--sides", nargs="+", type=int, default=None, help="query map sides (default 32..256)")
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    parser.add_argument("--repeats", type=int, default=None, help="calls per point (default 3, quick 2)")
    parser.add_argument("--quick", action="store_true", help="sides 32, 64, 128, 256 and two calls each")
    parser.add_argument("--threads", type=int, default=None, help="torch threads in each point (default: torch's own)")
    parser.add_argument("--note", default=None, help="conditions worth recording (e.g. background load)")
    parser.add_argument("--out", default=str(RESULTS_DIR / "aggregation_memory.json"))
    parser.add_argument("--plot", default=None, help="PNG path (default: beside --out)")
    args = parser.parse_args(argv)
    if args.point is not None:
        emit_point(measure_point(json.loads(args.point)))
        return 0
    sides = args.sides or list(QUICK_SIDES if args.quick else DEFAULT_SIDES)
    if any(s < 8 for s in sides):
        raise SystemExit(f"--sides must be >= 8, got {sides}")
    repeats = args.repeats or (2 if args.quick else 3)
    result = envelope("aggregation_memory", argv, args.note)
    result.update(channels=CHANNELS, naive_limit_bytes=NAIVE_LIMIT_BYTES, repeats=repeats)
    result["points"] = sweep(sides, args.methods, repeats=repeats, threads=args.threads)
    result["threads"] = next((p["threads"] for p in result["points"] if "threads" in p), None)
    result["summary"] = summarise(result["points"])
    result["load_average_after"] = describe_machine()["load_average"]
    out = Path(args.out)
    png = Path(args.plot) if args.plot else out.with_suffix(".png")
    result["plot"] = png.name
    print_summary(result["points"], result["summary"])
    plot(result["points"], png)
    write_json(out, result)
    failed = [c for c, passed in result["summary"]["checks"].items() if passed is False]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
