"""The VapourSynth filter: ``Deblur(clip)`` runs ARVo's progressive stages over a clip.

The graph it builds, for the paper's two stages::

    clip ─► RGBS ─► stage node 1 (R¹) ─► stage node 2 (out) ─► input format ─► input's frame properties

A stage node is ``std.ModifyFrame`` over three clips: the clip shifted back by one, the clip, and the
clip shifted forward by one, each shift repeating the edge frame. VapourSynth requests the three
frames through its parallel request model, so no callback ever waits on a ``get_frame``; and the
second stage node reads R¹ through VapourSynth's frame cache, so each R¹ⱼ is computed once although
three output frames use it: about 2N model calls for N frames, not 4N.

Nothing here writes to stdout: vspipe's stdout carries the video.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import vapoursynth as vs

from vsarvo.backends import Backend, BackendError, BackendOptions, StageRunner, create_runner, from_flat
from vsarvo.backends.tiling_limits import MIN_TILE
from vsarvo.filter_options import DEFAULT_SC_THRESHOLD, NONFINITE_MODES
from vsarvo.model.arvo import MIN_SIZE
from vsarvo.weights import WeightsError, default_weights_path

__all__ = ["Deblur", "release_runners", "DEFAULT_SC_THRESHOLD"]

NAME = "arvo.Deblur"

# Built-in cut detection stores mean|frame j - frame j+1| in this property of frame j
# (std.PlaneStats appends "Diff" to the prefix). It never reaches the output: the output's
# properties are the input's.
_SC_PREFIX = "ARVoNext"
_SC_DIFF = _SC_PREFIX + "Diff"

_FIELD_TOP = int(vs.FieldBased.FIELD_TOP)
_FIELD_BOTTOM = int(vs.FieldBased.FIELD_BOTTOM)
_MATRIX_UNSPECIFIED = int(vs.MatrixCoefficients.MATRIX_UNSPECIFIED)
_RANGE_FULL = int(vs.Range.RANGE_FULL)
_RANGE_LIMITED = int(vs.Range.RANGE_LIMITED)
_CHROMA_LEFT = int(vs.ChromaLocation.CHROMA_LEFT)


def _error(message: str) -> vs.Error:
    return vs.Error(f"{NAME}: {message}")


# ---------------------------------------------------------------------------------------------------
# Input checks


def _check_clip(clip: Any) -> vs.VideoNode:
    """Reject what the filter cannot take, with the fix in the message."""
    if not isinstance(clip, vs.VideoNode):
        raise _error(f"clip must be a vs.VideoNode, got {type(clip).__name__}")
    fmt = clip.format
    if fmt is None or fmt.color_family == vs.UNDEFINED:
        raise _error(
            "the clip has a variable format; convert every frame to one format first, "
            "e.g. core.resize.Bicubic(clip, format=vs.YUV420P8)"
        )
    if clip.width == 0 or clip.height == 0:
        raise _error(
            "the clip has a variable frame size; resize every frame to one size first, "
            "e.g. core.resize.Bicubic(clip, width=1920, height=1080)"
        )
    if fmt.color_family not in (vs.GRAY, vs.YUV, vs.RGB):
        raise _error(f"{fmt.name} is not supported; use a GRAY, YUV or RGB clip")
    integer_ok = fmt.sample_type == vs.INTEGER and 8 <= fmt.bits_per_sample <= 16
    float_ok = fmt.sample_type == vs.FLOAT and fmt.bits_per_sample in (16, 32)
    if not (integer_ok or float_ok):
        suggestion = {vs.GRAY: "GRAYS", vs.YUV: "YUV444PS", vs.RGB: "RGBS"}[fmt.color_family]
        raise _error(
            f"{fmt.name} is not supported: use 8-16 bit integer or 16/32 bit float samples, "
            f"e.g. core.resize.Point(clip, format=vs.{suggestion})"
        )
    if clip.width < MIN_SIZE or clip.height < MIN_SIZE:
        raise _error(
            f"frames must be at least {MIN_SIZE}x{MIN_SIZE}, got {clip.width}x{clip.height}; "
            "pad with core.std.AddBorders or upscale first"
        )
    return clip


def _flag(name: str, value: Any) -> bool:
    # VapourSynth hands booleans over as ints.
    if isinstance(value, int):
        return bool(value)
    raise _error(f"{name} must be a boolean, got {value!r}")


def _optional_int(name: str, value: Any, minimum: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _error(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def _text(name: str, value: Any) -> str | None:
    # VapourSynth "data" arguments may arrive as bytes.
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, (str, os.PathLike)):
        return os.fspath(value)
    raise _error(f"{name} must be a string, got {value!r}")


def _weights_path(weights: str | None) -> Path:
    """The weight file to load; a missing file raises vs.Error saying how to get one."""
    if weights is None:
        path = default_weights_path()
        if not path.is_file():
            raise _error(
                f"the shipped weights are missing ({path}); reinstall vsarvo (pip install .) "
                "or pass weights=<path to a .safetensors file written by 'arvo train'>"
            )
        return path.resolve()
    path = Path(weights).expanduser()
    if not path.is_file():
        raise _error(
            f"weights not found: {path}; pass weights=<path to a .safetensors file written by "
            "'arvo train'>, or leave weights unset for the shipped weights"
        )
    return path.resolve()


_BACKEND_TYPES = (Backend.Torch, Backend.ORT, Backend.TRT)


def _backend_options(backend: Any, flat: dict[str, Any]) -> BackendOptions:
    """The backend object Deblur runs: ``backend`` itself when it is a ``vsarvo.Backend.*`` object,
    else the name mapped with the flat backend options (``from_flat``; None counts as not given)."""
    given = {name: value for name, value in flat.items() if value is not None}
    if isinstance(backend, _BACKEND_TYPES):
        if given:
            raise _error(
                f"{', '.join(given)} given beside backend=Backend.{type(backend).__name__}(...); "
                f"set them in the Backend.{type(backend).__name__}(...) object instead"
            )
        return backend
    if not isinstance(backend, (str, bytes)):
        raise _error(
            f"backend must be a name ('auto', 'torch', 'ort', 'trt') or a vsarvo.Backend object, got {backend!r}"
        )
    for name in ("compile", "channels_last"):
        if name in given:
            given[name] = _flag(name, given[name])
    for name in ("device", "precision", "compile_mode", "cache_dir"):
        if name in given:
            given[name] = _text(name, given[name])
    try:
        return from_flat(_text("backend", backend), **given)
    except ValueError as exc:
        raise _error(str(exc)) from exc


# ---------------------------------------------------------------------------------------------------
# One runner per process


_runners: dict[tuple[Any, ...], StageRunner] = {}
_runners_lock = threading.Lock()


def _shared_runner(
    backend: BackendOptions, weights: str, tile: int | None, tile_overlap: int | None
) -> StageRunner:
    """The process-wide runner for these options, created on first use.

    Every Deblur call and every frame request with the same weights file (path and contents, via
    its size and modification time), backend object (its device, precision and other options) and
    tiling shares one model: one copy in memory, loaded once.
    """
    stat = os.stat(weights)
    key = (backend, weights, stat.st_size, stat.st_mtime_ns, tile, tile_overlap)
    with _runners_lock:
        runner = _runners.get(key)
        if runner is None:
            try:
                runner = create_runner(backend, weights=weights, tile=tile, tile_overlap=tile_overlap)
            except (BackendError, WeightsError, ValueError) as exc:
                raise _error(str(exc)) from exc
            except ImportError as exc:
                raise _error(
                    f"backend {backend.name!r} is not available here ({exc}); install its extra "
                    "(pip install 'vsarvo[trt]' for trt) or use backend='torch'"
                ) from exc
            except Exception as exc:  # a runtime's own error types (onnxruntime, TensorRT)
                raise _error(
                    f"the {backend.name} backend could not start ({type(exc).__name__}: {exc}); "
                    "try backend='torch' or device='cpu'"
                ) from exc
            _runners[key] = runner
        return runner


def release_runners() -> None:
    """Drop the cached runners, freeing their models; the next Deblur call loads its model again.

    Frames already requested from existing Deblur clips keep their runner alive until those clips
    are freed.
    """
    with _runners_lock:
        _runners.clear()


def _share_cpu_threads(runner: StageRunner, streams: int) -> None:
    """Give each concurrent CPU model call an equal share of the cores.

    At most min(streams, VapourSynth threads) model calls run at once; torch's intra-op pool is
    sized so that their product does not exceed the cores this process may use. torch's thread count
    is process-wide, so the last Deblur call made decides it.
    """
    if runner.name != "torch" or not str(runner.device).startswith("cpu"):
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    concurrent = max(1, min(streams, vs.core.num_threads))
    torch.set_num_threads(max(1, cores // concurrent))


# ---------------------------------------------------------------------------------------------------
# Format conversion: any input <-> RGBS, the model's input


def _default_matrix(clip: vs.VideoNode) -> int:
    """The matrix assumed where a frame does not say: BT.601 for SD sizes, BT.709 above (as players do)."""
    if clip.width > 1024 or clip.height > 576:
        return int(vs.MatrixCoefficients.MATRIX_BT709)
    return int(vs.MatrixCoefficients.MATRIX_ST170_M)


def _default_range(family: vs.ColorFamily) -> int:
    """Video convention where a frame does not say: RGB is full range, YUV and GRAY limited."""
    return _RANGE_FULL if family == vs.RGB else _RANGE_LIMITED


def _to_rgbs(clip: vs.VideoNode) -> vs.VideoNode:
    """Convert to RGBS with each frame's _Matrix/_Range/_ChromaLocation.

    The resize plugin reads those properties itself and lets them override the ``*_in`` arguments,
    so the arguments given here are exactly the defaults for frames that lack them. Transfer and
    primaries stay as they are: the model works on the gamma-encoded R'G'B' video is stored in.
    Chroma is upsampled with bicubic (Catmull-Rom) interpolation.
    """
    fmt = clip.format
    if fmt.id == vs.RGBS:
        return clip
    kwargs: dict[str, Any] = {"range_in": _default_range(fmt.color_family)}
    if fmt.color_family == vs.YUV:
        kwargs.update(matrix_in=_default_matrix(clip), chromaloc_in=_CHROMA_LEFT)
    return vs.core.resize.Bicubic(clip, format=vs.RGBS, **kwargs)


def _from_rgbs(rgb: vs.VideoNode, clip: vs.VideoNode) -> vs.VideoNode:
    """Convert the restored RGBS back to ``clip``'s format with each source frame's colour properties.

    The resize plugin takes the output matrix, range and chroma siting only as arguments, so the
    conversion is chosen per frame with std.FrameEval from the source frame's properties (a handful
    of distinct nodes, made once each). The defaults match those ``_to_rgbs`` used.
    """
    fmt = clip.format
    if fmt.id == vs.RGBS:
        return rgb
    family = fmt.color_family
    default_matrix = _default_matrix(clip)
    default_range = _default_range(family)
    nodes: dict[tuple[int, int, int], vs.VideoNode] = {}
    lock = threading.Lock()

    def conversion(n: int, f: vs.VideoFrame) -> vs.VideoNode:
        props = f.props
        matrix = int(props.get("_Matrix", _MATRIX_UNSPECIFIED))
        if matrix == _MATRIX_UNSPECIFIED:
            matrix = default_matrix
        rng = int(props.get("_Range", default_range))
        chromaloc = int(props.get("_ChromaLocation", _CHROMA_LEFT))
        key = (matrix, rng, chromaloc)
        with lock:
            node = nodes.get(key)
            if node is None:
                kwargs: dict[str, Any] = {"range": rng}
                if family != vs.RGB:
                    kwargs["matrix"] = matrix
                if family == vs.YUV:
                    kwargs["chromaloc"] = chromaloc
                node = nodes[key] = vs.core.resize.Bicubic(rgb, format=fmt.id, **kwargs)
        return node

    # FrameEval's first clip only sets the output's format and length: the source clip has both.
    return vs.core.std.FrameEval(clip, conversion, prop_src=clip)


# ---------------------------------------------------------------------------------------------------
# The stage node


def _shifted(clip: vs.VideoNode) -> tuple[vs.VideoNode, vs.VideoNode]:
    """(previous, next): frame j of each is frame j-1 / j+1 of ``clip``, the edge frame repeated."""
    if clip.num_frames == 1:
        return clip, clip
    return clip[0] + clip[:-1], clip[1:] + clip[-1]


def _cut_between(a: vs.VideoFrame, b: vs.VideoFrame, threshold: float) -> bool:
    """Whether consecutive frames a, b belong to different shots.

    Where either frame carries _SceneChangePrev/_SceneChangeNext, those properties decide (a missing
    one counts as 0); otherwise the built-in measure on frame a is compared with ``threshold``.
    """
    pa, pb = a.props, b.props
    keys = ("_SceneChangePrev", "_SceneChangeNext")
    if any(k in pa or k in pb for k in keys):
        return bool(pa.get("_SceneChangeNext", 0)) or bool(pb.get("_SceneChangePrev", 0))
    return float(pa.get(_SC_DIFF, 0.0)) > threshold


def _reject_interlaced(n: int, frame: vs.VideoFrame) -> None:
    field = int(frame.props.get("_FieldBased", 0))
    if field in (_FIELD_TOP, _FIELD_BOTTOM):
        order = "top" if field == _FIELD_TOP else "bottom"
        raise _error(
            f"frame {n} is interlaced (_FieldBased={field}, {order} field first); deinterlace first "
            "(e.g. with QTGMC or core.bwdif.Bwdif), or if it is progressive after all, mark it "
            "with core.std.SetFieldBased(clip, 0)"
        )


def _replacements(family: vs.ColorFamily, plane: int) -> tuple[float, float]:
    """(value for -inf, value for +inf) of one plane: the ends of its nominal range (chroma: +-0.5)."""
    return (-0.5, 0.5) if family == vs.YUV and plane > 0 else (0.0, 1.0)


def _finite_frame(n: int, f: vs.VideoFrame, mode: str) -> vs.VideoFrame:
    """Frame n of a float clip without NaN or +-inf: ``mode`` "error" refuses such a frame (every
    output frame whose window includes it fails, naming it), "replace" sets NaN to 0 and +-inf to the
    ends of the plane's range."""
    fmt = f.format
    bad = [p for p in range(fmt.num_planes) if not np.isfinite(np.asarray(f[p])).all()]
    if not bad:
        return f
    if mode == "error":
        counts = sum(int((~np.isfinite(np.asarray(f[p]))).sum()) for p in bad)
        raise _error(
            f"frame {n} has {counts} NaN or infinite sample(s) (plane(s) {', '.join(map(str, bad))}); "
            "the model would spread them over this frame and its neighbours' outputs. Fix the source, "
            "or pass nonfinite='replace' (NaN -> 0, +-inf -> the ends of the range)"
        )
    out = f.copy()
    for p in bad:
        low, high = _replacements(fmt.color_family, p)
        plane = np.asarray(out[p])
        np.copyto(plane, np.nan_to_num(plane, nan=0.0, posinf=high, neginf=low))
    return out


