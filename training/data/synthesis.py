"""Write blur-synthesis training data to disk.

Usage::

    python -m vsarvo.training.data.synthesis hfr VIDEO_OR_FOLDER [...] --out DIR [--size 960x540]
        [--window 41] [--step 38 44] [--seed 0]
    python -m vsarvo.training.data.synthesis procedural --out DIR [--videos 8] [--frames 30]
        [--size 256x256] [--split train] [--seed 0] [--speed 1.5 7] [--exposure 0.5 1]
        [--noise 0 0.01] [--layers 1 3] [--sub-frames 16]

``hfr`` applies the paper's HFR-DVD recipe (:mod:`vsarvo.training.data.hfr`) to
high-frame-rate videos (decoded with ffmpeg) or folders of frames;
``procedural`` renders random moving scenes (:mod:`vsarvo.training.data.procedural`)
from the train or the held-out test sources. Both write, per video::

    <out>/<video>/blur/00000.png     blurry frames
    <out>/<video>/sharp/00000.png    ground truth

and ``procedural`` also::

    <out>/<video>/flow/00000.npy         float32 [2, H, W]: flow from sharp frame 00000 to 00001
    <out>/<video>/flow_valid/00000.png   255 where that flow is exact, 0 at occlusions

(flow convention in :mod:`vsarvo.training.data.procedural`). For flow pairs on disk
use ``procedural --frames 2 --exposure 0 0 --noise 0 0``. A video is written
under a temporary name and renamed when complete; videos already present are
skipped, so an interrupted run resumes. Progress goes to stderr.

For training in memory, :func:`make_clip`, :func:`make_flow_pair` and
:func:`hfr_pairs` are re-exported here from the modules that define them.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Iterator, Sequence
from typing import Any
from pathlib import Path

import numpy as np

from .frames import write_npy, write_png
from .hfr import hfr_pairs, read_folder_frames, read_video_frames
from .procedural import ClipSettings, make_clip, make_flow_pair, make_scene, render_blurry, render_sharp, scene_flow
from .sources import Split

__all__ = ["write_hfr_video", "write_procedural_video", "make_clip", "make_flow_pair", "hfr_pairs", "main"]


def _frame_name(index: int) -> str:
    return f"{index:05d}"


def _to_uint8(image) -> np.ndarray:
    """A [3, H, W] float tensor in [0, 1] on 8-bit levels → uint8 [H, W, 3]."""
    return (image.permute(1, 2, 0).numpy() * 255.0 + 0.5).astype(np.uint8)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class _VideoFolder:
    """Context that builds ``<out>/<name>`` under a temporary name and renames it on success."""

    def __init__(self, out: Path, name: str) -> None:
        self.final = Path(out) / name
        self.partial = Path(out) / f".{name}.partial"

    def __enter__(self) -> Path:
        shutil.rmtree(self.partial, ignore_errors=True)
        self.partial.mkdir(parents=True)
        return self.partial

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is None:
            os.replace(self.partial, self.final)


def write_hfr_video(
    source: Path, video_dir: Path, *, size: tuple[int, int] = (960, 540), window: int = 41,
    step: tuple[int, int] = (38, 44), seed: int = 0,
) -> int:
    """Write the HFR-DVD pairs of one high-frame-rate video or frame folder into ``video_dir``.

    ``size`` is (width, height). Returns the number of pairs written.
    """
    source = Path(source)
    frames: Iterator[np.ndarray] = read_folder_frames(source, size) if source.is_dir() else read_video_frames(source, size)
    count = 0
    for blurry, sharp in hfr_pairs(frames, window=window, step=step, seed=seed):
        write_png(video_dir / "blur" / f"{_frame_name(count)}.png", blurry)
        write_png(video_dir / "sharp" / f"{_frame_name(count)}.png", sharp)
        count += 1
    return count


def write_procedural_video(
    video_dir: Path, rng: np.random.Generator, *, n_frames: int, size: tuple[int, int],
    settings: ClipSettings | None = None, split: Split = "train",
) -> None:
    """Render one procedural video of ``n_frames`` frames, ``size = (height, width)``, into ``video_dir``.

    Frames are rendered and written one at a time, so long videos need little memory.
    """
    scene = make_scene(rng, n_frames, size, settings, split=split)
    for t in range(n_frames):
        name = _frame_name(t)
        write_png(video_dir / "blur" / f"{name}.png", _to_uint8(render_blurry(scene, t, rng)))
        write_png(video_dir / "sharp" / f"{name}.png", _to_uint8(render_sharp(scene, t)))
        if t + 1 < n_frames:
            flow, valid = scene_flow(scene, t)
            write_npy(video_dir / "flow" / f"{name}.npy", flow.numpy().astype(np.float32))
            write_png(video_dir / "flow_valid" / f"{name}.png", valid.numpy().astype(np.uint8) * 255)


def _size(text: str) -> tuple[int, int]:
    """'WIDTHxHEIGHT' → (width, height)."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 960x540, got {text!r}") from None
    if width < 1 or height < 1:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return width, height


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m vsarvo.training.data.synthesis", description=__doc__.split("\n\n")[0])
    _add_commands(parser)
    return parser


