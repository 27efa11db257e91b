"""TensorRT engine building, caching and running.

The real TensorRT cannot run here (no NVIDIA GPU, no TensorRT wheel): these tests inject a fake
``tensorrt`` module at the import boundary (sys.modules) that records what the code asks TensorRT
for (creation flags, builder flags, profiles, workspace, optimisation level, timing cache, tensor
addresses) and assert on those requests. The tests marked ``trt`` use the real TensorRT and a GPU
and are skipped where either is missing.
"""
from __future__ import annotations

import ctypes
import json
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from vsarvo.export import tensorrt_engine as te
from vsarvo.export.tensorrt_engine import EngineBuildError, ShapeRange, TensorRTUnavailable

GPU = "FakeGPU_9000-sm90"


# --- the fake TensorRT ------------------------------------------------------------------------------

class _Enum:
    def __init__(self, **members: int) -> None:
        for name, value in members.items():
            setattr(self, name, value)


def make_fake_tensorrt(version: str, calls: list) -> types.ModuleType:
    """A stand-in for the tensorrt module of ``version`` that appends every request to ``calls``."""
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    major = int(version.split(".")[0])
    trt.NetworkDefinitionCreationFlag = _Enum(STRONGLY_TYPED=5)
    # TensorRT 11 removed every precision flag; 10.x still has them (and this code must not use them).
    trt.BuilderFlag = _Enum(TF32=7) if major >= 11 else _Enum(FP16=0, BF16=17, INT8=1, TF32=7)
    trt.MemoryPoolType = _Enum(WORKSPACE=0)
    trt.TensorIOMode = _Enum(NONE=0, INPUT=1, OUTPUT=2)
    trt.DataType = _Enum(FLOAT=0, HALF=1, INT8=2, INT32=3, BOOL=4, UINT8=5, BF16=7, INT64=8)

    class ILogger:
        Severity = _Enum(INTERNAL_ERROR=0, ERROR=1, WARNING=2, INFO=3, VERBOSE=4)

        def __init__(self) -> None:
            pass

    trt.ILogger = ILogger

    onnx_types = {TensorProto.FLOAT: trt.DataType.FLOAT, TensorProto.FLOAT16: trt.DataType.HALF,
                  TensorProto.BFLOAT16: trt.DataType.BF16, TensorProto.INT64: trt.DataType.INT64}

    class Tensor:
        """A network input or output as the parser read it from the ONNX: name, shape (-1: dynamic), dtype."""

        def __init__(self, info: onnx.ValueInfoProto) -> None:
            self.name = info.name
            self.shape = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in info.type.tensor_type.shape.dim)
            self.dtype = onnx_types[info.type.tensor_type.elem_type]

    class Network:
        def __init__(self, flags: int) -> None:
            self.flags = flags
            self.inputs: list[Tensor] = []
            self.outputs: list[Tensor] = []
            self.onnx_path = ""
            self.half = False

        @property
        def num_inputs(self) -> int:
            return len(self.inputs)

        @property
        def num_outputs(self) -> int:
            return len(self.outputs)

        def get_input(self, i: int) -> Tensor:
            return self.inputs[i]

        def get_output(self, i: int) -> Tensor:
            return self.outputs[i]

    class OnnxParser:
        def __init__(self, network: Network, logger: object) -> None:
            self.network = network
            self.errors: list[str] = []

        def parse_from_file(self, path: str) -> bool:
            calls.append(("parse", path))
            try:
                model = onnx.load(path)
            except Exception as exc:  # noqa: BLE001 - the real parser reports, it does not raise
                self.errors.append(f"not an ONNX file: {exc}")
                return False
            if not model.graph.node:
                self.errors.append("graph has no nodes")
                return False
            weights = {t.name for t in model.graph.initializer}
            self.network.inputs = [Tensor(i) for i in model.graph.input if i.name not in weights]
            self.network.outputs = [Tensor(o) for o in model.graph.output]
            self.network.onnx_path = path
            self.network.half = any(t.data_type in (TensorProto.FLOAT16, TensorProto.BFLOAT16)
                                    for t in model.graph.initializer)
            return True

        @property
        def num_errors(self) -> int:
            return len(self.errors)

        def get_error(self, i: int) -> str:
            return self.errors[i]

    class Profile:
        def __init__(self) -> None:
            self.shapes: dict[str, tuple] = {}

        def set_shape(self, name: str, mn: tuple, opt: tuple, mx: tuple) -> None:
            calls.append(("profile", name, tuple(mn), tuple(opt), tuple(mx)))
            self.shapes[name] = (tuple(mn), tuple(opt), tuple(mx))

    class TimingCache:
        def __init__(self, data: bytes) -> None:
            self.data = data

        def serialize(self) -> bytes:
            return self.data + b"+tuned"

    class Config:
        def __init__(self) -> None:
            self.cache = None
            self.flags: list[int] = []
            self.profiles: list[Profile] = []

        def set_memory_pool_limit(self, pool: int, size: int) -> None:
            calls.append(("memory_pool_limit", pool, size))

        def set_flag(self, flag: int) -> None:
            calls.append(("set_flag", flag))
            self.flags.append(flag)

        def __setattr__(self, name: str, value: object) -> None:
            if name == "builder_optimization_level":
                calls.append(("optimization_level", value))
            object.__setattr__(self, name, value)

        def add_optimization_profile(self, profile: Profile) -> int:
            calls.append(("add_profile",))
            self.profiles.append(profile)
            return len(self.profiles) - 1

        def create_timing_cache(self, data: bytes) -> TimingCache:
            calls.append(("timing_cache_in", bytes(data)))
            return TimingCache(bytes(data))

        def set_timing_cache(self, cache: TimingCache, ignore_mismatch: bool) -> bool:
            self.cache = cache
            return True

        def get_timing_cache(self) -> TimingCache:
            return self.cache

    def profile_errors(network: Network, config: Config) -> list[str]:
        """What the real builder refuses: a missing profile shape, a range outside a static dimension."""
        errors = []
        (profile,) = config.profiles
        for tensor in network.inputs:
            if tensor.name not in profile.shapes:
                errors.append(f"no profile shape for input {tensor.name}")
                continue
            for shape in profile.shapes[tensor.name]:
                if len(shape) != len(tensor.shape) or any(d != -1 and d != s for d, s in zip(tensor.shape, shape)):
                    errors.append(f"profile shape {shape} of {tensor.name} does not fit its static shape {tensor.shape}")
        return errors

    class Builder:
        def __init__(self, logger: object) -> None:
            calls.append(("builder", isinstance(logger, ILogger)))
            self.logger = logger

        def create_network(self, flags: int = 0) -> Network:
            calls.append(("create_network", flags))
            return Network(flags)

        def create_builder_config(self) -> Config:
            return Config()

        def create_optimization_profile(self) -> Profile:
            return Profile()

        def build_serialized_network(self, network: Network, config: Config) -> bytes | None:
            calls.append(("build",))
            strongly_typed = major >= 11 or network.flags & (1 << trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
            precision_flags = {getattr(trt.BuilderFlag, n, None) for n in ("FP16", "BF16", "INT8")} - {None}
            errors = profile_errors(network, config)
            if strongly_typed and precision_flags & set(config.flags):
                errors.append("precision flags are not allowed on a strongly typed network")
            if errors:
                for error in errors:
                    self.logger.log(ILogger.Severity.ERROR, error)
                return None
            plan = {"onnx": network.onnx_path, "half": network.half,
                    "profile": {n: s for n, s in config.profiles[0].shapes.items()},
                    "io": [(t.name, t.shape, t.dtype, True) for t in network.inputs]
                    + [(t.name, t.shape, t.dtype, False) for t in network.outputs]}
            return b"PLAN:" + json.dumps(plan).encode()

    trt.Builder = Builder
    trt.OnnxParser = OnnxParser

    class Context:
        """Runs the plan's ONNX with onnxruntime, reading and writing the bound addresses."""

        def __init__(self, engine: "Engine") -> None:
            self.engine = engine
            self.shapes: dict[str, tuple] = {}
            self.addresses: dict[str, int] = {}

        def set_input_shape(self, name: str, shape: tuple) -> bool:
            calls.append(("set_input_shape", name, tuple(shape)))
            mn, _, mx = self.engine.profile[name]
            self.shapes[name] = tuple(shape)
            return len(shape) == len(mn) and all(a <= s <= b for a, s, b in zip(mn, shape, mx))

        def get_tensor_shape(self, name: str) -> tuple:
            if name in self.shapes:
                return self.shapes[name]
            static = self.engine.io[name][0]
            first = self.shapes[self.engine.inputs[0]]
            return tuple(first[i] if d == -1 else d for i, d in enumerate(static))

        def set_tensor_address(self, name: str, address: int) -> bool:
            calls.append(("set_tensor_address", name))
            self.addresses[name] = address
            return True

        def _array(self, name: str) -> np.ndarray:
            dtype = np.dtype(NUMPY_TYPES[self.engine.io[name][1]])
            shape = self.get_tensor_shape(name)
            buffer = (ctypes.c_byte * (int(np.prod(shape)) * dtype.itemsize)).from_address(self.addresses[name])
            return np.frombuffer(buffer, dtype=dtype).reshape(shape)

        def execute_async_v3(self, stream: int) -> bool:
            calls.append(("execute_async_v3", stream))
            feeds = {name: self._array(name).copy() for name in self.engine.inputs}
            results = self.engine.session.run(self.engine.outputs, feeds)
            for name, result in zip(self.engine.outputs, results):
                np.copyto(self._array(name), result)
            return True

    NUMPY_TYPES = {trt.DataType.FLOAT: np.float32, trt.DataType.HALF: np.float16, trt.DataType.INT64: np.int64}

    class Engine:
        def __init__(self, plan: dict) -> None:
            import onnxruntime

            self.profile = {n: tuple(map(tuple, s)) for n, s in plan["profile"].items()}
            self.io = {n: (tuple(shape), dtype) for n, shape, dtype, _ in plan["io"]}
            self.inputs = [n for n, _, _, is_input in plan["io"] if is_input]
            self.outputs = [n for n, _, _, is_input in plan["io"] if not is_input]
            self.half = plan["half"]
            self.session = onnxruntime.InferenceSession(plan["onnx"], providers=["CPUExecutionProvider"])

        @property
        def num_io_tensors(self) -> int:
            return len(self.io)

        def get_tensor_name(self, i: int) -> str:
            return (*self.inputs, *self.outputs)[i]

        def get_tensor_mode(self, name: str) -> int:
            return trt.TensorIOMode.INPUT if name in self.inputs else trt.TensorIOMode.OUTPUT

        def get_tensor_dtype(self, name: str) -> int:
            return self.io[name][1]

        def create_execution_context(self) -> Context:
            return Context(self)

    class Runtime:
        def __init__(self, logger: object) -> None:
            pass

        def deserialize_cuda_engine(self, plan: bytes) -> Engine | None:
            calls.append(("deserialize", bytes(plan[:5])))
            if not bytes(plan).startswith(b"PLAN:"):
                return None
            return Engine(json.loads(bytes(plan)[5:]))

    trt.Runtime = Runtime
    return trt


@pytest.fixture
def calls() -> list:
    return []


@pytest.fixture
def fake_trt(monkeypatch: pytest.MonkeyPatch, calls: list):
    """Installs a fake TensorRT of a given version and a fake GPU; returns the installer."""
    def install(version: str) -> types.ModuleType:
        trt = make_fake_tensorrt(version, calls)
        monkeypatch.setitem(sys.modules, "tensorrt", trt)
        monkeypatch.setattr(te, "gpu_name", lambda device=0: GPU)
        return trt

    return install


@pytest.fixture
def onnx_file(tmp_path: Path) -> Path:
    """A two-input ONNX graph: ``ref`` static, ``prev`` with a dynamic frame size (the fake parser reads
    both, with their shapes and types, and the fake engine runs it with onnxruntime)."""
    a = helper.make_tensor_value_info("ref", TensorProto.FLOAT, [1, 3, 64, 96])
    b = helper.make_tensor_value_info("prev", TensorProto.FLOAT, [1, 3, "height", "width"])
    out = helper.make_tensor_value_info("restored", TensorProto.FLOAT, [1, 3, 64, 96])
    graph = helper.make_graph([helper.make_node("Add", ["ref", "prev"], ["restored"])], "g", [a, b], [out])
    path = tmp_path / "graph.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


SHAPES = {"ref": ShapeRange.fixed((1, 3, 64, 96)), "prev": ShapeRange((1, 3, 64, 64), (1, 3, 64, 96), (1, 3, 128, 128))}


# --- building ---------------------------------------------------------------------------------------

def test_tensorrt_10_builds_a_strongly_typed_network(fake_trt, calls: list, onnx_file: Path) -> None:
    fake_trt("10.12.0.36")
    te.build_engine(onnx_file, shapes=SHAPES)
    assert ("create_network", 1 << 5) in calls


def test_tensorrt_11_gets_no_creation_flags_and_no_builder_flags(fake_trt, calls: list, onnx_file: Path) -> None:
    fake_trt("11.4.0.106")
    te.build_engine(onnx_file, shapes=SHAPES)
    assert ("create_network", 0) in calls
    assert not [c for c in calls if c[0] == "set_flag"]


def test_tensorrt_10_is_never_asked_for_a_precision_flag(fake_trt, calls: list, onnx_file: Path) -> None:
    fake_trt("10.13.2.6")
    te.build_engine(onnx_file, shapes=SHAPES)
    assert not [c for c in calls if c[0] == "set_flag"]


def test_builder_gets_one_profile_with_every_input_range(fake_trt, calls: list, onnx_file: Path) -> None:
    fake_trt("11.4.0.106")
    te.build_engine(onnx_file, shapes=SHAPES)
    profiles = sorted(c for c in calls if c[0] == "profile")
    assert profiles == [
        ("profile", "prev", (1, 3, 64, 64), (1, 3, 64, 96), (1, 3, 128, 128)),
        ("profile", "ref", (1, 3, 64, 96), (1, 3, 64, 96), (1, 3, 64, 96)),
    ]
    assert calls.count(("add_profile",)) == 1


def test_builder_gets_workspace_limit_and_optimisation_level(fake_trt, calls: list, onnx_file: Path) -> None:
    trt = fake_trt("11.4.0.106")
    te.build_engine(onnx_file, shapes=SHAPES, workspace=3 << 30, optimization_level=5)
    assert ("memory_pool_limit", trt.MemoryPoolType.WORKSPACE, 3 << 30) in calls
    assert ("optimization_level", 5) in calls


def test_builder_rejects_shapes_that_do_not_name_the_graph_inputs(fake_trt, onnx_file: Path) -> None:
    fake_trt("11.4.0.106")
    with pytest.raises(ValueError, match="prev"):
        te.build_engine(onnx_file, shapes={"ref": SHAPES["ref"]})


def test_timing_cache_is_read_before_and_rewritten_after_a_build(fake_trt, calls: list, onnx_file: Path,
                                                                 tmp_path: Path) -> None:
    fake_trt("11.4.0.106")
    timing = tmp_path / "timing.cache"
    timing.write_bytes(b"earlier")
    te.build_engine(onnx_file, shapes=SHAPES, timing_cache=timing)
    assert ("timing_cache_in", b"earlier") in calls
    assert timing.read_bytes() == b"earlier+tuned"


def test_parse_errors_are_reported(fake_trt, tmp_path: Path) -> None:
    fake_trt("11.4.0.106")
    empty = tmp_path / "empty.onnx"
    onnx.save(helper.make_model(helper.make_graph([], "g", [], [])), empty)
    with pytest.raises(EngineBuildError, match="graph has no nodes"):
        te.build_engine(empty, shapes={})


# --- the engine cache -------------------------------------------------------------------------------

def test_engine_cache_name_encodes_graph_shapes_precision_version_and_gpu(fake_trt, onnx_file: Path,
                                                                         tmp_path: Path) -> None:
    fake_trt("11.4.0.106")
    path = te.cached_engine(onnx_file, shapes=SHAPES, precision="fp32", folder=tmp_path / "cache")
    assert path.parent == tmp_path / "cache" / "tensorrt"
    assert path.name == (
        f"arvo-{te.file_digest(onnx_file)}-prev1x3x64x64_1x3x64x96_1x3x128x128-ref1x3x64x96"
        f"-fp32-trt11.4.0.106-{GPU}-O3.engine"
    )
    assert path.read_bytes() == _plan(onnx_file)


def test_cached_engine_is_built_once(fake_trt, calls: list, onnx_file: Path, tmp_path: Path) -> None:
    fake_trt("11.4.0.106")
    first = te.cached_engine(onnx_file, shapes=SHAPES, precision="fp32", folder=tmp_path)
    second = te.cached_engine(onnx_file, shapes=SHAPES, precision="fp32", folder=tmp_path)
    assert first == second and calls.count(("build",)) == 1


def test_another_tensorrt_version_builds_another_engine(fake_trt, onnx_file: Path, tmp_path: Path) -> None:
    fake_trt("10.12.0.36")
    old = te.cached_engine(onnx_file, shapes=SHAPES, precision="fp32", folder=tmp_path)
    fake_trt("11.4.0.106")
    new = te.cached_engine(onnx_file, shapes=SHAPES, precision="fp32", folder=tmp_path)
    assert old != new and old.is_file() and new.is_file()


def test_unwritable_cache_folder_falls_back_to_a_temporary_one(fake_trt, onnx_file: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    fake_trt("11.4.0.106")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "system-temp"))
    (tmp_path / "system-temp").mkdir()
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder would be")
    path = te.cached_engine(onnx_file, shapes=SHAPES, precision="fp32", folder=blocker)
    assert path.is_file() and path.parent.parent.parent == tmp_path / "system-temp"
    assert path.parent.name == "tensorrt" and path.parent.parent.name.startswith("vsarvo-cache-")


