"""The second compile path: torch-tensorrt (dynamo) on the stage module, with the same cache policy.

Instead of going through ONNX, torch-tensorrt traces the PyTorch stage with torch.export and converts
it to TensorRT engines embedded in an ExportedProgram. The precision is again in the module (it is
cast to fp16 / bf16 before compiling, and the aggregation and warp keep their fp32 parts), built with
explicit (strong) typing. The compiled program is cached under a name that encodes the weights, frame
size, precision, torch-tensorrt and TensorRT versions and the GPU.

``arvo export --torch-tensorrt`` writes it; no vsarvo backend loads it (the trt backend builds its
engines from the ONNX). It is for PyTorch code of one's own: with torch_tensorrt imported,
``torch.export.load(path).module()`` is the stage, (prev, ref, next) -> restored ref.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from types import ModuleType

import torch

from vsarvo.artifacts import cache_dir, safe_name
from vsarvo.atomic import atomic_path
from vsarvo.model import ARVo

from .graphs import PRECISIONS, build_graph, graph_spec
from .onnx_export import weights_digest
from .tensorrt_engine import (
    DEFAULT_OPTIMIZATION_LEVEL, DEFAULT_WORKSPACE, TensorRTUnavailable, gpu_name, import_tensorrt,
)

__all__ = ["import_torch_tensorrt", "compiled_name", "cached_compiled_stage"]

log = logging.getLogger("vsarvo.export")


def import_torch_tensorrt() -> ModuleType:
    try:
        import torch_tensorrt
    except ImportError as exc:
        raise TensorRTUnavailable(
            f"torch-tensorrt is not installed ({exc}); pip install 'vsarvo[trt]' on a machine with an NVIDIA GPU"
        ) from exc
    return torch_tensorrt


def compiled_name(digest: str, *, height: int, width: int, precision: str, torch_trt_version: str,
                  trt_version: str, gpu: str, optimization_level: int) -> str:
    """Cache file name: weights, frame size, precision, torch-tensorrt and TensorRT versions, GPU, opt level."""
    return (
        f"arvo-stage-{digest}-{width}x{height}-{precision}-torchtrt{safe_name(torch_trt_version)}"
        f"-trt{safe_name(trt_version)}-{gpu}-O{optimization_level}.ep"
    )


def cached_compiled_stage(
    model: ARVo,
    *,
    height: int,
    width: int,
    precision: str,
    device: torch.device,
    workspace: int = DEFAULT_WORKSPACE,
    optimization_level: int = DEFAULT_OPTIMIZATION_LEVEL,
    folder: str | os.PathLike[str] | None = None,
) -> Path:
    """The saved torch-tensorrt program of the stage for ``height`` x ``width`` frames on CUDA ``device``.

    Compiled and saved first if it is not in the cache (``folder``/torch_tensorrt; an unwritable folder
    falls back to a temporary one).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
    torch_trt = import_torch_tensorrt()
    trt = import_tensorrt()
    gpu = gpu_name(device.index or 0)
    folder_path = cache_dir(folder, kind="torch_tensorrt")
    path = folder_path / compiled_name(
        weights_digest(model), height=height, width=width, precision=precision,
        torch_trt_version=torch_trt.__version__, trt_version=trt.__version__, gpu=gpu,
        optimization_level=optimization_level,
    )
    if path.is_file():
        return path
    spec = graph_spec(model, "stage", height=height, width=width)
    inputs = [torch.rand(shape, device=device) for shape in spec.inputs.values()]
    module = build_graph(model, "stage", precision).to(device)
    log.info("compiling the stage with torch-tensorrt for %dx%d (%s)", width, height, precision)
    compiled = torch_trt.compile(
        module, ir="dynamo", arg_inputs=inputs, use_explicit_typing=True, workspace_size=workspace,
        optimization_level=optimization_level, timing_cache_path=str(folder_path / f"timing-{gpu}.bin"),
    )
    with atomic_path(path) as tmp:
        torch_trt.save(compiled, str(tmp), arg_inputs=inputs)
    return path

