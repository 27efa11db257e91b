"""ONNX -> TensorRT engine with the TensorRT Python API, cached on disk.

Targets TensorRT 10.12+ and 11.x. Both build *strongly typed* networks: every tensor's type comes
from the ONNX graph, so an fp16 or bf16 engine is built from an fp16 or bf16 graph (whose aggregation
scores stay fp32, see vsarvo.export.graphs). TensorRT 11 builds only strongly typed networks and has
no precision builder flags at all; 10.x needs the STRONGLY_TYPED creation flag to do the same. No
precision flag is ever set.

An engine is only valid for the TensorRT version and GPU that built it, and for its graph and shape
range: all of these are in its cache file name. A timing cache per TensorRT version and GPU makes
rebuilding for another frame size faster.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import torch

from vsarvo.artifacts import cache_dir, safe_name
from vsarvo.atomic import write_bytes_atomic
from vsarvo.backends.errors import CacheError
from vsarvo.backends.options import DEFAULT_OPTIMIZATION_LEVEL, DEFAULT_WORKSPACE_MIB
from vsarvo.digest import file_sha256

__all__ = [
    "TensorRTUnavailable", "EngineBuildError", "GraphParseError", "ShapeRange", "MIN_TENSORRT", "import_tensorrt",
    "tensorrt_version", "trt_logger", "gpu_name", "engine_name", "build_engine", "cached_engine", "file_digest",
    "graph_precision",
    "DEFAULT_WORKSPACE", "DEFAULT_OPTIMIZATION_LEVEL",
]

log = logging.getLogger("vsarvo.export")

MIN_TENSORRT = (10, 12)  # first release whose strongly typed builder this code relies on
DEFAULT_WORKSPACE = DEFAULT_WORKSPACE_MIB << 20  # bytes of scratch memory the builder may give one layer


class TensorRTUnavailable(RuntimeError):
    """TensorRT, or the CUDA GPU it needs, is not there; the message says what to install or change."""


class EngineBuildError(RuntimeError):
    """TensorRT could not parse the graph or build the engine; the message carries its errors."""


class GraphParseError(EngineBuildError):
    """TensorRT's ONNX parser refused the graph file (a damaged file is worth exporting again; a build
    that fails after parsing is not)."""


@dataclass(frozen=True)
class ShapeRange:
    """One input's optimisation-profile shapes: the smallest, the one to tune for, the largest."""

    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]

    @classmethod
    def fixed(cls, shape: tuple[int, ...]) -> "ShapeRange":
        return cls(tuple(shape), tuple(shape), tuple(shape))

    def __post_init__(self) -> None:
        if not len(self.min) == len(self.opt) == len(self.max):
            raise ValueError(f"min/opt/max must have the same rank, got {self.min}, {self.opt}, {self.max}")
        if not all(a <= b <= c for a, b, c in zip(self.min, self.opt, self.max)):
            raise ValueError(f"need min <= opt <= max in every dimension, got {self.min}, {self.opt}, {self.max}")

    def label(self) -> str:
        dims = ["x".join(map(str, s)) for s in (self.min, self.opt, self.max)]
        return dims[0] if len(set(dims)) == 1 else "_".join(dims)


def import_tensorrt() -> ModuleType:
    """The ``tensorrt`` module, once checked to be a supported version."""
    try:
        import tensorrt
    except ImportError as exc:
        raise TensorRTUnavailable(
            f"TensorRT is not installed ({exc}); pip install 'vsarvo[trt]' (TensorRT {MIN_TENSORRT[0]}."
            f"{MIN_TENSORRT[1]} or newer) on a machine with an NVIDIA GPU"
        ) from exc
    if tensorrt_version(tensorrt) < MIN_TENSORRT:
        raise TensorRTUnavailable(
            f"TensorRT {tensorrt.__version__} is too old: strongly typed engines need "
            f"{MIN_TENSORRT[0]}.{MIN_TENSORRT[1]} or newer; pip install -U tensorrt"
        )
    return tensorrt