# --- clear errors -----------------------------------------------------------------------------------

def test_missing_tensorrt_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # makes `import tensorrt` raise ImportError
    with pytest.raises(TensorRTUnavailable, match=r"pip install 'vsarvo\[trt\]'"):
        te.import_tensorrt()


def test_tensorrt_older_than_10_12_is_refused(fake_trt) -> None:
    fake_trt("10.8.0.43")
    with pytest.raises(TensorRTUnavailable, match="10.8.0.43 is too old"):
        te.import_tensorrt()


def test_missing_gpu_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(TensorRTUnavailable, match="NVIDIA GPU"):
        te.gpu_name(0)


def test_trt_backend_without_tensorrt_raises_backend_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from vsarvo.backends import Backend, BackendError, create_runner

    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(BackendError, match="TensorRT is not installed"):
        create_runner(Backend.TRT())


# --- the runner ---------------------------------------------------------------------------------------

class _RecordingStream:
    """A CUDA stream stand-in (there is no GPU here): it records waits into the shared event log."""

    def __init__(self, name: str, handle: int, events: list) -> None:
        self.name, self.cuda_stream, self.events = name, handle, events

    def wait_stream(self, other: "_RecordingStream") -> None:
        self.events.append(("wait", self.name, other.name))


@pytest.fixture
def fake_cuda(monkeypatch: pytest.MonkeyPatch, calls: list) -> dict:
    """torch.cuda streams replaced by recorders and "cuda" tensors kept on the CPU, so the runner's stream
    logic runs here: every stream wait, every Tensor.to copy (with the stream current at the time) and
    every TensorRT call land in ``calls`` in the order they happen."""
    import contextlib

    streams = {"caller": _RecordingStream("caller", 1, calls), "own": _RecordingStream("own", 2, calls)}
    current = [streams["caller"]]

    @contextlib.contextmanager
    def stream(s: _RecordingStream):  # noqa: ANN202 - torch.cuda.stream
        previous, current[0] = current[0], s
        try:
            yield
        finally:
            current[0] = previous

    original_to = torch.Tensor.to

    def to(self: torch.Tensor, *args, **kwargs):  # noqa: ANN002, ANN003, ANN202 - Tensor.to
        args = tuple("cpu" if isinstance(a, (str, torch.device)) and str(a).startswith("cuda") else a for a in args)
        if str(kwargs.get("device", "")).startswith("cuda"):
            kwargs["device"] = "cpu"
        calls.append(("copy", current[0].name))
        return original_to(self, *args, **kwargs)

    monkeypatch.setattr(torch.cuda, "Stream", lambda device=None: streams["own"])
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: current[0])
    monkeypatch.setattr(torch.cuda, "stream", stream)
    monkeypatch.setattr(torch.Tensor, "to", to)
    monkeypatch.setattr(torch.Tensor, "record_stream", lambda self, s: calls.append(("record_stream", s.name)))
    return streams


