"""torch -> ONNX for every exportable graph, per frame size, with an on-disk cache.

The aggregation is unrolled into explicit query chunks while exporting (``vsarvo.model.volume.aggregate``
switches to them under ``torch.onnx.is_in_onnx_export()``), so a graph holds one frame size and its
memory stays bounded: every exported graph that contains MatMuls is read back and checked for that,
and half-precision graphs for fp32 scores, before it is written.

Graphs are traced with PyTorch's TorchScript-based exporter (``dynamo=False``): the graphs are static
by construction, tracing needs no extra package, and it exports opsets up to 20; a higher opset (bf16
needs 22, the first whose Conv takes bfloat16) is reached with ``onnx.version_converter``.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import warnings
from pathlib import Path

import onnx
import torch
from onnx import version_converter

from vsarvo.artifacts import cache_dir
from vsarvo.atomic import write_bytes_atomic
from vsarvo.backends.errors import CacheError
from vsarvo.backends.tiling_limits import check_tiling
from vsarvo.model import ARVo
from vsarvo.model import volume

from .checks import check_chunked, check_fp32_scores
from .fold import fold_constants
from .graphs import PARTS, PRECISIONS, build_graph, graph_spec

__all__ = [
    "DEFAULT_OPSET", "MIN_OPSET", "MAX_TRACE_OPSET", "resolve_opset", "weights_digest", "onnx_name",
    "export_onnx", "cached_onnx_path", "cached_onnx",
]

log = logging.getLogger("vsarvo.export")

MIN_OPSET = 17
MAX_TRACE_OPSET = 20  # the TorchScript exporter's highest opset
BF16_OPSET = 22  # first opset whose Conv, ConvTranspose, MaxPool, GridSample accept bfloat16
DEFAULT_OPSET = {"fp32": MIN_OPSET, "fp16": MIN_OPSET, "bf16": BF16_OPSET}


def resolve_opset(precision: str, opset: int | None) -> int:
    """The opset to export ``precision`` at: the default for None, else ``opset`` once validated."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
    if opset is None:
        return DEFAULT_OPSET[precision]
    highest = onnx.defs.onnx_opset_version()
    lowest = BF16_OPSET if precision == "bf16" else MIN_OPSET
    if not lowest <= opset <= highest:
        raise ValueError(f"opset for {precision} must be in {lowest}..{highest}, got {opset}")
    return opset


def weights_digest(model: ARVo) -> str:
    """Short hash of the model's configuration and every weight (names, dtypes, shapes, values)."""
    digest = hashlib.sha256(model.config.digest().encode())
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def onnx_name(
    part: str, digest: str, *, height: int, width: int, precision: str, opset: int,
    tile: int | None = None, tile_overlap: int | None = None,
) -> str:
    """Cache file name: everything that changes the graph (part, weights, frame size, precision, opset,
    and the tiling when there is one)."""
    tiling = "" if tile is None else f"-tile{tile}o{'auto' if tile_overlap is None else tile_overlap}"
    return f"arvo-{part}-{digest}-{width}x{height}{tiling}-{precision}-opset{opset}.onnx"


def _trace(graph: torch.nn.Module, inputs: tuple[torch.Tensor, ...], names: list[str], outputs: list[str],
           opset: int) -> onnx.ModelProto:
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        # The TorchScript exporter announces its own deprecation, tracing warns that Python ints (frame
        # sizes, chunk bounds) become constants, and constant folding skips strided Slices: all three
        # are expected for a per-resolution graph.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message="Constant folding", category=UserWarning)
        torch.onnx.export(
            graph, inputs, buffer, dynamo=False, opset_version=opset,
            input_names=names, output_names=outputs, do_constant_folding=True,
        )
    return onnx.load_from_string(buffer.getvalue())


