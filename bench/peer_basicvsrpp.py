"""BasicVSR++ as the ``vsbasicvsrpp`` package ships it, side by side with ARVo, on this machine, in one run.

    python -m bench.peer_basicvsrpp [--quick] [--size 1280x720] [--frames 10] [--configs tiny paper]

The peer is built directly as its network class, ``BasicVSRPlusPlusNet``, in the configuration of
its deblurring models (deblur_dvd / deblur_gopro: mid_channels 64, num_blocks 15, full-resolution
input) with ``spynet_pretrained=None`` and random weights: its plugin entry point needs CUDA and
downloads weights, and speed does not depend on weight values. It is recurrent, so it runs on whole
sequences (10 frames); its frames/s = frames / seconds per sequence. ARVo's frames/s = 1 / (stages x
seconds per stage call), the streaming cost of an output frame. Both run eager PyTorch on the CPU
(fp32, the same threads), each warmed up once at the timed shapes, then alternating, best of the
repeats. FLOPs follow bench.flops.CONVENTION with the peer's deformable convolutions counted by
hand; FLOP/s are a fraction of fp32 sgemm measured in the same run.
"""
from __future__ import annotations

import argparse
import sys
import time
from importlib import metadata
from typing import Any, Callable

import torch

from bench.flops import CONVENTION, count_flops
from bench.machine import measure_sgemm, usable_cores
from bench.model_cost import PARTS, bench_configs, parse_size, shipped_config_name, stage_flops
from bench.record import RESULTS_DIR, envelope, write_json
from vsarvo.model import ARVo

__all__ = ["PEER_CONFIG", "PEER_PARTS", "PeerUnavailable", "import_peer", "main"]

# vsbasicvsrpp 3.0.0's settings for its deblur_dvd and deblur_gopro models.
PEER_CONFIG = {"mid_channels": 64, "num_blocks": 15, "is_low_res_input": False, "spynet_pretrained": None}
PEER_PACKAGE = "vsbasicvsrpp"
PEER_PARTS = {
    "flow": ["BasicVSRPlusPlusNet.spynet"],
    "feature extraction": ["BasicVSRPlusPlusNet.feat_extract"],
    "propagation": ["BasicVSRPlusPlusNet.deform_align", "BasicVSRPlusPlusNet.backbone"],
    "reconstruction": ["BasicVSRPlusPlusNet.reconstruction", "BasicVSRPlusPlusNet.upsample1",
                       "BasicVSRPlusPlusNet.upsample2", "BasicVSRPlusPlusNet.conv_hr", "BasicVSRPlusPlusNet.conv_last"],
}
DEFORM_OP = "torchvision.deform_conv2d"
# ARVo must reach this multiple of the peer's frames/s (shipped configuration, 720p) and at least the
# peer's fraction of sgemm (the goals).
THROUGHPUT_GOAL = 3.0
EFFICIENCY_GOAL = 1.0


class PeerUnavailable(RuntimeError):
    """The peer's network class cannot be imported here; the message names the missing piece."""


def import_peer() -> type:
    """``vsbasicvsrpp.basicvsr_plusplus_net.BasicVSRPlusPlusNet`` (importing the package imports
    vapoursynth, mmengine, torchvision, requests and tqdm)."""
    try:
        from vsbasicvsrpp.basicvsr_plusplus_net import BasicVSRPlusPlusNet
    except ImportError as exc:
        raise PeerUnavailable(
            f"BasicVSRPlusPlusNet cannot be imported ({exc}); install the peer with "
            "`pip install 'vsbasicvsrpp==3.0.0' mmengine torchvision` (or `make bench`, which installs "
            "vsarvo's [bench] extra)"
        ) from exc
    return BasicVSRPlusPlusNet


