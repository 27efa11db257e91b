"""The realistic held-out test set of `arvo eval --set realistic`, and its scores per blur class.

The set is built from the *held-out* photos (:func:`~.data.photos.list_photos`; training never draws
them) with the footage pipeline (:func:`~.data.degrade.render_footage_clip`): hand-held camera
paths, moving objects cut from the next held-out photo, shutter 25-100 %, sensor noise, and an x264
or x265 yuv420p round trip at CRF 18-30. The blurry frames are what that encode decodes to: 4:2:0
chroma interpolated back to full resolution with a bicubic kernel and converted with the BT.709
limited-range matrix, as a VapourSynth source clip converted to RGB with ``resize.Bicubic`` (what
the filter does) gives them, rounded to 8 bits. The set is fixed: the first ``photos`` held-out
photos by name, ``clips_per_photo`` clips each cycling through the blur classes none, mild and
strong, every clip from a seed of its own.

Only a clip's interior frames are scored: frame ``j`` of a model with ``S`` stages depends on frames
``j - S .. j + S``, so the frames ``S .. T - S - 1`` are restored exactly as the filter restores
them in a long video, with no clip edge repeated. Those are the only frames restored, which also
keeps the set cheap on a CPU.
"""
from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vsarvo.atomic import atomic_path
from vsarvo.model import ARVo

from .data.degrade import BLUR_CLASSES, FootageSettings, render_footage_clip
from .data.photos import MANIFEST, list_photos
from .eval import Video, score_video, to_uint8

__all__ = ["RealisticSet", "photos_installed", "realistic_test_set", "save_realistic_set", "load_realistic_set",
           "restore_interior", "score_realistic", "before_after_png", "main"]

PHOTOS_HINT = "install the photos with 'make photos' (python -m vsarvo.training.data.photos install --dest data/photos)"


@dataclass(frozen=True)
class RealisticSet:
    """Which clips the realistic set holds. The defaults are the set the README's numbers are on."""

    photos: int = 6
    clips_per_photo: int = 3
    frames: int = 7
    size: int = 160
    seed: int = 20_2020

    def __post_init__(self) -> None:
        if self.photos < 1 or self.clips_per_photo < 1 or self.frames < 2 or self.size < 64 or self.size % 2:
            raise ValueError(f"need photos >= 1, clips_per_photo >= 1, frames >= 2 and an even size >= 64; got {self}")


def photos_installed(root: str | Path) -> bool:
    """Whether ``root`` holds installed photos (their manifest)."""
    return (Path(root) / MANIFEST).is_file()


def _class_settings(spec: RealisticSet, blur_class: str) -> FootageSettings:
    shares = tuple(float(name == blur_class) for name in BLUR_CLASSES)
    return FootageSettings(frames=spec.frames, size=(spec.size, spec.size), class_shares=shares)


