"""``arvo export``: write the ONNX graphs (and optionally TensorRT engines) for given frame sizes.

Prints the path of every file it wrote or found in the cache, one per line, on stdout; progress and
warnings go to stderr.
"""
from __future__ import annotations

import argparse
import logging
import re
import sys
from pathlib import Path

__all__ = ["add_parser", "run", "parse_size"]

log = logging.getLogger("vsarvo.export")


def parse_size(text: str) -> tuple[int, int]:
    """"WIDTHxHEIGHT" -> (width, height), at least the model's smallest frame in both directions."""
    from vsarvo.model.arvo import MIN_SIZE

    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"size must be WIDTHxHEIGHT (e.g. 1920x1080), got {text!r}")
    width, height = int(match.group(1)), int(match.group(2))
    if min(width, height) < MIN_SIZE:
        raise argparse.ArgumentTypeError(f"frames must be at least {MIN_SIZE}x{MIN_SIZE}, got {width}x{height}")
    return width, height


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``arvo export`` and set its ``func``."""
    from vsarvo.backends.options import DEFAULT_OPTIMIZATION_LEVEL, DEFAULT_WORKSPACE_MIB, PRECISIONS

    from .graphs import PARTS

    p = subparsers.add_parser(
        "export", help="export ONNX graphs (and TensorRT engines) per frame size",
        description="Export the flow net, encoder, aggregation, reconstruction net, whole stage, or the "
        "vs-mlrt full model (frames stacked as channels) to ONNX for each frame size; optionally build "
        "TensorRT engines from them or compile the stage with torch-tensorrt.",
    )
    p.add_argument("--weights", default=None, help=".safetensors weights (default: the shipped weights)")
    p.add_argument("--size", type=parse_size, action="append", required=True, metavar="WxH",
                   help="frame size, e.g. 1920x1080 (repeat for several)")
    p.add_argument("--part", choices=(*PARTS, "all"), action="append",
                   help="graph(s) to export (repeatable; default: stage)")
    p.add_argument("--precision", choices=PRECISIONS, action="append",
                   help="graph precision (repeatable; default: fp32)")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default 17; 22 for bf16)")
    p.add_argument("--tile", type=int, default=None, help="stage graph: tile edge for the full-resolution convolutions")
    p.add_argument("--tile-overlap", type=int, default=None, help="stage graph: tile halo (default: receptive radius)")
    p.add_argument("--out", type=Path, default=None, help="write the ONNX files here (default: the cache)")
    p.add_argument("--cache", type=Path, default=None, help="cache folder (default $VSARVO_CACHE or ~/.cache/vsarvo)")
    p.add_argument("--engine", action="store_true", help="also build a TensorRT engine for every graph")
    p.add_argument("--torch-tensorrt", action="store_true",
                   help="compile the stage with torch-tensorrt (dynamo) instead of exporting ONNX")
    p.add_argument("--device", default="cuda:0", help="GPU for --engine / --torch-tensorrt (default cuda:0)")
    p.add_argument("--workspace", type=int, default=DEFAULT_WORKSPACE_MIB,
                   help=f"TensorRT builder workspace limit in MiB (default {DEFAULT_WORKSPACE_MIB}, as the trt backend)")
    p.add_argument("--optimization-level", type=int, default=DEFAULT_OPTIMIZATION_LEVEL, choices=range(6),
                   help=f"TensorRT builder optimisation level (default {DEFAULT_OPTIMIZATION_LEVEL})")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Export everything ``args`` asks for; returns the exit code: 0, 2 for unusable weights or arguments,
    1 when an export or engine build fails (the reason on stderr)."""
    import torch

    from vsarvo.weights import WeightsError, load_model

    from .graphs import PARTS, graph_spec
    from .onnx_export import cached_onnx, export_onnx, onnx_name, resolve_opset, weights_digest
    from .tensorrt_engine import EngineBuildError, ShapeRange, TensorRTUnavailable, cached_engine

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="arvo export: %(message)s")
    try:
        model = load_model(args.weights)
    except WeightsError as exc:
        log.error("%s", exc)
        return 2
    if not args.part:
        parts = ["stage"]
    elif "all" in args.part:
        # Every graph this model has: no flow net with use_flow=False, no volume with levels=0.
        parts = [p for p in PARTS if not (p == "flow" and not model.config.use_flow)
                 and not (p == "aggregation" and model.config.levels == 0)]
    else:
        parts = list(dict.fromkeys(args.part))
    precisions = list(dict.fromkeys(args.precision or ["fp32"]))
    workspace = args.workspace << 20
    try:
        for width, height in args.size:
            for precision in precisions:
                if args.torch_tensorrt:
                    from .torch_tensorrt_compile import cached_compiled_stage

                    print(cached_compiled_stage(
                        model, height=height, width=width, precision=precision, device=torch.device(args.device),
                        workspace=workspace, optimization_level=args.optimization_level, folder=args.cache,
                    ))
                    continue
                opset = resolve_opset(precision, args.opset)
                for part in parts:
                    tiling = {"tile": args.tile, "tile_overlap": args.tile_overlap} if part == "stage" else {}
                    if args.out is not None:
                        name = onnx_name(part, weights_digest(model), height=height, width=width,
                                         precision=precision, opset=opset, **tiling)
                        path = export_onnx(model, part, args.out / name, height=height, width=width,
                                           precision=precision, opset=opset, **tiling)
                    else:
                        path = cached_onnx(model, part, height=height, width=width, precision=precision,
                                           opset=opset, folder=args.cache, **tiling)
                    print(path)
                    if args.engine:
                        spec = graph_spec(model, part, height=height, width=width)
                        device = torch.device(args.device)
                        with torch.cuda.device(device):
                            engine = cached_engine(
                                path, shapes={n: ShapeRange.fixed(s) for n, s in spec.inputs.items()},
                                precision=precision, device=device.index or 0, workspace=workspace,
                                optimization_level=args.optimization_level, folder=args.cache,
                            )
                        print(engine)
    except ValueError as exc:  # an argument the model cannot use (tiling below its limits, ...)
        log.error("%s", exc)
        return 2
    except (TensorRTUnavailable, EngineBuildError, OSError) as exc:
        log.error("%s", exc)
        return 1
    return 0