def measure(*, width: int, height: int, frames: int, configs: dict[str, Any], repeats: int,
            budget: float, threads: int | None = None, channels_last: bool = True) -> dict[str, Any]:
    """Count and time the peer and each ARVo configuration at width x height with ``threads`` torch
    threads (None: every usable core), every model's weights in the same memory layout (channels-last:
    faster for both here, 1.12x for the peer and 1.4x for ARVo tiny on this CPU); returns rows and sgemm."""
    layout = torch.channels_last if channels_last else torch.contiguous_format
    peer_cls = import_peer()
    torch.set_num_threads(threads or usable_cores())
    sgemm_start = measure_sgemm()
    gen = torch.Generator().manual_seed(0)

    torch.manual_seed(0)
    peer = peer_cls(**PEER_CONFIG).eval().to(memory_format=layout)
    sequence = torch.rand(1, frames, 3, height, width, generator=gen)
    print("counting the peer's FLOPs ...", file=sys.stderr, flush=True)
    peer_count = count_flops(peer, tuple(sequence.shape))
    models: dict[str, dict[str, Any]] = {"BasicVSR++": {
        "model": "BasicVSR++",
        "source": f"{PEER_PACKAGE} {metadata.version(PEER_PACKAGE)}, BasicVSRPlusPlusNet({PEER_CONFIG})",
        "params": sum(p.numel() for p in peer.parameters()),
        "frames_per_call": frames,
        "flops_per_frame": peer_count.total / frames,
        "deform_conv_flops_per_frame": peer_count.by_op.get(DEFORM_OP, 0) / frames,
        "flops_per_frame_by_part": {part: peer_count.part(p) / frames for part, p in PEER_PARTS.items()},
    }}
    runs: dict[str, Callable[[], Any]] = {"BasicVSR++": lambda: peer(sequence)}

    frames3 = [torch.rand(1, 3, height, width, generator=gen).contiguous(memory_format=layout) for _ in range(3)]
    for name, config in configs.items():
        torch.manual_seed(0)
        stage = ARVo(config).stage.eval().to(memory_format=layout)
        count = stage_flops(config, width, height)
        calls = config.stages
        models[f"ARVo {name}"] = {
            "model": f"ARVo {name}",
            "source": f"vsarvo ARVoStage, config {name}, {calls} stage calls per output frame",
            "params": sum(p.numel() for p in stage.parameters()),
            "frames_per_call": 1,
            "flops_per_frame": calls * count.total,
            "deform_conv_flops_per_frame": 0,
            "flops_per_frame_by_part": {part: calls * count.part(f"ARVoStage.{attr}") for part, attr in PARTS.items()},
        }

        def one_frame(stage: torch.nn.Module = stage, calls: int = calls) -> None:
            for _ in range(calls):
                stage(*frames3).clamp_(0, 1)

        runs[f"ARVo {name}"] = one_frame

    seconds: dict[str, list[float]] = {name: [] for name in runs}
    with torch.inference_mode():
        # One untimed run each at the timed shapes: the first call at a new shape also pays for kernel
        # selection and first-touch allocations.
        for name, run in runs.items():
            print(f"  warming up {name} at {width}x{height} ...", file=sys.stderr, flush=True)
            run()
    began = time.perf_counter()
    with torch.inference_mode():
        # Alternate the models so load elsewhere on the machine does not fall on one of them only.
        for _ in range(repeats):
            for name, run in runs.items():
                print(f"  timing {name} at {width}x{height} ...", file=sys.stderr, flush=True)
                start = time.perf_counter()
                run()
                seconds[name].append(time.perf_counter() - start)
            if time.perf_counter() - began > budget:
                break
    sgemm_end = measure_sgemm()
    reference = max(sgemm_start["flops_per_s"], sgemm_end["flops_per_s"])
    rows = []
    for name, row in models.items():
        per_frame_s = min(seconds[name]) / row["frames_per_call"]
        achieved = row["flops_per_frame"] / per_frame_s
        rows.append({**row, "width": width, "height": height, "seconds_all": seconds[name], "s_per_frame": per_frame_s,
                     "fps": 1.0 / per_frame_s, "achieved_flops_per_s": achieved,
                     "fraction_of_sgemm": achieved / reference})
    return {"sgemm": {"start": sgemm_start, "end": sgemm_end, "reference_flops_per_s": reference},
            "threads": torch.get_num_threads(), "channels_last": channels_last, "rows": rows}