def _plan(onnx_file: Path, shapes: dict | None = None) -> bytes:
    return te.build_engine(onnx_file, shapes=shapes or SHAPES)


def _ordering(calls: list) -> list:
    """The runner's events from its wait on the caller's stream on: waits, copies (by stream), execution."""
    start = max(i for i, c in enumerate(calls) if c == ("wait", "own", "caller"))
    kinds = ("wait", "copy", "execute_async_v3")
    return [c if c[0] != "execute_async_v3" else ("execute", c[1]) for c in calls[start:] if c[0] in kinds]


def test_runner_copies_in_executes_and_copies_out_on_its_own_stream_in_order(fake_trt, calls: list, fake_cuda: dict,
                                                                            onnx_file: Path) -> None:
    from vsarvo.export.tensorrt_runner import EngineRunner

    fake_trt("11.4.0.106")
    runner = EngineRunner(_plan(onnx_file), device=torch.device("cpu"))
    ref, prev = torch.rand(1, 3, 64, 96), torch.rand(1, 3, 64, 96)
    (out,) = runner(ref, prev, to_host=True)
    assert torch.allclose(out, ref + prev)
    assert [c for c in calls if c[0] == "set_input_shape"] == [
        ("set_input_shape", "ref", (1, 3, 64, 96)), ("set_input_shape", "prev", (1, 3, 64, 96))]
    assert _ordering(calls) == [
        ("wait", "own", "caller"), ("copy", "own"), ("copy", "own"), ("execute", 2), ("copy", "own"),
        ("wait", "caller", "own"),
    ]


