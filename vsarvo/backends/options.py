"""What a backend is asked for: one frozen dataclass per backend (``Backend.Torch``, ``Backend.ORT``,
``Backend.TRT``), the one list of precisions, and the one mapping from ``core.arvo.Deblur``'s flat
arguments (``backend="trt"``, ``workspace=...``) and from ``"auto"`` onto those dataclasses.

Importing this module imports neither torch nor VapourSynth, so command lines can use it; only
``"auto"`` looks at the machine (is TensorRT installed, is there a CUDA GPU), when it is resolved.
"""
from __future__ import annotations

import dataclasses
import importlib.util
from dataclasses import dataclass
from typing import Any, ClassVar, Union

__all__ = [
    "PRECISIONS", "BACKENDS", "COMPILE_MODES", "Backend", "BackendOptions", "from_flat", "choose_auto",
    "FLAT_OPTIONS", "DEFAULT_WORKSPACE_MIB", "DEFAULT_OPTIMIZATION_LEVEL",
]

# Every precision a backend or an exported graph can run in, best-known first.
PRECISIONS = ("fp32", "fp16", "bf16")

# The names core.arvo.Deblur's ``backend`` argument takes.
BACKENDS = ("auto", "torch", "ort", "trt")

# torch.compile's modes (its ``mode`` argument), for Backend.Torch's ``compile_mode``. Kept here, not read
# from torch, so that command lines can offer them without importing torch.
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")

DEFAULT_WORKSPACE_MIB = 4096  # TensorRT builder scratch memory per layer when ``workspace`` is None
DEFAULT_OPTIMIZATION_LEVEL = 3  # TensorRT's own default; 0 builds fastest, 5 searches longest


def _check_device(device: Any) -> None:
    if device is not None and not isinstance(device, str):
        raise ValueError(f"device must be a string such as 'cpu' or 'cuda:0', got {device!r}")


def _check_precision(precision: Any) -> None:
    if precision is not None and precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")