def tensorrt_version(trt: ModuleType) -> tuple[int, int]:
    major, minor = (int(part) for part in trt.__version__.split(".")[:2])
    return major, minor


def gpu_name(device: int = 0) -> str:
    """The CUDA device's name and compute capability, e.g. ``NVIDIA_H100_80GB_HBM3-sm90``."""
    if not torch.cuda.is_available():
        raise TensorRTUnavailable("TensorRT needs an NVIDIA GPU with CUDA, and torch sees none here")
    if device >= torch.cuda.device_count():
        raise TensorRTUnavailable(f"cuda:{device} does not exist: {torch.cuda.device_count()} CUDA device(s) found")
    major, minor = torch.cuda.get_device_capability(device)
    return f"{safe_name(torch.cuda.get_device_name(device))}-sm{major}{minor}"


def file_digest(path: Path) -> str:
    """The first 16 hex digits of the file's SHA-256: enough to tell graphs apart in an engine's name."""
    return file_sha256(path)[:16]


def engine_name(
    onnx_digest: str, shapes: dict[str, ShapeRange], *, precision: str, trt_version: str, gpu: str,
    optimization_level: int,
) -> str:
    """Cache file name: ONNX hash, every input's shape range, precision, TensorRT version, GPU, opt level."""
    ranges = "-".join(f"{safe_name(name)}{shape.label()}" for name, shape in sorted(shapes.items()))
    return (
        f"arvo-{onnx_digest}-{ranges}-{precision}-trt{safe_name(trt_version)}-{gpu}"
        f"-O{optimization_level}.engine"
    )


def graph_precision(onnx_path: str | os.PathLike[str]) -> str:
    """The precision an ONNX graph computes in: vsarvo's "vsarvo.precision" metadata where it has it,
    else the type of its floating-point weights (fp16 or bf16 where any are half, else fp32)."""
    import onnx

    model = onnx.load(os.fspath(onnx_path), load_external_data=False)
    for prop in model.metadata_props:
        if prop.key == "vsarvo.precision":
            return prop.value
    types = {t.data_type for t in model.graph.initializer}
    if onnx.TensorProto.FLOAT16 in types:
        return "fp16"
    if onnx.TensorProto.BFLOAT16 in types:
        return "bf16"
    return "fp32"


_LOGGERS: dict[int, object] = {}


def trt_logger(trt: ModuleType) -> object:
    """A TensorRT logger that forwards to Python logging (stderr; never stdout, which may carry video).

    One per TensorRT module, kept alive for the life of the process as TensorRT requires.
    """
    if id(trt) not in _LOGGERS:
        sev = trt.ILogger.Severity
        levels = {
            sev.INTERNAL_ERROR: logging.CRITICAL, sev.ERROR: logging.ERROR, sev.WARNING: logging.WARNING,
            sev.INFO: logging.DEBUG, sev.VERBOSE: logging.DEBUG,
        }

        class _PythonLogger(trt.ILogger):
            def __init__(self) -> None:
                trt.ILogger.__init__(self)

            def log(self, severity: object, msg: str) -> None:
                log.log(levels.get(severity, logging.WARNING), "TensorRT: %s", msg)

        _LOGGERS[id(trt)] = _PythonLogger()
    return _LOGGERS[id(trt)]


def _network_flags(trt: ModuleType) -> int:
    # TensorRT 11 is always strongly typed (its STRONGLY_TYPED flag is a deprecated no-op);
    # 10.x builds weakly typed networks unless asked.
    if tensorrt_version(trt) >= (11, 0):
        return 0
    return 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)