def test_runner_casts_inputs_to_the_engine_dtype(fake_trt, fake_cuda: dict, onnx_file: Path) -> None:
    from vsarvo.export.tensorrt_runner import EngineRunner

    fake_trt("11.4.0.106")
    runner = EngineRunner(_plan(onnx_file), device=torch.device("cpu"))
    ref, prev = (torch.rand(1, 3, 64, 96, dtype=torch.float64) for _ in range(2))
    (out,) = runner(ref, prev)
    assert out.dtype == torch.float32
    assert torch.allclose(out, (ref + prev).float())


def test_runner_rejects_a_shape_outside_the_profile(fake_trt, fake_cuda: dict, onnx_file: Path) -> None:
    from vsarvo.export.tensorrt_runner import EngineRunner

    fake_trt("11.4.0.106")
    runner = EngineRunner(_plan(onnx_file), device=torch.device("cpu"))
    with pytest.raises(ValueError, match="outside the engine's profile"):
        runner(torch.rand(1, 3, 64, 96), torch.rand(1, 3, 8, 8))


def test_runner_reports_an_engine_it_cannot_load(fake_trt, fake_cuda: dict) -> None:
    from vsarvo.export.tensorrt_runner import EngineRunner

    fake_trt("11.4.0.106")
    with pytest.raises(EngineBuildError, match="delete it from the cache"):
        EngineRunner(b"garbage", device=torch.device("cpu"))


