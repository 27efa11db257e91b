"""A before/after of a model on a real camera clip with natural motion blur, for the model card.

The clip is OpenCV's sample video ``vtest.avi`` (people walking across a campus, recorded by a real
camera: 768x576, 10 fps, MS-MPEG4 v3, 795 frames), shipped by the Debian package ``opencv-doc``
(``/usr/share/doc/opencv-doc/examples/data/vtest.avi``). The package's copyright file has no stanza
of its own for the sample data, so the file falls under its ``Files: *`` stanza: Apache-2.0 AND
BSD-3-Clause, copyright the OpenCV authors. ``fetch`` downloads the package with ``apt-get
download`` (no root needed), extracts only that file and the copyright file into ``data/real_clip/``
and records the package version; run it before, never at run time of the filter; the folder is not
committed.

Usage::

    python -m vsarvo.training.real_clip --out runs/arvo_tiny/real_clip.png

The frame is decoded with ffmpeg (4:2:0 chroma interpolated bicubically, BT.601 limited range, as
the filter assumes for an SD clip without a matrix tag). The model restores a box of it from the
frames around it, the interior frame exactly as in a long video (:func:`..realistic_eval.restore_interior`).
The PNG shows input | restored on top and a 3x nearest-neighbour zoom of a smaller box below;
``<out>.json`` holds the source and how much the model changed the pixels (there is no ground truth).
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from vsarvo.atomic import atomic_path, write_text_atomic

__all__ = ["PACKAGE", "MEMBER", "LICENCE", "fetch_clip", "read_frames", "before_after", "main"]

PACKAGE = "opencv-doc"
MEMBER = "usr/share/doc/opencv-doc/examples/data/vtest.avi"
LICENCE = "Apache-2.0 AND BSD-3-Clause (opencv-doc's debian/copyright, Files: *)"
SOURCE = "source.json"


def _run(command: list[str], **options) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, **options)
    if result.returncode != 0:
        stderr = result.stderr if isinstance(result.stderr, str) else result.stderr.decode(errors="replace")
        raise RuntimeError(f"{' '.join(command[:4])} ... failed: {stderr.strip()[-400:]}")
    return result


def fetch_clip(dest: str | Path = "data/real_clip") -> tuple[Path, dict]:
    """``vtest.avi`` in ``dest`` (downloaded and extracted once) and its source record."""
    dest = Path(dest)
    video, record = dest / Path(MEMBER).name, dest / SOURCE
    if video.is_file() and record.is_file():
        return video, json.loads(record.read_text())
    for tool in ("apt-get", "dpkg-deb", "tar"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"fetching the real clip needs {tool} (a Debian or Ubuntu system)")
    with tempfile.TemporaryDirectory(prefix="vsarvo-real-clip-") as scratch:
        result = subprocess.run(["apt-get", "download", PACKAGE], cwd=scratch, capture_output=True, text=True)
        debs = sorted(Path(scratch).glob("*.deb"))
        if result.returncode != 0 or not debs:
            raise RuntimeError(f"apt-get download {PACKAGE} failed ({result.stderr.strip()[-300:]}); run 'apt-get update' first")
        version = _run(["dpkg-deb", "-f", str(debs[0]), "Version"], text=True).stdout.strip()
        tree = Path(scratch) / "tree"
        tree.mkdir()
        tar = _run(["dpkg-deb", "--fsys-tarfile", str(debs[0])]).stdout
        _run(["tar", "-x", "-C", str(tree), f"./{MEMBER}", f"./usr/share/doc/{PACKAGE}/copyright"], input=tar)
        for source, target in ((tree / MEMBER, video), (tree / f"usr/share/doc/{PACKAGE}/copyright", dest / "copyright")):
            with atomic_path(target) as tmp:
                shutil.copyfile(source, tmp)
    info = {"package": PACKAGE, "version": version, "file": f"/{MEMBER}", "licence": LICENCE,
            "content": "people walking, recorded by a real camera (768x576, 10 fps)"}
    write_text_atomic(record, json.dumps(info, indent=1) + "\n")
    return video, info


def read_frames(video: Path, first: int, count: int) -> np.ndarray:
    """Frames ``first .. first + count - 1`` of ``video`` as uint8 [T, H, W, 3], decoded as a player would."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise RuntimeError("reading the clip needs ffmpeg on PATH (apt-get install ffmpeg)")
    probe = _run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=width,height",
                  "-of", "csv=p=0", str(video)], text=True).stdout
    width, height = (int(v) for v in probe.strip().split(",")[:2])
    select = f"select='between(n\\,{first}\\,{first + count - 1})'"
    to_rgb = "scale=in_color_matrix=bt601:in_range=tv:flags=bicubic+accurate_rnd+full_chroma_int,format=rgb24"
    raw = _run([ffmpeg, "-nostdin", "-loglevel", "error", "-i", str(video), "-vf", f"{select},{to_rgb}",
                "-vsync", "0", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]).stdout
    frames = np.frombuffer(raw, dtype=np.uint8)
    if frames.size != count * width * height * 3:
        raise ValueError(f"{video} has fewer than {first + count} frames")
    return frames.reshape(count, height, width, 3).copy()