def build_engine(
    onnx_path: str | os.PathLike[str],
    *,
    shapes: dict[str, ShapeRange],
    workspace: int = DEFAULT_WORKSPACE,
    optimization_level: int = DEFAULT_OPTIMIZATION_LEVEL,
    timing_cache: Path | None = None,
) -> bytes:
    """Build a serialized engine from the ONNX at ``onnx_path``; returns the plan bytes.

    ``shapes`` gives every graph input's optimisation-profile range (one profile). ``workspace`` caps
    the builder's scratch memory (bytes); ``optimization_level`` is 0..5. ``timing_cache``: a file
    read before building (if present) and rewritten after it.
    """
    if not 0 <= optimization_level <= 5:
        raise ValueError(f"optimization_level must be in 0..5, got {optimization_level}")
    if workspace <= 0:
        raise ValueError(f"workspace must be a positive number of bytes, got {workspace}")
    trt = import_tensorrt()
    logger = trt_logger(trt)
    builder = trt.Builder(logger)
    network = builder.create_network(_network_flags(trt))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise GraphParseError(f"TensorRT could not parse {onnx_path}: {errors}")
    inputs = [network.get_input(i).name for i in range(network.num_inputs)]
    if sorted(inputs) != sorted(shapes):
        raise ValueError(f"shapes must name exactly the graph's inputs {inputs}, got {sorted(shapes)}")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace)
    config.builder_optimization_level = optimization_level
    profile = builder.create_optimization_profile()
    for name in inputs:
        r = shapes[name]
        profile.set_shape(name, r.min, r.opt, r.max)
    config.add_optimization_profile(profile)
    cache_bytes = timing_cache.read_bytes() if timing_cache is not None and timing_cache.is_file() else b""
    cache = config.create_timing_cache(cache_bytes)
    config.set_timing_cache(cache, ignore_mismatch=False)

    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise EngineBuildError(f"TensorRT failed to build an engine from {onnx_path}; its log (stderr) says why")
    if timing_cache is not None:
        try:
            write_bytes_atomic(timing_cache, bytes(memoryview(config.get_timing_cache().serialize())))
        except OSError as exc:
            raise CacheError.writing(timing_cache, exc) from exc
    return bytes(memoryview(plan))


def cached_engine(
    onnx_path: str | os.PathLike[str],
    *,
    shapes: dict[str, ShapeRange],
    precision: str,
    device: int = 0,
    workspace: int = DEFAULT_WORKSPACE,
    optimization_level: int = DEFAULT_OPTIMIZATION_LEVEL,
    folder: str | os.PathLike[str] | None = None,
) -> Path:
    """The engine for this graph, shape range, precision, TensorRT and GPU, built first if not cached.

    TensorRT builds on the current CUDA device: the caller makes ``device`` current (its name goes
    into the cache name). ``precision`` is the graph's precision (it is in the graph; a graph of another
    precision is refused with ValueError). ``folder``: the cache root (engines go to its ``tensorrt/``
    subfolder; an unwritable folder falls back to a temporary one).
    """
    trt = import_tensorrt()
    gpu = gpu_name(device)
    onnx_path = Path(onnx_path)
    graph = graph_precision(onnx_path)
    if graph != precision:
        # A strongly typed engine computes in its graph's types: the name must not claim another.
        raise ValueError(f"{onnx_path} is a {graph} graph, but a {precision} engine was asked for; export the "
                         f"graph at {precision} (a strongly typed engine takes its precision from the graph)")
    folder_path = cache_dir(folder, kind="tensorrt")
    name = engine_name(
        file_digest(onnx_path), shapes, precision=precision, trt_version=trt.__version__, gpu=gpu,
        optimization_level=optimization_level,
    )
    path = folder_path / name
    if path.is_file():
        return path
    log.info("building TensorRT engine %s (this takes a while once per frame size)", path)
    timing = folder_path / f"timing-trt{safe_name(trt.__version__)}-{gpu}.cache"
    plan = build_engine(
        onnx_path, shapes=shapes, workspace=workspace, optimization_level=optimization_level,
        timing_cache=timing,
    )
    try:
        return write_bytes_atomic(path, plan)
    except OSError as exc:
        raise CacheError.writing(path, exc) from exc