def realistic_test_set(root: str | Path, spec: RealisticSet = RealisticSet()) -> tuple[list[Video], dict[str, dict]]:
    """The set's clips (blurry = decoded 4:2:0 video, sharp = clean) and, per clip name, how it was made."""
    from PIL import Image

    if not photos_installed(root):
        raise FileNotFoundError(f"no photos in {root}: {PHOTOS_HINT}")
    held_out = list_photos(root, "held_out")[:spec.photos]
    if not held_out:
        raise ValueError(f"{root} has no held-out photos: reinstall them ({PHOTOS_HINT})")
    videos, records = [], {}
    for k, path in enumerate(held_out):
        photo = Image.open(path).convert("RGB")
        foreground = Image.open(held_out[(k + 1) % len(held_out)]).convert("RGB")
        for j in range(spec.clips_per_photo):
            blur_class = BLUR_CLASSES[j % len(BLUR_CLASSES)]
            seed = int(np.random.default_rng((spec.seed, k, j)).integers(2**62))
            clip = render_footage_clip(photo, seed=seed, settings=_class_settings(spec, blur_class), foreground=foreground)
            name = f"{path.parent.name}/{path.stem}_{j}_{blur_class}"
            videos.append(Video(name, clip.blurry, clip.sharp))
            records[name] = clip.record.to_dict()
            print(f"\rrendering realistic clips {len(videos)}/{len(held_out) * spec.clips_per_photo}", end="",
                  file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return videos, records


def _to_bytes(frames: torch.Tensor) -> np.ndarray:
    """[T, 3, H, W] float frames that are 8-bit values -> uint8, refusing any that are not (storage must be lossless)."""
    scaled = frames.double() * 255
    stored = scaled.round()
    if float((scaled - stored).abs().max()) > 1e-3:
        raise ValueError("the realistic set's frames are not 8-bit values: they cannot be saved losslessly as uint8")
    return stored.to(torch.uint8).numpy()


def save_realistic_set(path: str | Path, videos: list[Video], records: dict[str, dict], spec: RealisticSet) -> Path:
    """Write the set to one ``.npz`` (uint8 frames, lossless: the set's frames are 8-bit values) for a machine
    without the photos or ffmpeg, such as a lent GPU."""
    import json

    arrays = {}
    for k, video in enumerate(videos):
        arrays[f"blur_{k}"] = _to_bytes(video.blur)
        arrays[f"sharp_{k}"] = _to_bytes(video.sharp)
    index = {"spec": asdict(spec), "names": [v.name for v in videos], "records": records}
    arrays["index"] = np.frombuffer(json.dumps(index).encode(), dtype=np.uint8)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, **arrays)
    return Path(path)


def load_realistic_set(path: str | Path) -> tuple[list[Video], dict[str, dict], RealisticSet]:
    """The clips, their records and the spec of a set written by :func:`save_realistic_set`."""
    import json
    import zipfile

    try:
        with np.load(path, allow_pickle=False) as stored:
            index = json.loads(stored["index"].tobytes().decode())
            videos = [Video(name, torch.from_numpy(stored[f"blur_{k}"]).float() / 255,
                            torch.from_numpy(stored[f"sharp_{k}"]).float() / 255) for k, name in enumerate(index["names"])]
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no saved realistic set there; write one with "
                                "'python -m vsarvo.training.realistic_eval save --out FILE'") from None
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not a complete saved realistic set ({error}): write it again with "
                         "'python -m vsarvo.training.realistic_eval save --out FILE'") from None
    return videos, index["records"], RealisticSet(**index["spec"])


def restore_interior(model: ARVo, frames: torch.Tensor, *, stages: int | None = None) -> torch.Tensor:
    """Frames ``S .. T - S - 1`` of ``frames`` [T, 3, H, W] restored by ``S`` stage passes, as in a long video.

    Each pass restores frame ``j`` from ``(j - 1, j, j + 1)`` of the previous pass's frames and is
    clamped to [0, 1], as :func:`vsarvo.model.restore_clip` does; a pass only computes the frames the
    next one needs, so no clip edge is ever repeated.
    """
    stages = model.config.stages if stages is None else stages
    if frames.shape[0] <= 2 * stages:
        raise ValueError(f"a clip of {frames.shape[0]} frames has no interior for {stages} stages: give more frames")
    x = frames
    for _ in range(stages):
        x = torch.cat([model.stage(x[j - 1:j], x[j:j + 1], x[j + 1:j + 2]).clamp(0, 1) for j in range(1, x.shape[0] - 1)])
    return x


def _summary(rows: list[tuple[float, float, float, float]]) -> dict[str, Any]:
    """Means of (input PSNR, model PSNR, input SSIM, model SSIM) rows, the gain and the share made worse."""
    if not rows:
        return {"frames": 0}
    table = np.array(rows, dtype=np.float64)
    gains = table[:, 1] - table[:, 0]
    return {"frames": len(rows), "input_psnr": float(table[:, 0].mean()), "model_psnr": float(table[:, 1].mean()),
            "input_ssim": float(table[:, 2].mean()), "model_ssim": float(table[:, 3].mean()),
            "gain_db": float(gains.mean()), "frames_worse": float((gains < 0).mean())}