def test_a_dynamic_profile_for_a_static_input_is_refused(fake_trt, onnx_file: Path) -> None:
    fake_trt("11.4.0.106")
    shapes = {"ref": SHAPES["prev"], "prev": SHAPES["prev"]}  # ref is static 1x3x64x96 in the graph
    with pytest.raises(EngineBuildError, match="failed to build"):
        te.build_engine(onnx_file, shapes=shapes)


def test_an_engine_of_another_precision_than_the_graph_is_refused(fake_trt, onnx_file: Path, tmp_path: Path) -> None:
    fake_trt("11.4.0.106")
    with pytest.raises(ValueError, match="is a fp32 graph, but a fp16 engine was asked for"):
        te.cached_engine(onnx_file, shapes=SHAPES, precision="fp16", folder=tmp_path)


# --- torch-tensorrt ---------------------------------------------------------------------------------

def test_torch_tensorrt_compiles_once_with_explicit_typing(fake_trt, monkeypatch: pytest.MonkeyPatch,
                                                           tmp_path: Path) -> None:
    from vsarvo.export import torch_tensorrt_compile as ttc
    from vsarvo.model import ARVo, ARVoConfig

    fake_trt("11.4.0.106")
    compiled: list[dict] = []
    fake = types.ModuleType("torch_tensorrt")
    fake.__version__ = "2.14.0"

    def compile_(module, **kwargs):  # noqa: ANN001, ANN202 - records the request
        compiled.append(kwargs)
        return module

    fake.compile = compile_
    fake.save = lambda module, path, arg_inputs: Path(path).write_bytes(b"program")
    monkeypatch.setitem(sys.modules, "torch_tensorrt", fake)
    monkeypatch.setattr(ttc, "gpu_name", lambda device=0: GPU)
    model = ARVo(ARVoConfig.tiny())
    args = dict(height=64, width=96, precision="fp16", device=torch.device("cpu"), folder=tmp_path)
    first = ttc.cached_compiled_stage(model, **args)
    second = ttc.cached_compiled_stage(model, **args)
    assert first == second and len(compiled) == 1
    assert compiled[0]["ir"] == "dynamo" and compiled[0]["use_explicit_typing"] is True
    assert [tuple(x.shape) for x in compiled[0]["arg_inputs"]] == [(1, 3, 64, 96)] * 3
    assert first.name.endswith(f"-96x64-fp16-torchtrt2.14.0-trt11.4.0.106-{GPU}-O3.ep")