def _zoom(image: np.ndarray, factor: int) -> np.ndarray:
    return image.repeat(factor, 0).repeat(factor, 1)


def before_after(model, frames: np.ndarray, box: tuple[int, int, int, int],
                 zoom_box: tuple[int, int, int, int], factor: int = 3) -> tuple[np.ndarray, dict]:
    """The picture (input | restored over their zoomed crops) and how much the model changed the box."""
    from .realistic_eval import restore_interior

    x, y, w, h = box
    clip = torch.from_numpy(frames[:, y:y + h, x:x + w]).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        restored = restore_interior(model.eval(), clip)
    middle = clip.shape[0] // 2
    before = frames[middle, y:y + h, x:x + w]
    after = (restored[restored.shape[0] // 2].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    zx, zy, zw, zh = zoom_box
    crops = [_zoom(image[zy:zy + zh, zx:zx + zw], factor) for image in (before, after)]
    top, bottom = np.concatenate([before, after], 1), np.concatenate(crops, 1)
    pad = np.zeros((bottom.shape[0], top.shape[1] - bottom.shape[1], 3), np.uint8)
    change = np.abs(after.astype(np.int16) - before.astype(np.int16))
    stats = {"mean_abs_change_levels": float(change.mean()), "pixels_changed_over_2_levels": float((change.max(-1) > 2).mean())}
    return np.concatenate([top, np.concatenate([bottom, pad], 1)], 0), stats


def _box(text: str) -> tuple[int, int, int, int]:
    values = tuple(int(v) for v in text.split(","))
    if len(values) != 4 or min(values) < 0:
        raise argparse.ArgumentTypeError(f"give a box as x,y,width,height in pixels, got {text!r}")
    return values  # type: ignore[return-value]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vsarvo.training.real_clip", description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="runs/arvo_tiny/real_clip.png")
    parser.add_argument("--weights", help="a .safetensors file (default: the shipped weights)")
    parser.add_argument("--dest", default="data/real_clip", help="where the clip is fetched to")
    parser.add_argument("--frame", type=int, default=100, help="the frame shown (its neighbours are read too)")
    parser.add_argument("--box", type=_box, default=(288, 96, 384, 256), help="x,y,w,h of the frame restored")
    parser.add_argument("--zoom-box", type=_box, default=(48, 64, 128, 84), help="x,y,w,h inside --box, zoomed 3x")
    parser.add_argument("--threads", type=int)
    args = parser.parse_args(argv)
    from vsarvo.weights import load_model

    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(args.weights)
    radius = model.config.stages
    video, source = fetch_clip(args.dest)
    frames = read_frames(video, args.frame - radius, 2 * radius + 1)
    x, y, w, h = args.box
    if x + w > frames.shape[2] or y + h > frames.shape[1] or args.zoom_box[0] + args.zoom_box[2] > w or args.zoom_box[1] + args.zoom_box[3] > h:
        parser.error(f"--box must lie in the {frames.shape[2]}x{frames.shape[1]} frame and --zoom-box in --box")
    picture, stats = before_after(model, frames, args.box, args.zoom_box)
    from PIL import Image

    out = Path(args.out)
    with atomic_path(out) as tmp:
        Image.fromarray(picture).save(tmp, format="PNG", optimize=True)
    report = {"source": source, "frame": args.frame, "box": args.box, "zoom_box": args.zoom_box,
              "weights": args.weights or "shipped", **stats}
    write_text_atomic(out.with_suffix(".json"), json.dumps(report, indent=1) + "\n")
    print(f"real clip: {out} ({out.stat().st_size / 1e3:.0f} kB); mean change {stats['mean_abs_change_levels']:.2f} levels",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