def _checked_input(clip: vs.VideoNode, nonfinite: str) -> vs.VideoNode:
    """The input with every frame checked before any stage reads it, as a neighbour or as the frame
    being restored: an interlaced frame is refused, and float frames go through ``_finite_frame``
    (integer clips cannot hold NaN or inf)."""
    floats = clip.format.sample_type == vs.FLOAT

    def check(n: int, f: vs.VideoFrame) -> vs.VideoFrame:
        _reject_interlaced(n, f)
        return _finite_frame(n, f, nonfinite) if floats else f

    return vs.core.std.ModifyFrame(clip, clip, check)


def _frame_tensor(frame: vs.VideoFrame) -> torch.Tensor:
    """An RGBS frame as a float32 tensor [1, 3, H, W] (one copy; the planes may be strided)."""
    return torch.from_numpy(np.stack([np.asarray(frame[p]) for p in range(3)])).unsqueeze_(0)


def _stage_node(
    clip: vs.VideoNode,
    run: Callable[[int, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    scene_change: bool,
    sc_threshold: float,
) -> vs.VideoNode:
    """One ARVo stage over an RGBS clip: frame j = stage(clip[c(j-1)], clip[j], clip[c(j+1)]).

    c clamps to the clip; with ``scene_change`` a neighbour across a cut is replaced by frame j.
    The output frame carries frame j's properties.
    """
    prev_clip, next_clip = _shifted(clip)

    def restore(n: int, f: list[vs.VideoFrame]) -> vs.VideoFrame:
        prev, ref, nxt = f
        if scene_change:
            if _cut_between(prev, ref, sc_threshold):
                prev = ref
            if _cut_between(ref, nxt, sc_threshold):
                nxt = ref
        restored = run(n, _frame_tensor(prev), _frame_tensor(ref), _frame_tensor(nxt))[0].numpy()
        out = ref.copy()
        for p in range(3):
            np.copyto(np.asarray(out[p]), restored[p])
        return out

    return vs.core.std.ModifyFrame(clip, clips=[prev_clip, clip, next_clip], selector=restore)


def _runner_call(
    runner: StageRunner, streams: int
) -> Callable[[int, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    """``runner.run`` limited to ``streams`` concurrent calls, its failures raised as vs.Error."""
    semaphore = threading.BoundedSemaphore(streams)

    def run(n: int, prev: torch.Tensor, ref: torch.Tensor, nxt: torch.Tensor) -> torch.Tensor:
        try:
            with semaphore:
                return runner.run(prev, ref, nxt)
        except (BackendError, RuntimeError, ValueError) as exc:
            raise _error(f"frame {n}: the {runner.name} backend failed: {exc}") from exc

    return run


# ---------------------------------------------------------------------------------------------------
# The filter


def Deblur(
    clip: vs.VideoNode,
    *,
    weights: str | os.PathLike[str] | None = None,
    backend: str | BackendOptions = "auto",
    device: str | None = None,
    precision: str | None = None,
    tile: int | None = None,
    tile_overlap: int | None = None,
    stages: int | None = None,
    scene_change: bool = True,
    sc_threshold: float = DEFAULT_SC_THRESHOLD,
    streams: int = 1,
    compile: bool | None = None,
    compile_mode: str | None = None,
    channels_last: bool | None = None,
    threads: int | None = None,
    workspace: int | None = None,
    optimization_level: int | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    nonfinite: str = "error",
) -> vs.VideoNode:
    """Deblur a clip with ARVo. Output frame i sees input frames i-2 … i+2 (two stages).

    Args:
        clip: any constant-format GRAY, YUV or RGB clip with 8-16 bit integer or 16/32 bit float
            samples, at least 64x64, progressive. It is converted to RGB with each frame's
            _Matrix/_Range/_ChromaLocation (unset: BT.601 up to 1024x576 and BT.709 above, limited
            range for YUV/GRAY and full for RGB, left chroma siting) and back.
        weights: a .safetensors weight file (its .json config beside it); None: the shipped weights.
        backend: a ``vsarvo.Backend.Torch(...)``, ``.ORT(...)`` or ``.TRT(...)`` object carrying its
            own options, or a name: "torch", "ort" (onnxruntime), "trt" (TensorRT) or "auto"
            (TensorRT where it is installed and a CUDA GPU is present, else torch: on the GPU in
            fp16 when there is one, else on the CPU in fp32). With a name, the backend's options
            are the flat arguments below; an option the backend does not have is an error.
        device: "cpu" or "cuda:N"; None: the first GPU if there is one, else the CPU.
        precision: "fp32", "fp16" or "bf16"; None: fp16 on a GPU (half-float clips too), fp32 on the CPU.
        tile: run the full-resolution convolutions in tiles of this edge (pixels, >= 4: the model's
            coarsest stride) to bound memory; the result is the same as without tiles.
        tile_overlap: the tiles' halo in pixels, at least the model's receptive radius (smaller halos
            would leave seams, and are refused); None: exactly that radius. Needs ``tile``.
        stages: progressive passes, 1 up to the model's (2 for the paper's ARVo); None: the model's.
            Fewer passes are faster and see a shorter window (2*stages+1 frames). More passes than the
            model was trained with are refused: the stage was never trained on its own outputs that
            many times.
        scene_change: replace neighbours across a cut by the frame itself, so no frame borrows detail
            from another shot. Cuts come from _SceneChangePrev/_SceneChangeNext where frames carry
            them, else from the built-in frame-difference measure.
        sc_threshold: the built-in measure's threshold: mean absolute difference of the first plane
            (luma for YUV) between consecutive frames, in [0, 1].
        streams: model calls at once (CPU: torch's threads are split between them).
        compile, compile_mode, channels_last (torch: torch.compile; its mode, one of "default",
            "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs", which needs compile=True;
            NHWC), threads (ort: threads per session), workspace, optimization_level (trt: MiB, 0-5),
            cache_dir (ort, trt: cached graphs and engines): backend options.
        nonfinite: float clips' NaN/+-inf samples: "error" fails every output frame whose window holds
            such a frame, naming it; "replace" sets NaN to 0 and +-inf to the range's ends (see _finite_frame).

    Returns:
        The deblurred clip: same format, size, length and frame rate, each frame with its input
        frame's properties.

    Raises:
        vs.Error: bad clip, argument, weights, device, backend or cache folder, naming the fix; errors
        of a frame (interlaced, non-finite, a backend failure) are raised for that frame.
    """
    _check_clip(clip)
    nonfinite = _nonfinite_mode(nonfinite)
    options = _backend_options(backend, {
        "device": device, "precision": precision, "compile": compile, "compile_mode": compile_mode,
        "channels_last": channels_last, "threads": threads, "workspace": workspace,
        "optimization_level": optimization_level, "cache_dir": cache_dir})
    tile, tile_overlap, streams, scene_change = _checked_options(tile, tile_overlap, streams, scene_change,
                                                                 sc_threshold)
    runner = _shared_runner(options, str(_weights_path(_text("weights", weights))), tile, tile_overlap)
    stages = _checked_stages(stages, runner.stages)
    _share_cpu_threads(runner, streams)
    return _deblur_graph(clip, _runner_call(runner, streams), stages=stages, scene_change=scene_change,
                         sc_threshold=float(sc_threshold), nonfinite=nonfinite)


def _checked_stages(stages: Any, model_stages: int) -> int:
    """Deblur's ``stages``: None is the model's own count; more than that is refused."""
    if stages is None:
        return model_stages
    if isinstance(stages, bool) or not isinstance(stages, int) or not 1 <= stages <= model_stages:
        raise _error(f"stages must be an integer in 1..{model_stages} (this model's stages), got {stages!r}")
    return stages


def _nonfinite_mode(value: Any) -> str:
    mode = _text("nonfinite", value)
    if mode not in NONFINITE_MODES:
        raise _error(f"nonfinite must be one of {', '.join(map(repr, NONFINITE_MODES))}, got {value!r}")
    return mode


def _checked_options(
    tile: Any, tile_overlap: Any, streams: Any, scene_change: Any, sc_threshold: Any
) -> tuple[int | None, int | None, int, bool]:
    """Deblur's tiling, streams and scene-cut arguments checked: (tile, tile_overlap, streams, scene_change)."""
    tile = _optional_int("tile", tile, 1)
    if tile is not None and tile < MIN_TILE:
        raise _error(f"tile must be at least {MIN_TILE} pixels (the model's coarsest stride), got {tile}; "
                     "use a larger tile (e.g. tile=512) or leave tile unset")
    tile_overlap = _optional_int("tile_overlap", tile_overlap, 0)
    if tile_overlap is not None and tile is None:
        raise _error("tile_overlap needs tile; set tile=<edge in pixels> too, or leave both unset")
    streams = _optional_int("streams", streams, 1)
    if streams is None:
        raise _error("streams must be an integer >= 1, got None")
    scene_change = _flag("scene_change", scene_change)
    if isinstance(sc_threshold, bool) or not isinstance(sc_threshold, (int, float)) or not 0 <= sc_threshold <= 1:
        raise _error(f"sc_threshold must be a number in [0, 1], got {sc_threshold!r}")
    return tile, tile_overlap, streams, scene_change


def _deblur_graph(
    clip: vs.VideoNode,
    run: Callable[[int, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    stages: int,
    scene_change: bool,
    sc_threshold: float,
    nonfinite: str,
) -> vs.VideoNode:
    """The filter graph: input checks (interlaced, non-finite), cut measure, to RGBS, ``stages`` stage nodes, back to the
    input's format."""
    x = _checked_input(clip, nonfinite)
    if scene_change:
        # The measure for cut j|j+1 goes on frame j; the stage nodes read it from there.
        x = vs.core.std.PlaneStats(x, _shifted(x)[1], plane=0, prop=_SC_PREFIX)
    x = _to_rgbs(x)
    for s in range(stages):
        x = _stage_node(x, run, scene_change=scene_change, sc_threshold=sc_threshold)
    # The input's properties, unchanged: the output has the input's format, so they all still hold.
    return vs.core.std.CopyFrameProps(_from_rgbs(x, clip), clip)