# --- the trt backend end to end on the fake -----------------------------------------------------------

SMALL = dict(channels=8, encoder_width=4, recon_width=8, recon_blocks=1, flow_width=0.1, disc_width=4)


def _head_reinitialised_model(tmp_path: Path, **config: object):  # noqa: ANN202 - (ARVo, weights path)
    """A seeded tiny model whose residual head is re-initialised (as in the ONNX parity tests), so its
    output is far from the middle frame and from the output with prev and next swapped; and its weights."""
    from vsarvo.model import ARVo, ARVoConfig
    from vsarvo.weights import save_model

    torch.manual_seed(0)
    model = ARVo(ARVoConfig.tiny(**config)).eval()
    model.stage.reconstruction.decode_full[-1].reset_parameters()
    return model, save_model(model, tmp_path / "w.safetensors")


def _assert_stage_output(model, frames: list[torch.Tensor], out: torch.Tensor, tolerance: float) -> None:  # noqa: ANN001
    """``out`` is the stage on (prev, ref, next) within ``tolerance``, and the wrong answers an engine
    could give (the middle frame, prev and next swapped) are each more than 5 x ``tolerance`` away."""
    prev, ref, nxt = frames
    with torch.no_grad():
        expected = model.stage(prev, ref, nxt).clamp(0, 1)
        swapped = model.stage(nxt, ref, prev).clamp(0, 1)
    assert (expected - ref).abs().max().item() > 5 * tolerance
    assert (expected - swapped).abs().max().item() > 5 * tolerance
    assert (out - expected).abs().max().item() <= tolerance