def export_onnx(
    model: ARVo,
    part: str,
    path: str | os.PathLike[str],
    *,
    height: int,
    width: int,
    precision: str = "fp32",
    opset: int | None = None,
    tile: int | None = None,
    tile_overlap: int | None = None,
) -> Path:
    """Export ``part`` (one of PARTS) of ``model`` for ``height`` x ``width`` frames to ``path``.

    The graph's inputs and outputs are float32 with the names and shapes of ``graph_spec``; its weights
    and arithmetic are in ``precision``; ``tile`` / ``tile_overlap`` (stage only) tile its
    full-resolution convolutions (below the model's limits: ValueError). Raises ExportCheckError if the written graph would not be chunked
    (or, in half precision, would compute its scores in half).
    """
    opset = resolve_opset(precision, opset)
    check_tiling(model.stage, tile, tile_overlap)  # a graph with seams between its tiles is refused
    spec = graph_spec(model, part, height=height, width=width)
    graph = build_graph(model, part, precision, tile=tile, tile_overlap=tile_overlap)
    generator = torch.Generator().manual_seed(0)
    # Values do not shape the trace (the model has no data-dependent branches); [0, 1] like frames.
    inputs = tuple(torch.rand(shape, generator=generator) for shape in spec.inputs.values())
    proto = _trace(graph, inputs, list(spec.inputs), list(spec.outputs), min(opset, MAX_TRACE_OPSET))
    fold_constants(proto)
    if opset > MAX_TRACE_OPSET:
        proto = version_converter.convert_version(proto, opset)
    proto.producer_name = "vsarvo"
    metadata = {
        "vsarvo.part": part,
        "vsarvo.precision": precision,
        "vsarvo.frame_size": f"{width}x{height}",
        "vsarvo.weights": weights_digest(model),
        "vsarvo.config": json.dumps(model.config.to_dict(), sort_keys=True),
    }
    for key, value in metadata.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(proto)
    if part in ("aggregation", "stage", "mlrt") and model.config.levels > 0:
        check_chunked(proto, max_block=volume.CHUNK_ELEMENTS)
        if precision != "fp32":
            check_fp32_scores(proto)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_bytes_atomic(path, proto.SerializeToString())


def cached_onnx_path(
    model: ARVo,
    part: str,
    *,
    height: int,
    width: int,
    precision: str = "fp32",
    opset: int | None = None,
    tile: int | None = None,
    tile_overlap: int | None = None,
    folder: str | os.PathLike[str] | None = None,
) -> Path:
    """Where the cache keeps the graph for these arguments (it may not be there yet); see ``cached_onnx``."""
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}, got {part!r}")
    check_tiling(model.stage, tile, tile_overlap)
    opset = resolve_opset(precision, opset)
    name = onnx_name(
        part, weights_digest(model), height=height, width=width, precision=precision, opset=opset,
        tile=tile, tile_overlap=tile_overlap,
    )
    return cache_dir(folder, kind="onnx") / name


def cached_onnx(
    model: ARVo,
    part: str,
    *,
    height: int,
    width: int,
    precision: str = "fp32",
    opset: int | None = None,
    tile: int | None = None,
    tile_overlap: int | None = None,
    folder: str | os.PathLike[str] | None = None,
    rebuild: bool = False,
) -> Path:
    """The cached graph for these arguments, exported first if it is not in the cache yet (or, with
    ``rebuild``, exported again over a cached file that failed to load).

    ``folder``: the cache root (default $VSARVO_CACHE or ~/.cache/vsarvo; a folder that cannot be
    written falls back to a temporary one). Graphs live in its ``onnx/`` subfolder. A cache that cannot
    be written (read-only, full disk) raises CacheError; the partial file is removed.
    """
    args = dict(height=height, width=width, precision=precision, opset=opset, tile=tile, tile_overlap=tile_overlap)
    path = cached_onnx_path(model, part, folder=folder, **args)
    if path.is_file() and not rebuild:
        return path
    log.info("exporting %s", path)
    try:
        return export_onnx(model, part, path, **args)
    except OSError as exc:
        raise CacheError.writing(path, exc) from exc