def goals(rows: list[dict[str, Any]], shipped: str, size: tuple[int, int]) -> dict[str, Any]:
    """The issue's two goals, measured: the shipped configuration's frames/s over the peer's (>= 3 at
    720p) and each ARVo configuration's fraction of sgemm over the peer's (>= 1)."""
    by_name = {r["model"]: r for r in rows}
    peer = by_name["BasicVSR++"]
    out: dict[str, Any] = {"size": f"{size[0]}x{size[1]}", "at_720p": size == (1280, 720)}
    shipped_row = by_name.get(f"ARVo {shipped}")
    if shipped_row is not None:
        ratio = shipped_row["fps"] / peer["fps"]
        out["throughput"] = {"model": shipped_row["model"], "ratio_to_peer": ratio, "goal": THROUGHPUT_GOAL,
                             "met": ratio >= THROUGHPUT_GOAL}
    out["efficiency"] = {}
    for r in rows:
        if r is peer:
            continue
        ratio = r["fraction_of_sgemm"] / peer["fraction_of_sgemm"]
        out["efficiency"][r["model"]] = {"ratio_to_peer": ratio, "goal": EFFICIENCY_GOAL, "met": ratio >= EFFICIENCY_GOAL}
    return out


def print_table(result: dict[str, Any]) -> None:
    print(f"{'model':18} {'params':>11} {'GFLOP/frame':>12} {'deform GFLOP':>13} {'s/frame':>9} {'frames/s':>9} "
          f"{'GFLOP/s':>8} {'% sgemm':>8}")
    for r in result["rows"]:
        print(f"{r['model']:18} {r['params']:>11,} {r['flops_per_frame'] / 1e9:12.1f} {r['deform_conv_flops_per_frame'] / 1e9:13.1f} "
              f"{r['s_per_frame']:9.2f} {r['fps']:9.3f} {r['achieved_flops_per_s'] / 1e9:8.1f} {100 * r['fraction_of_sgemm']:8.1f}")
    g = result["goals"]
    if "throughput" in g:
        t = g["throughput"]
        print(f"goal: {t['model']} frames/s >= {t['goal']:.0f}x the peer's at 720p: {t['ratio_to_peer']:.2f}x "
              f"at {g['size']} -> {'met' if t['met'] else 'not met'}")
    for model, e in g["efficiency"].items():
        print(f"goal: {model} fraction of sgemm >= the peer's: {e['ratio_to_peer']:.2f}x -> {'met' if e['met'] else 'not met'}")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m bench.peer_basicvsrpp", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="640x360, one timed run each, shipped configuration only")
    parser.add_argument("--size", default=None, help="WIDTHxHEIGHT or 720p (default 1280x720, quick 640x360)")
    parser.add_argument("--frames", type=int, default=10, help="sequence length of the peer (default 10)")
    parser.add_argument("--configs", nargs="+", default=None, help="ARVo configurations (default: shipped and paper; quick: shipped)")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per model (default 3, quick 1)")
    parser.add_argument("--budget", type=float, default=None, help="seconds of timing in all (default 3600, quick 900)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: every usable core)")
    parser.add_argument("--nchw", action="store_true", help="keep every model in the NCHW layout (default: channels-last)")
    parser.add_argument("--note", default=None, help="conditions worth recording (e.g. background load)")
    parser.add_argument("--out", default=str(RESULTS_DIR / "peer_basicvsrpp.json"))
    args = parser.parse_args(argv)
    if args.frames < 2:
        raise SystemExit(f"--frames must be >= 2 (the peer is recurrent), got {args.frames}")
    _, width, height = parse_size(args.size or ("640x360" if args.quick else "1280x720"))
    if min(width, height) < 256:
        raise SystemExit(f"--size must be at least 256 on each side (the peer's flow runs at 1/4 size, >= 64), got {width}x{height}")
    shipped = shipped_config_name() or "tiny"
    names = args.configs or ([shipped] if args.quick else list(dict.fromkeys([shipped, "paper"])))
    result = envelope("peer_basicvsrpp", argv, args.note)
    result["convention"] = CONVENTION
    result["quick"] = args.quick
    try:
        measured = measure(width=width, height=height, frames=args.frames, configs=bench_configs(names),
                           repeats=args.repeats or (1 if args.quick else 3),
                           budget=args.budget or (900.0 if args.quick else 3600.0), threads=args.threads,
                           channels_last=not args.nchw)
    except PeerUnavailable as exc:
        result["skipped"] = str(exc)
        print(f"peer skipped: {exc}", file=sys.stderr)
        write_json(args.out, result)
        return 0
    result.update(measured)
    result["goals"] = goals(result["rows"], shipped, (width, height))
    print_table(result)
    write_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