@torch.no_grad()
def score_realistic(model: ARVo, videos: list[Video], records: dict[str, dict], *, crop: int = 4,
                    stages: int | None = None, spec: RealisticSet | None = None) -> dict[str, Any]:
    """Per-frame PSNR/SSIM of the model and of the decoded input on the interior frames, over the set and per blur class."""
    model.eval()
    stages = model.config.stages if stages is None else stages
    report: dict[str, Any] = {"set": asdict(spec) if spec else None, "crop": crop, "stages": stages,
                              "scored_frames": "interior (stages .. frames - stages - 1)", "videos": {}}
    rows: dict[str, list] = {name: [] for name in ("all", *BLUR_CLASSES)}
    for video in videos:
        inner = slice(stages, video.blur.shape[0] - stages)
        restored = restore_interior(model, video.blur, stages=stages)
        model_scores = score_video(restored, video.sharp[inner], crop)
        input_scores = score_video(video.blur[inner], video.sharp[inner], crop)
        report["videos"][video.name] = {"model": model_scores, "input": input_scores, "record": records[video.name]}
        frame_rows = list(zip(input_scores["psnr"], model_scores["psnr"], input_scores["ssim"], model_scores["ssim"]))
        rows["all"] += frame_rows
        rows[records[video.name]["blur_class"]] += frame_rows
        print(f"{video.name}: input {input_scores['mean_psnr']:.2f} dB -> model {model_scores['mean_psnr']:.2f} dB",
              file=sys.stderr)
    report.update(_summary(rows["all"]))
    report["by_class"] = {name: _summary(rows[name]) for name in BLUR_CLASSES}
    return report


def summary_lines(report: dict[str, Any]) -> str:
    """The set's scores, overall and per blur class, one line each."""
    lines = ["| frames | blur | input PSNR | model PSNR | gain (dB) | frames worse | input SSIM | model SSIM |",
             "|---|---|---|---|---|---|---|---|"]
    for name, row in (("all", report), *report["by_class"].items()):
        if row["frames"]:
            lines.append(f"| {row['frames']} | {name} | {row['input_psnr']:.2f} | {row['model_psnr']:.2f} | "
                         f"{row['gain_db']:+.2f} | {100 * row['frames_worse']:.1f} % | {row['input_ssim']:.4f} | "
                         f"{row['model_ssim']:.4f} |")
    return "\n".join(lines)


def before_after_png(model: ARVo, video: Video, path: Path, *, stages: int | None = None) -> None:
    """decoded input | restored | sharp for the middle frame of ``video``, side by side."""
    from PIL import Image

    stages = model.config.stages if stages is None else stages
    restored = restore_interior(model, video.blur, stages=stages)
    middle = restored.shape[0] // 2
    index = stages + middle
    row = np.concatenate([to_uint8(video.blur[index]), to_uint8(restored[middle]), to_uint8(video.sharp[index])], axis=1)
    with atomic_path(path) as tmp:
        Image.fromarray(row).save(tmp, format="PNG")


def spec_from_args(args: Any) -> RealisticSet:
    """The set named by `arvo eval`'s --realistic-* flags."""
    return replace(RealisticSet(), photos=args.realistic_photos, clips_per_photo=args.realistic_clips,
                   frames=args.realistic_frames, size=args.realistic_size, seed=args.realistic_seed)


SETS = ("realistic", "procedural", "both")