@pytest.fixture
def fake_cuda_device(monkeypatch: pytest.MonkeyPatch, fake_cuda: dict) -> dict:
    """torch sees one CUDA device whose memory is the CPU's (the trt backend refuses to start without one)."""
    import contextlib

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "device", lambda device: contextlib.nullcontext())
    return fake_cuda


def test_trt_runner_runs_the_stage_end_to_end_on_the_fake(fake_trt, fake_cuda_device: dict, calls: list,
                                                         tmp_path: Path) -> None:
    from vsarvo.backends import Backend, create_runner

    fake_trt("11.4.0.106")
    model, weights = _head_reinitialised_model(tmp_path, **SMALL)
    runner = create_runner(Backend.TRT(device="cuda:0", precision="fp32", cache_dir=str(tmp_path / "c")),
                           weights=str(weights))
    generator = torch.Generator().manual_seed(1)
    frames = [torch.rand(1, 3, 64, 72, generator=generator) for _ in range(3)]
    out = runner.run(*frames)
    _assert_stage_output(model, frames, out, tolerance=1e-4)  # the ORT parity tolerance
    events = _ordering(calls)
    i = events.index(("execute", 2))
    assert events[:i] == [("wait", "own", "caller")] + [("copy", "own")] * 3  # prev, ref, next in
    assert events[i + 1:i + 3] == [("copy", "own"), ("wait", "caller", "own")]  # restored out


def _trt_runner_with_cached_graph(fake_trt, tmp_path: Path):  # noqa: ANN001, ANN202 - (trt module, make)
    """A fake TensorRT, and a maker of trt runners sharing one cache in which the stage graph for 64x72
    frames is already exported (a first runner ran a frame), so a failure below is the engine's."""
    from vsarvo.backends import Backend, create_runner

    trt = fake_trt("11.4.0.106")
    _, weights = _head_reinitialised_model(tmp_path, **SMALL)

    def make():  # noqa: ANN202
        return create_runner(Backend.TRT(device="cuda:0", precision="fp32", cache_dir=str(tmp_path / "c")),
                             weights=str(weights))

    make().run(*_small_frames())
    return trt, make


def _small_frames() -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return [torch.rand(1, 3, 64, 72, generator=generator) for _ in range(3)]


