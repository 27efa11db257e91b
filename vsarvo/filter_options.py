"""The filter's options in one list: every keyword of ``vsarvo.Deblur`` / ``core.arvo.Deblur`` with its
type, default, help and whether it changes the output pixels.

Command lines build their flags from it (:func:`add_arguments`, :func:`deblur_kwargs`), and the batch
tool its settings hash (:data:`PIXEL_OPTIONS`, :func:`pixel_settings`), so a new filter option needs
one entry here. The tests check that this list and ``Deblur``'s signature name the same keywords with
the same defaults. Torch-free and VapourSynth-free, so ``arvo --help`` starts at once.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from vsarvo.backends.options import (
    BACKENDS, COMPILE_MODES, DEFAULT_OPTIMIZATION_LEVEL, DEFAULT_WORKSPACE_MIB, PRECISIONS,
)

__all__ = [
    "FilterOption", "OPTIONS", "PIXEL_OPTIONS", "DEFAULT_SC_THRESHOLD", "NONFINITE_MODES", "add_arguments",
    "deblur_kwargs", "pixel_settings",
]

# Mean absolute difference of the first plane (luma for YUV), normalised to [0, 1], above which two
# consecutive frames count as a cut. The same measure and value as misc.SCDetect's default: within a
# shot consecutive frames differ by a few percent, across a cut by tens of percent. A false cut only
# costs the temporal help for that frame; a missed one lets flow try to align two shots.
DEFAULT_SC_THRESHOLD = 0.1

# What a float clip's NaN or +-inf samples do: refuse the frame (the default), or replace them.
NONFINITE_MODES = ("error", "replace")


@dataclass(frozen=True)
class FilterOption:
    """One keyword of Deblur. ``type`` is str, int, float, bool or Path (a file, passed on as an absolute
    path string); ``default`` is Deblur's (None: the filter decides); ``changes_pixels``: whether another
    value can give other output pixels (not only another speed or memory use); ``hashed_at_default``:
    whether the option is in a settings hash at its default value (False for options added after jobs
    were first hashed, so that their default keeps those jobs' hash)."""

    name: str
    type: type
    default: Any
    help: str
    changes_pixels: bool
    choices: tuple[str, ...] | None = None
    hashed_at_default: bool = True

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


OPTIONS: tuple[FilterOption, ...] = (
    FilterOption("weights", Path, None, "a .safetensors weight file, its .json config beside it "
                 "(default: the shipped weights)", True),
    FilterOption("backend", str, "auto", "auto: TensorRT where it is installed and a GPU is present, else "
                 "torch (GPU fp16, else CPU fp32); torch, ort (onnxruntime) or trt (TensorRT)", True, BACKENDS),
    FilterOption("device", str, None, "cpu or cuda:N (default: the first GPU, else the CPU)", False),
    FilterOption("precision", str, None, "default: fp16 on a GPU, fp32 on the CPU", True, PRECISIONS),
    FilterOption("tile", int, None, "tile edge in pixels for the full-resolution convolutions (bounds "
                 "memory, same result)", False),
    FilterOption("tile_overlap", int, None, "the tiles' halo in pixels (default: the receptive field, exact)",
                 False),
    FilterOption("stages", int, None, "progressive stages, 1 up to the model's (default: the model's)", True),
    FilterOption("scene_change", bool, True, "a scene cut stops the temporal window (default: on)", True),
    FilterOption("sc_threshold", float, DEFAULT_SC_THRESHOLD, "built-in scene-cut threshold: mean absolute "
                 f"luma difference in [0, 1] (default: {DEFAULT_SC_THRESHOLD})", True),
    FilterOption("streams", int, 1, "model calls at once (default: 1)", False),
    FilterOption("compile", bool, None, "torch backend: torch.compile the stage (default: off)", False),
    FilterOption("compile_mode", str, None, "torch backend: torch.compile's mode, with --compile (default: "
                 "torch's default mode)", False, COMPILE_MODES),
    FilterOption("channels_last", bool, None, "torch backend: NHWC memory layout (default: on)", False),
    FilterOption("threads", int, None, "ort backend: onnxruntime threads per session (default: one per core)",
                 False),
    FilterOption("workspace", int, None, "trt backend: engine builder workspace limit in MiB "
                 f"(default: {DEFAULT_WORKSPACE_MIB})", False),
    FilterOption("optimization_level", int, None, "trt backend: engine builder optimisation level 0-5 "
                 f"(default: {DEFAULT_OPTIMIZATION_LEVEL})", False),
    FilterOption("cache_dir", str, None, "ort/trt backends: folder for the cached ONNX graphs and engines "
                 "(default: $VSARVO_CACHE, else ~/.cache/vsarvo)", False),
    FilterOption("nonfinite", str, "error", "float clips: a frame with NaN or +-inf samples is an error "
                 "(default), or 'replace' sets NaN to 0 and +-inf to the ends of the range", True, NONFINITE_MODES,
                 hashed_at_default=False),
)

PIXEL_OPTIONS: tuple[str, ...] = tuple(o.name for o in OPTIONS if o.changes_pixels)


def add_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """Add one flag per option (``--tile-overlap``; booleans as ``--compile`` / ``--no-compile``).

    Every flag defaults to None, meaning "not given": the filter's own default applies.
    """
    for option in OPTIONS:
        kwargs: dict[str, Any] = {"dest": option.name, "default": None, "help": option.help}
        if option.type is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = str if option.type is Path else option.type
            kwargs["choices"] = option.choices
        parser.add_argument(option.flag, **kwargs)


def deblur_kwargs(args: argparse.Namespace | Mapping[str, Any]) -> dict[str, Any]:
    """The Deblur keyword arguments the user gave (parsed flags or a mapping): None values are left out,
    file paths made absolute (the filter may run in another process and folder)."""
    values = vars(args) if isinstance(args, argparse.Namespace) else dict(args)
    kwargs = {}
    for option in OPTIONS:
        value = values.get(option.name)
        if value is None:
            continue
        kwargs[option.name] = str(Path(value).expanduser().resolve()) if option.type is Path else value
    return kwargs


def pixel_settings(kwargs: Mapping[str, Any], *, weights_digest: str) -> dict[str, Any]:
    """What decides the output pixels, for a job's settings hash: every pixel-changing option with its
    default filled in (so giving a default explicitly does not change the hash), and the weights by
    content (``weights_digest``, e.g. their SHA-256) rather than by path."""
    settings: dict[str, Any] = {"weights_sha256": weights_digest}
    for option in OPTIONS:
        if option.changes_pixels and option.name != "weights":
            value = kwargs.get(option.name)
            value = option.default if value is None else value
            if value != option.default or option.hashed_at_default:
                settings[option.name] = value
    return settings