def add_realistic_arguments(parser: Any) -> None:
    """`arvo eval`'s flags choosing the test sets and the realistic set's size."""
    defaults = RealisticSet()
    parser.add_argument("--set", choices=SETS, dest="test_set",
                        help="test set(s): default both when the photos are installed, else procedural")
    parser.add_argument("--photos", default="data/photos", help="installed photos ('make photos')")
    parser.add_argument("--realistic-photos", type=int, default=defaults.photos, help="held-out photos used")
    parser.add_argument("--realistic-clips", type=int, default=defaults.clips_per_photo,
                        help="clips per photo (blur classes none, mild, strong in turn)")
    parser.add_argument("--realistic-frames", type=int, default=defaults.frames, help="frames per realistic clip")
    parser.add_argument("--realistic-size", type=int, default=defaults.size, help="realistic frame edge (even)")
    parser.add_argument("--realistic-seed", type=int, default=defaults.seed)
    parser.add_argument("--realistic-from", metavar="FILE",
                        help="score a saved realistic set (python -m vsarvo.training.realistic_eval save) instead of "
                             "rendering one: needs neither the photos nor ffmpeg; the --realistic-* sizes are the file's")


def chosen_sets(args: Any) -> tuple[str, ...]:
    """The sets to score: ``"realistic"`` and/or ``"procedural"`` (which means --data when given)."""
    saved = getattr(args, "realistic_from", None)
    if saved and args.test_set == "procedural":
        raise SystemExit(f"eval: --realistic-from {saved} is a realistic set, --set procedural leaves it out: drop one of them")
    have_realistic = bool(saved) or photos_installed(args.photos)
    if args.test_set is None:
        if args.data or have_realistic:
            return ("procedural",) if args.data else ("realistic", "procedural")
        print(f"eval: the realistic set is skipped, there are no photos in {args.photos}: {PHOTOS_HINT}", file=sys.stderr)
        return ("procedural",)
    if args.data and args.test_set != "procedural":
        raise SystemExit(f"eval: --set {args.test_set} scores built-in sets; --data {args.data} replaces the "
                         "procedural set only: leave out --set or give --set procedural")
    if args.test_set != "procedural" and not have_realistic:
        raise SystemExit(f"eval: --set {args.test_set} needs the photos, none are in {args.photos}: {PHOTOS_HINT}")
    return ("realistic", "procedural") if args.test_set == "both" else (args.test_set,)


def run_realistic(model: ARVo, args: Any) -> dict[str, Any]:
    """Build and score the realistic set; with --out write eval_realistic.json and before_after_realistic.png."""
    import json

    from vsarvo.atomic import write_text_atomic

    try:
        if getattr(args, "realistic_from", None):
            videos, records, spec = load_realistic_set(args.realistic_from)
        else:
            spec = spec_from_args(args)
            videos, records = realistic_test_set(args.photos, spec)
    except (ValueError, FileNotFoundError) as error:
        raise SystemExit(f"eval: {error}") from None
    report = score_realistic(model, videos, records, crop=args.crop, stages=args.stages, spec=spec)
    print(summary_lines(report), file=sys.stderr)
    mild = report["by_class"]["mild"]
    print(f"realistic: gain {report['gain_db']:+.2f} dB; frames made worse: {100 * report['frames_worse']:.1f} %"
          + (f"; mild blur {mild['gain_db']:+.2f} dB" if mild["frames"] else ""), file=sys.stderr)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out / "eval_realistic.json", json.dumps(report, indent=1))
        shown = next((v for v in videos if records[v.name]["blur_class"] == "mild"), videos[0])
        before_after_png(model, shown, out / "before_after_realistic.png", stages=args.stages)
    return report


def main(argv: list[str] | None = None) -> int:
    """``python -m vsarvo.training.realistic_eval save --out FILE``: render the set once and save it."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m vsarvo.training.realistic_eval", description=main.__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    save = commands.add_parser("save", help="render the realistic set from the photos and write it to one .npz")
    save.add_argument("--out", required=True, help="the .npz to write (e.g. carry/realistic_set.npz)")
    add_realistic_arguments(save)
    args = parser.parse_args(argv)
    try:
        spec = spec_from_args(args)
        videos, records = realistic_test_set(args.photos, spec)
    except (ValueError, FileNotFoundError) as error:
        parser.exit(2, f"realistic_eval save: {error}\n")
    path = save_realistic_set(args.out, videos, records, spec)
    print(f"realistic_eval save: {len(videos)} clips, {path.stat().st_size / 2**20:.1f} MiB -> {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