def test_an_engine_that_fails_to_build_is_built_once_and_named(fake_trt, fake_cuda_device: dict, calls: list,
                                                                tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vsarvo.backends import BackendError

    trt, make = _trt_runner_with_cached_graph(fake_trt, tmp_path)
    for engine in (tmp_path / "c" / "tensorrt").glob("*.engine"):
        engine.unlink()

    def fails(self, network, config):  # noqa: ANN001, ANN202 - the builder's signature
        calls.append(("build",))
        return None

    monkeypatch.setattr(trt.Builder, "build_serialized_network", fails)
    calls.clear()
    with pytest.raises(BackendError, match=r"could not build a working engine for 72x64 frames: TensorRT failed "
                                           r"to build.*larger workspace="):
        make().run(*_small_frames())
    assert calls.count(("build",)) == 1  # exporting the same graph again would only fail the same way


def test_a_cached_engine_that_never_loads_is_rebuilt_once_then_named(fake_trt, fake_cuda_device: dict, calls: list,
                                                                    tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from vsarvo.backends import BackendError

    trt, make = _trt_runner_with_cached_graph(fake_trt, tmp_path)
    monkeypatch.setattr(trt.Runtime, "deserialize_cuda_engine", lambda self, plan: None)
    calls.clear()
    with pytest.raises(BackendError, match="could not build a working engine.*delete it from the cache"):
        make().run(*_small_frames())
    assert calls.count(("build",)) == 1  # the cached engine, then one rebuild; the graph is not exported again


def test_a_damaged_cached_engine_is_rebuilt_once_and_runs(fake_trt, fake_cuda_device: dict, calls: list,
                                                         tmp_path: Path) -> None:
    _, make = _trt_runner_with_cached_graph(fake_trt, tmp_path)
    (engine,) = (tmp_path / "c" / "tensorrt").glob("*.engine")
    good = engine.read_bytes()
    engine.write_bytes(b"garbage")
    calls.clear()
    make().run(*_small_frames())
    assert calls.count(("build",)) == 1 and engine.read_bytes() == good


def test_an_engine_cache_on_a_full_disk_is_a_cache_error(fake_trt, onnx_file: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    from vsarvo.backends import CacheError

    fake_trt("11.4.0.106")

    def full(path, data):  # noqa: ANN001, ANN202 - write_bytes_atomic's signature
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(te, "write_bytes_atomic", full)
    with pytest.raises(CacheError, match=r"cannot write .*timing-trt.* in the vsarvo cache: the disk is full"):
        te.cached_engine(onnx_file, shapes=SHAPES, precision="fp32", folder=tmp_path)


# --- the real TensorRT ------------------------------------------------------------------------------

def _real_tensorrt() -> bool:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return False
    return torch.cuda.is_available()


@pytest.mark.trt
@pytest.mark.skipif(not _real_tensorrt(), reason="needs TensorRT >= 10.12 and an NVIDIA GPU")
@pytest.mark.parametrize("precision, tolerance", [("fp32", 1e-3), ("fp16", 2e-2)])
def test_real_tensorrt_stage_engine_matches_pytorch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    precision: str, tolerance: float) -> None:
    from vsarvo.backends import Backend, create_runner
    from vsarvo.model import ARVo, ARVoConfig
    from vsarvo.weights import save_model

    monkeypatch.setenv("VSARVO_CACHE", str(tmp_path / "cache"))
    model, weights = _head_reinitialised_model(tmp_path)
    runner = create_runner(Backend.TRT(device="cuda:0", precision=precision), weights=str(weights))
    frames = [torch.rand(1, 3, 67, 95, generator=torch.Generator().manual_seed(1)) for _ in range(3)]
    out = runner.run(*frames)
    _assert_stage_output(model, frames, out, tolerance)
    if precision == "fp16":
        # An engine that ran in fp32 although fp16 was asked would match the fp32 model to ~1e-6.
        with torch.no_grad():
            assert (out - model.stage(*frames).clamp(0, 1)).abs().max().item() > 1e-5


# --- TensorRT options from vsarvo.Deblur ---------------------------------------------------------------

@pytest.fixture
def fake_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch sees one CUDA device (the trt backend refuses to start without one), and making it current
    does nothing; the engine runner (which would need real CUDA memory) is replaced by its engine path."""
    import contextlib

    from vsarvo.export import tensorrt_runner

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "device", lambda device: contextlib.nullcontext())
    monkeypatch.setattr(tensorrt_runner, "EngineRunner", lambda engine, device: Path(engine))


@pytest.fixture
def filter_runners(monkeypatch: pytest.MonkeyPatch) -> list:
    """The runners vsarvo.Deblur creates, in order; released afterwards so none outlives the fakes."""
    import vsarvo.filter as vsfilter
    from vsarvo.backends import create_runner

    made: list = []

    def recording(backend, **model):  # noqa: ANN001, ANN202 - create_runner's signature
        made.append(create_runner(backend, **model))
        return made[-1]

    monkeypatch.setattr(vsfilter, "create_runner", recording)
    yield made
    vsfilter.release_runners()


@pytest.mark.parametrize("how", ["object", "flat"])
def test_trt_options_given_to_deblur_reach_the_engine_builder(fake_trt, fake_gpu, filter_runners: list, calls: list,
                                                              tmp_path: Path, how: str) -> None:
    import vapoursynth as vs

    import vsarvo
    from vsarvo.model import ARVo, ARVoConfig
    from vsarvo.weights import save_model

    trt = fake_trt("11.4.0.106")
    weights = save_model(ARVo(ARVoConfig.tiny()), tmp_path / "w.safetensors")
    options = {"precision": "fp32", "workspace": 1536, "optimization_level": 1, "cache_dir": str(tmp_path / "c")}
    clip = vs.core.std.BlankClip(format=vs.RGBS, width=96, height=64, length=1)
    if how == "object":
        vsarvo.Deblur(clip, weights=weights, backend=vsarvo.Backend.TRT(**options))
    else:
        vsarvo.Deblur(clip, weights=weights, backend="trt", **options)
    (runner,) = filter_runners
    engine = runner._runners.get(64, 96)  # what the first 96x64 frame builds
    assert ("memory_pool_limit", trt.MemoryPoolType.WORKSPACE, 1536 << 20) in calls
    assert ("optimization_level", 1) in calls
    assert engine.parent == tmp_path / "c" / "tensorrt"
    assert engine.name.endswith(f"-fp32-trt11.4.0.106-{GPU}-O1.engine")
    assert len(list((tmp_path / "c" / "onnx").glob("arvo-stage-*-96x64-fp32-*.onnx"))) == 1