def _check_flag(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")


def _check_int(name: str, value: Any, low: int, high: int | None = None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        bounds = f"in {low}..{high}" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be an integer {bounds}, got {value!r}")


def _check_folder(name: str, value: Any) -> None:
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{name} must be a folder path (a string), got {value!r}")


class Backend:
    """The backends, each a frozen dataclass of its own options (as vs-mlrt's ``Backend.*``).

    ``device``: "cpu", "cuda" or "cuda:N"; None: the first GPU if the backend can use one, else the
    CPU. ``precision``: one of ``PRECISIONS``; None: fp16 on a GPU (so a half-float clip, RGBH or
    YUV...PH, runs in fp16 there, as HolyWu's plugins do, and so does every other clip), fp32 on the
    CPU. A bad value raises ValueError naming it.
    """

    @dataclass(frozen=True, kw_only=True)
    class Torch:
        """PyTorch, eager or ``torch.compile``, on the CPU or a CUDA GPU.

        ``compile``: torch.compile the stage (slow first frame of each size, faster later ones).
        ``compile_mode``: torch.compile's ``mode``, one of ``COMPILE_MODES``; None: torch's default.
        It needs ``compile=True``: a mode without it is refused rather than turning compilation on.
        ``channels_last``: NHWC weights and activations (faster convolutions on CPU oneDNN and
        CUDA tensor cores, same results to rounding).
        """

        name: ClassVar[str] = "torch"

        device: str | None = None
        precision: str | None = None
        compile: bool = False
        compile_mode: str | None = None
        channels_last: bool = True

        def __post_init__(self) -> None:
            _check_device(self.device)
            _check_precision(self.precision)
            _check_flag("compile", self.compile)
            _check_flag("channels_last", self.channels_last)
            if self.compile_mode is not None:
                if self.compile_mode not in COMPILE_MODES:
                    raise ValueError(f"compile_mode must be one of {', '.join(COMPILE_MODES)}, "
                                     f"got {self.compile_mode!r}")
                if not self.compile:
                    raise ValueError(f"compile_mode={self.compile_mode!r} needs compile=True: pass compile=True "
                                     "to torch.compile the stage in that mode")

    @dataclass(frozen=True, kw_only=True)
    class ORT:
        """onnxruntime on the exported stage graph (one per frame size), CPU or CUDA provider.

        ``threads``: onnxruntime's intra-op threads per session; None: onnxruntime's default (one
        per core). ``cache_dir``: the artefact cache folder (graphs go to its ``onnx/``); None:
        $VSARVO_CACHE, else ~/.cache/vsarvo; an unwritable folder falls back to a temporary one.
        """

        name: ClassVar[str] = "ort"

        device: str | None = None
        precision: str | None = None
        threads: int | None = None
        cache_dir: str | None = None

        def __post_init__(self) -> None:
            _check_device(self.device)
            _check_precision(self.precision)
            _check_int("threads", self.threads, 1)
            _check_folder("cache_dir", self.cache_dir)

    @dataclass(frozen=True, kw_only=True)
    class TRT:
        """TensorRT: a strongly typed engine per frame size, built once and cached, on an NVIDIA GPU.

        ``workspace``: the builder's scratch-memory limit in MiB; None: 4096 MiB. ``optimization_level``:
        the builder's optimisation level, 0 (fastest build) .. 5 (longest search). ``cache_dir``: the
        artefact cache folder (graphs in its ``onnx/``, engines and timing caches in ``tensorrt/``);
        None: $VSARVO_CACHE, else ~/.cache/vsarvo; an unwritable folder falls back to a temporary one.
        """

        name: ClassVar[str] = "trt"

        device: str | None = None
        precision: str | None = None
        workspace: int | None = None
        optimization_level: int = DEFAULT_OPTIMIZATION_LEVEL
        cache_dir: str | None = None

        def __post_init__(self) -> None:
            _check_device(self.device)
            _check_precision(self.precision)
            _check_int("workspace", self.workspace, 1)
            _check_int("optimization_level", self.optimization_level, 0, 5)
            _check_folder("cache_dir", self.cache_dir)

        @property
        def workspace_bytes(self) -> int:
            return (DEFAULT_WORKSPACE_MIB if self.workspace is None else self.workspace) << 20


BackendOptions = Union[Backend.Torch, Backend.ORT, Backend.TRT]

_BY_NAME: dict[str, type] = {cls.name: cls for cls in (Backend.Torch, Backend.ORT, Backend.TRT)}

def _owners() -> dict[str, tuple[str, ...]]:
    """Every flat argument of core.arvo.Deblur that is a backend option -> the backends that have it."""
    owners: dict[str, tuple[str, ...]] = {}
    for name, cls in _BY_NAME.items():
        for field in dataclasses.fields(cls):
            owners[field.name] = owners.get(field.name, ()) + (name,)
    return owners


FLAT_OPTIONS = _owners()


def _tensorrt_installed() -> bool:
    # find_spec instead of an import: importing TensorRT takes seconds and initialises CUDA.
    return importlib.util.find_spec("tensorrt") is not None


def _cuda_present() -> bool:
    import torch  # only "auto" needs to look at the machine

    return torch.cuda.is_available()


def choose_auto(device: str | None = None) -> str:
    """The backend "auto" means here: "trt" where TensorRT is installed and a CUDA GPU is present,
    else "torch" (which runs on the GPU in fp16 when there is one, else on the CPU in fp32).

    ``device="cpu"`` always gives "torch": TensorRT runs on GPUs only.
    """
    wants_gpu = device is None or device.startswith("cuda")
    if wants_gpu and _tensorrt_installed() and _cuda_present():
        return "trt"
    return "torch"


def from_flat(name: str, **options: Any) -> BackendOptions:
    """``core.arvo.Deblur``'s flat arguments as a backend object: ``from_flat("trt", workspace=2048)``.

    ``name`` is one of ``BACKENDS``; "auto" is resolved with :func:`choose_auto`. Options that are
    None count as not given. An option the chosen backend does not have raises ValueError naming the
    backends that do.
    """
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {name!r}")
    given = {key: value for key, value in options.items() if value is not None}
    unknown = sorted(set(given) - set(FLAT_OPTIONS))
    if unknown:
        raise ValueError(f"{', '.join(unknown)} is not a backend option; the options are {', '.join(FLAT_OPTIONS)}")
    chosen = choose_auto(given.get("device")) if name == "auto" else name
    cls = _BY_NAME[chosen]
    for key in given:
        if chosen not in FLAT_OPTIONS[key]:
            owners = " or ".join(f"backend='{b}'" for b in FLAT_OPTIONS[key])
            picked = f" (backend='auto' chose {chosen!r} on this machine)" if name == "auto" else ""
            raise ValueError(f"{key} is not an option of the {chosen} backend{picked}; it needs {owners}")
    return cls(**given)
