"""End-to-end demo: make a blurry clip with known ground truth, deblur it through `vspipe | ffmpeg`, score it.

    python examples/demo.py --out out/demo        (what `make demo` runs)

1. Renders a procedural clip from the held-out source images (motion blur in linear light, sensor
   noise) and encodes the blurry and the sharp frames losslessly (FFV1, 4:4:4) with a sine audio track.
2. Runs examples/deblur.vpy (bestsource -> core.arvo.Deblur) under a real `vspipe -c y4m`, piped into a
   real ffmpeg that copies the source's audio: out/demo/deblurred.mkv.
3. Decodes all three videos and prints PSNR of blurry and deblurred against the ground truth; writes
   before_after.png (blurry | deblurred | sharp).
Progress goes to stderr.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def log(msg: str) -> None:
    print(f"demo: {msg}", file=sys.stderr, flush=True)


def tool(name: str) -> str:
    """A program from this environment's bin folder (vspipe) or PATH (ffmpeg)."""
    local = Path(sys.executable).with_name(name)
    found = str(local) if local.exists() else shutil.which(name)
    if not found:
        raise SystemExit(f"demo: {name} not found; run `make demo` (it installs everything) or install {name}")
    return found


def encode_frames(frames: np.ndarray, path: Path, fps: int) -> None:
    """[T, H, W, 3] uint8 RGB -> lossless FFV1 yuv444p with a sine audio track, written atomically."""
    t, h, w, _ = frames.shape
    tmp = path.with_name(f".partial.{path.name}")
    cmd = [tool("ffmpeg"), "-hide_banner", "-loglevel", "error", "-y",
           "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", str(fps), "-i", "-",
           "-f", "lavfi", "-i", f"sine=frequency=440:duration={t / fps}",
           "-map", "0:v", "-map", "1:a", "-c:v", "ffv1", "-pix_fmt", "yuv444p",
           "-color_primaries", "bt709", "-color_trc", "bt709", "-colorspace", "bt709", "-color_range", "pc",
           "-c:a", "flac", "-shortest", str(tmp)]
    subprocess.run(cmd, input=frames.tobytes(), check=True)
    os.replace(tmp, path)


def decode_frames(path: Path, size: tuple[int, int]) -> np.ndarray:
    h, w = size
    cmd = [tool("ffmpeg"), "-hide_banner", "-loglevel", "error", "-i", str(path),
           "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    raw = subprocess.run(cmd, capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, h, w, 3)


def deblur(src: Path, dst: Path, weights: str | None) -> None:
    """vspipe -c y4m examples/deblur.vpy | ffmpeg, the audio copied from the source."""
    vs_args = ["-a", f"src={src.resolve()}"] + (["-a", f"weights={Path(weights).resolve()}"] if weights else [])
    tmp = dst.with_name(f".partial.{dst.name}")
    vspipe = subprocess.Popen([tool("vspipe"), "-c", "y4m", *vs_args, "-p", str(HERE / "deblur.vpy"), "-"],
                              stdout=subprocess.PIPE)
    ffmpeg = subprocess.run([tool("ffmpeg"), "-hide_banner", "-loglevel", "error", "-y",
                             "-f", "yuv4mpegpipe", "-i", "-", "-i", str(src), "-map", "0:v:0", "-map", "1:a?",
                             "-c:v", "ffv1", "-c:a", "copy",
                             # y4m carries no colour tags: restate the source's (BT.709, full range).
                             "-color_primaries", "bt709", "-color_trc", "bt709", "-colorspace", "bt709",
                             "-color_range", "pc", str(tmp)], stdin=vspipe.stdout)
    vspipe.stdout.close()
    if vspipe.wait() != 0 or ffmpeg.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise SystemExit(f"demo: the vspipe | ffmpeg pipeline failed (vspipe {vspipe.returncode}, ffmpeg {ffmpeg.returncode})")
    os.replace(tmp, dst)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="out/demo")
    parser.add_argument("--weights", help="a .safetensors file (default: the shipped weights)")
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--size", default="320x192", help="WxH of the sample clip")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    import torch
    from PIL import Image

    from vsarvo.training.eval import TEST_BLUR
    from vsarvo.training.metrics import psnr
    from vsarvo.training.data.procedural import make_clip

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    w, h = (int(v) for v in args.size.split("x"))
    log(f"rendering a {args.frames}-frame {w}x{h} blurry clip with ground truth (held-out images)")
    torch.set_num_threads(1)
    blur, sharp, _ = make_clip(np.random.default_rng(args.seed), args.frames, (h, w), TEST_BLUR, split="test")
    as_u8 = lambda x: (x.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)  # noqa: E731
    encode_frames(as_u8(blur), out / "blurry.mkv", fps=25)
    encode_frames(as_u8(sharp), out / "sharp.mkv", fps=25)

    log("deblurring: vspipe -c y4m examples/deblur.vpy | ffmpeg -> deblurred.mkv")
    deblur(out / "blurry.mkv", out / "deblurred.mkv", args.weights)

    blurry, restored, truth = (decode_frames(out / f"{n}.mkv", (h, w)) for n in ("blurry", "deblurred", "sharp"))
    if not len(blurry) == len(restored) == len(truth):
        raise SystemExit(f"demo: frame counts differ: {len(blurry)} blurry, {len(restored)} deblurred, {len(truth)} sharp")
    before = float(np.mean([psnr(a, b, 4) for a, b in zip(blurry, truth)]))
    after = float(np.mean([psnr(a, b, 4) for a, b in zip(restored, truth)]))
    mid = len(truth) // 2
    Image.fromarray(np.concatenate([blurry[mid], restored[mid], truth[mid]], axis=1)).save(out / "before_after.png")
    log(f"{len(restored)} frames: PSNR blurry {before:.2f} dB -> deblurred {after:.2f} dB ({after - before:+.2f} dB)")
    log(f"wrote {out / 'deblurred.mkv'} and {out / 'before_after.png'} (blurry | deblurred | sharp)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
