"""`arvo eval`: PSNR / SSIM / flicker of restored videos against ground truth, for the model and the blurry input.

Metrics follow the DVD papers: RGB uint8, PSNR = 20 log10(255 / RMSE), Gaussian SSIM (11, 1.5) averaged
over channels, optional border crop (4 px in the common protocol). Every frame of a video is restored the
way the VapourSynth filter does it (``vsarvo.model.restore_clip``: per-stage clamped edges).

``--set realistic`` scores the realistic held-out set of :mod:`vsarvo.training.realistic_eval` (clips
of held-out real photos with hand-held motion, noise and 4:2:0 compression), ``--set both`` (the default
when the photos are installed) it and the procedural set.

Without ``--data`` the procedural test set is clips rendered from the *held-out* source images (the
"test" split the training clips never draw from) with a seed of their own, plus a sharp static clip
that the model should leave nearly unchanged.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from vsarvo.atomic import atomic_path, write_text_atomic
from vsarvo.model import ARVo, restore_clip
from vsarvo.weights import load_model

from .metrics import flicker, psnr, ssim
from .data.procedural import ClipSettings, make_clip

__all__ = ["TEST_BLUR", "Video", "procedural_test_set", "static_clip", "evaluate", "add_parser", "main"]

# Held-out test blur: the blurry input scores ~24-30 dB mean PSNR against the sharp frames (measured by
# this command's "input" row).
TEST_BLUR = ClipSettings(speed=(2.0, 7.0), layer_speed=(0.0, 8.0), exposure=(0.5, 1.0), sub_frames=24)


@dataclass
class Video:
    """One test video: blurry and sharp frames [T, 3, H, W] float in [0, 1]."""

    name: str
    blur: torch.Tensor
    sharp: torch.Tensor


def procedural_test_set(*, clips: int = 12, frames: int = 10, size: int = 192, seed: int = 424242) -> list[Video]:
    """Clips from the held-out source images, a seed the training never uses, TEST_BLUR strength."""
    rng = np.random.default_rng(seed)
    videos = []
    for i in range(clips):
        blur, sharp, _ = make_clip(rng, frames, (size, size), TEST_BLUR, split="test")
        videos.append(Video(f"procedural_{i:03d}", blur, sharp))
        print(f"\rrendering test clips {i + 1}/{clips}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return videos


def static_clip(*, frames: int = 7, size: int = 192, seed: int = 4242) -> Video:
    """A sharp, static clip (the same held-out frame repeated): restoring it should change it little."""
    rng = np.random.default_rng(seed)
    still = ClipSettings(speed=(0.0, 0.0), layer_speed=(0.0, 0.0), rotation=0.0, zoom=0.0, layer_rotation=0.0,
                         exposure=(0.0, 0.0), noise=(0.0, 0.0), sub_frames=1)
    _, sharp, _ = make_clip(rng, 1, (size, size), still, split="test")
    clip = sharp.expand(frames, -1, -1, -1).contiguous()
    return Video("static_sharp", clip, clip)


def folder_test_set(root: str | os.PathLike[str], split: str = "test") -> list[Video]:
    """Videos of a dataset on disk (any layout ``vsarvo.training.data.datasets`` recognises)."""
    from .data.datasets import find_videos
    from .data.frames import read_rgb

    def load(paths: Sequence[Path]) -> torch.Tensor:
        return torch.stack([torch.from_numpy(read_rgb(p)).permute(2, 0, 1).float() / 255 for p in paths])

    return [Video(v.name, load(v.blur), load(v.sharp)) for v in find_videos(Path(root), split)]


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """[3, H, W] float in [0, 1] -> [H, W, 3] uint8."""
    return (x.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()


def score_video(restored: torch.Tensor, sharp: torch.Tensor, crop: int) -> dict[str, Any]:
    out = [to_uint8(f) for f in restored]
    gt = [to_uint8(f) for f in sharp]
    per_frame_psnr = [psnr(a, b, crop) for a, b in zip(out, gt)]
    per_frame_ssim = [ssim(a, b, crop) for a, b in zip(out, gt)]
    return {
        "psnr": per_frame_psnr,
        "ssim": per_frame_ssim,
        "mean_psnr": float(np.mean(per_frame_psnr)),
        "mean_ssim": float(np.mean(per_frame_ssim)),
        "flicker": float(flicker(out, gt, crop)) if len(out) > 1 else 0.0,
    }


@torch.no_grad()
def evaluate(model: ARVo, videos: Iterable[Video], *, crop: int = 4, stages: int | None = None,
             single_frame: bool = False) -> dict[str, Any]:
    """Scores per video and over the set for the model ("model") and the blurry input ("input").

    ``single_frame``: every frame is treated as a scene start, so a stage sees only the reference
    (the single-frame baseline of the ablation).
    """
    model.eval()
    report: dict[str, Any] = {"videos": {}, "crop": crop}
    for video in videos:
        cuts = set(range(video.blur.shape[0])) if single_frame else None
        restored = restore_clip(model, video.blur, stages=stages, cuts=cuts)
        report["videos"][video.name] = {"model": score_video(restored, video.sharp, crop),
                                        "input": score_video(video.blur, video.sharp, crop)}
        m, i = report["videos"][video.name]["model"], report["videos"][video.name]["input"]
        print(f"{video.name}: input {i['mean_psnr']:.2f} dB -> model {m['mean_psnr']:.2f} dB", file=sys.stderr)
    for who in ("model", "input"):
        frames_psnr = [p for v in report["videos"].values() for p in v[who]["psnr"]]
        frames_ssim = [s for v in report["videos"].values() for s in v[who]["ssim"]]
        report[who] = {
            "mean_psnr": float(np.mean(frames_psnr)),
            "mean_ssim": float(np.mean(frames_ssim)),
            "mean_flicker": float(np.mean([v[who]["flicker"] for v in report["videos"].values()])),
            "frames": len(frames_psnr),
        }
    gains = [m - i for v in report["videos"].values() for m, i in zip(v["model"]["psnr"], v["input"]["psnr"])]
    report["gain_db"] = report["model"]["mean_psnr"] - report["input"]["mean_psnr"]
    report["frames_worse"] = float(np.mean([g < 0 for g in gains]))
    return report


def before_after_png(model: ARVo, video: Video, path: Path, *, index: int | None = None) -> None:
    """blurry | restored | sharp for one frame, side by side."""
    from PIL import Image

    index = video.blur.shape[0] // 2 if index is None else index
    restored = restore_clip(model, video.blur)[index]
    row = np.concatenate([to_uint8(video.blur[index]), to_uint8(restored), to_uint8(video.sharp[index])], axis=1)
    with atomic_path(path) as tmp:
        Image.fromarray(row).save(tmp)


def summary_table(report: dict[str, Any]) -> str:
    lines = ["| | PSNR (dB) | SSIM | flicker | frames |", "|---|---|---|---|---|"]
    for who in ("input", "model"):
        r = report[who]
        lines.append(f"| {who} | {r['mean_psnr']:.2f} | {r['mean_ssim']:.4f} | {r['mean_flicker']:.4f} | {r['frames']} |")
    return "\n".join(lines)


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("eval", help="PSNR/SSIM of a model on a test set", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", help="a .safetensors file (default: the shipped weights)")
    p.add_argument("--data", help="dataset root (DVD / GoPro / HFR-DVD / paired layouts); default: procedural")
    p.add_argument("--split", default="test")
    p.add_argument("--clips", type=int, default=12, help="procedural test clips")
    p.add_argument("--frames", type=int, default=10, help="frames per procedural clip")
    p.add_argument("--size", type=int, default=192, help="procedural frame edge")
    p.add_argument("--seed", type=int, default=424242)
    p.add_argument("--crop", type=int, default=4, help="border crop in pixels (4 in the DVD protocol)")
    p.add_argument("--stages", type=int, help="stage passes (default: the model's)")
    p.add_argument("--threads", type=int)
    p.add_argument("--out", help="write report.json and before_after.png here (eval_realistic.json and "
                   "before_after_realistic.png for the realistic set)")
    from .realistic_eval import add_realistic_arguments

    add_realistic_arguments(p)
    p.set_defaults(func=run_from_args)


def argument_problems(args: argparse.Namespace) -> list[str]:
    """What is wrong with ``arvo eval``'s arguments, one sentence each naming the value and the fix."""
    from vsarvo.model.arvo import MIN_SIZE

    problems = []
    for name, low in (("clips", 1), ("frames", 1), ("size", MIN_SIZE), ("crop", 0)):
        if getattr(args, name) < low:
            problems.append(f"--{name} {getattr(args, name)} is out of range: give at least {low}")
    if not args.data and args.size >= MIN_SIZE and 2 * args.crop >= args.size:
        problems.append(f"--crop {args.crop} leaves nothing of a {args.size}px frame to score: give less than {args.size // 2}")
    for name in ("stages", "threads"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            problems.append(f"--{name} {getattr(args, name)} is out of range: give at least 1 (or leave it out)")
    if args.weights and not Path(args.weights).is_file():
        problems.append(f"--weights {args.weights} does not exist: pass a .safetensors file (or leave it out for the shipped weights)")
    if args.data and not Path(args.data).is_dir():
        problems.append(f"--data {args.data} is not a folder: pass a dataset root")
    if args.out and Path(args.out).exists() and not Path(args.out).is_dir():
        problems.append(f"--out {args.out} is a file: pass a folder for report.json and before_after.png")
    return problems


def run_from_args(args: argparse.Namespace) -> int:
    problems = argument_problems(args)
    if problems:
        # Before any clip is rendered or weights loaded.
        raise ValueError("; ".join(problems))
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(args.weights)
    from .realistic_eval import chosen_sets, run_realistic

    sets = chosen_sets(args)
    if "realistic" in sets:
        run_realistic(model, args)
    if "procedural" not in sets:
        return 0
    if args.data:
        videos = folder_test_set(args.data, args.split)
    else:
        videos = procedural_test_set(clips=args.clips, frames=args.frames, size=args.size, seed=args.seed)
    report = evaluate(model, videos, crop=args.crop, stages=args.stages)
    if not args.data:
        static = evaluate(model, [static_clip(size=args.size)], crop=args.crop, stages=args.stages)
        report["static_psnr"] = static["model"]["mean_psnr"]
    print(summary_table(report), file=sys.stderr)
    print(f"gain {report['gain_db']:+.2f} dB; frames made worse: {100 * report['frames_worse']:.1f} %"
          + (f"; static sharp clip kept at {report['static_psnr']:.2f} dB" if "static_psnr" in report else ""),
          file=sys.stderr)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out / "report.json", json.dumps(report, indent=1))
        before_after_png(model, videos[0], out / "before_after.png")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m vsarvo.training.eval``: the same as ``arvo eval``."""
    from vsarvo.cli import main as arvo

    return arvo(["eval", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