def add_parser(subparsers: Any) -> None:
    """Register `arvo synth {hfr,procedural}` (see vsarvo/cli.py)."""
    parser = subparsers.add_parser("synth", help="make blurry/sharp training data", description=__doc__.split("\n\n")[0])
    _add_commands(parser)
    parser.set_defaults(func=lambda args: _run(args))


def _add_commands(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="synth_command", required=True)

    hfr = commands.add_parser("hfr", help="HFR-DVD recipe from high-frame-rate videos or frame folders")
    hfr.add_argument("sources", nargs="+", type=Path, help="video files (read with ffmpeg) or folders of frames")
    hfr.add_argument("--out", type=Path, required=True, help="output root: <out>/<video>/{blur,sharp}/")
    hfr.add_argument("--size", type=_size, default=(960, 540), help="frame size WIDTHxHEIGHT (default 960x540)")
    hfr.add_argument("--window", type=int, default=41, help="frames averaged per blurry frame (odd, default 41)")
    hfr.add_argument("--step", type=int, nargs=2, default=(38, 44), metavar=("MIN", "MAX"),
                     help="source frames between kept frames, drawn per frame (default 38 44)")
    hfr.add_argument("--seed", type=int, default=0, help="video i uses seed + i for its steps")

    procedural = commands.add_parser("procedural", help="random moving scenes with ground-truth flow")
    procedural.add_argument("--out", type=Path, required=True, help="output root: <out>/<video>/{blur,sharp,flow,flow_valid}/")
    procedural.add_argument("--videos", type=int, default=8)
    procedural.add_argument("--frames", type=int, default=30, help="frames per video")
    procedural.add_argument("--size", type=_size, default=(256, 256), help="frame size WIDTHxHEIGHT (default 256x256)")
    procedural.add_argument("--split", choices=("train", "test"), default="train", help="which source images to draw from")
    procedural.add_argument("--seed", type=int, default=0)
    defaults = ClipSettings()
    for name, unit in (("speed", "camera pan, px/frame"), ("layer_speed", "px/frame"), ("exposure", "fraction of the frame interval"),
                       ("noise", "sigma on [0, 1]")):
        procedural.add_argument(f"--{name.replace('_', '-')}", type=float, nargs=2, default=getattr(defaults, name),
                                metavar=("LOW", "HIGH"), help=f"{unit} (default {getattr(defaults, name)})")
    procedural.add_argument("--layers", type=int, nargs=2, default=defaults.layers, metavar=("LOW", "HIGH"))
    procedural.add_argument("--sub-frames", type=int, default=defaults.sub_frames, help="renders averaged per blurry frame")


def _run_hfr(args: argparse.Namespace) -> None:
    names = [source.stem if source.is_file() else source.name for source in args.sources]
    if len(set(names)) != len(names):
        raise SystemExit(f"error: sources must have distinct names, got {names}")
    for index, (source, name) in enumerate(zip(args.sources, names)):
        if not source.exists():
            raise SystemExit(f"error: {source} does not exist")
        folder = _VideoFolder(args.out, name)
        if folder.final.exists():
            _log(f"[hfr] {index + 1}/{len(names)} {name}: already written, skipped")
            continue
        with folder as video_dir:
            count = write_hfr_video(source, video_dir, size=args.size, window=args.window, step=tuple(args.step), seed=args.seed + index)
        _log(f"[hfr] {index + 1}/{len(names)} {name}: {count} blurry/sharp pairs")


def _run_procedural(args: argparse.Namespace) -> None:
    settings = ClipSettings(
        speed=tuple(args.speed), layer_speed=tuple(args.layer_speed), exposure=tuple(args.exposure),
        noise=tuple(args.noise), layers=tuple(args.layers), sub_frames=args.sub_frames,
    )
    width, height = args.size
    for index in range(args.videos):
        name = f"{args.split}_{args.seed}_{index:04d}"
        folder = _VideoFolder(args.out, name)
        if folder.final.exists():
            _log(f"[procedural] {index + 1}/{args.videos} {name}: already written, skipped")
            continue
        with folder as video_dir:
            # One generator per video, keyed by (seed, index): any video can be
            # regenerated alone, and resuming gives the same videos.
            rng = np.random.default_rng([args.seed, index])
            write_procedural_video(video_dir, rng, n_frames=args.frames, size=(height, width), settings=settings, split=args.split)
        _log(f"[procedural] {index + 1}/{args.videos} {name}: {args.frames} frames")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    return _run(_parser().parse_args(argv))


def _run(args: argparse.Namespace) -> int:
    try:
        if args.synth_command == "hfr":
            _run_hfr(args)
        else:
            _run_procedural(args)
    except (ValueError, RuntimeError) as error:
        # Bad settings and undecodable inputs: a message, not a traceback.
        raise SystemExit(f"error: {error}") from None
    return 0


if __name__ == "__main__":
    sys.exit(main())
