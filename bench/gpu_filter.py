"""The filter end to end: ``vspipe`` on a procedural clip through vsarvo.Deblur, frames/s after warm-up.

    python -m bench.gpu_filter --weights W.safetensors --size 1080p --frames 24 --device cuda:0

The clip is generated inside the script (smooth content moving 2 px per frame, converted to
YUV420P8, what most sources decode to) and held in memory, so no source plugin or video file is
needed on the machine that measures. vspipe runs the script twice, each time in a new process: once
for the first ``warmup`` frames, once for all of them. Frames/s after warm-up are the extra frames
over the difference of the two output times vspipe reports, so model load, cuDNN's first calls and
the filter's start-up cancel out, while vspipe's concurrent frame requests stay as users run them
(a per-frame clock inside one run would credit frames already in flight to the warm-up).

vspipe embeds Python through libvsscript, which needs to know the interpreter and its shared
libpython; ``configure_vsscript`` writes VapourSynth's configuration file for this interpreter
(pointing at a shared libpython where the interpreter itself is linked statically). Where vspipe
cannot start, the same script runs in this interpreter (``runner: python``) and the row says why.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import re
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.record import REPO_ROOT

__all__ = ["SCRIPT", "libpython_path", "configure_vsscript", "vspipe_path", "fps_after_warmup", "output_seconds",
           "run_filter", "main"]

_OUTPUT_LINE = re.compile(r"Output \d+ frames in ([0-9.]+) seconds")

# The .vpy every run uses; parameters come as vspipe --arg values (strings) through globals().
SCRIPT = '''\
import sys
sys.path.insert(0, repo)
import numpy as np
import vapoursynth as vs
import vsarvo
from bench.throughput import _moving_pattern

core = vs.core
w, h, n = int(width), int(height), int(frames)
pattern = _moving_pattern(n, h, w)
blank = core.std.BlankClip(format=vs.RGBS, width=w, height=h, length=n, fpsnum=25, fpsden=1)

def fill(n, f):
    out = f.copy()
    for p in range(3):
        np.copyto(np.asarray(out[p]), pattern[n, p])
    return out

source = core.resize.Bicubic(core.std.ModifyFrame(blank, blank, fill), format=vs.YUV420P8, matrix_s="709")
tile_edge = None if tile == "none" else int(tile)
clip = vsarvo.Deblur(source, weights=weights, device=device, precision=precision, tile=tile_edge,
                     streams=int(streams))
clip.set_output()
'''

# Runs the script in this interpreter and pulls every frame, as vspipe does (the fallback runner).
_PYTHON_RUNNER = '''\
import os, sys, runpy, time
import vapoursynth as vs
end = int(sys.argv[2])
args = dict(a.split("=", 1) for a in sys.argv[3:])
runpy.run_path(sys.argv[1], init_globals=args)
clip = vs.get_output(0).clip[:end + 1]
start = time.perf_counter()
with open(os.devnull, "wb") as sink:
    clip.output(sink)
print(f"Output {end + 1} frames in {time.perf_counter() - start:.4f} seconds", file=sys.stderr)
'''


def libpython_path() -> str | None:
    """A shared libpython of this interpreter's version, or None where there is none.

    Interpreters linked statically (Debian's and Ubuntu's own) still often have the shared library
    installed beside them; libvsscript can load that one.
    """
    names = [sysconfig.get_config_var(k) for k in ("INSTSONAME", "LDLIBRARY")]
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    names += [f"libpython{version}.so.1.0", f"libpython{version}.so"]
    dirs = [sysconfig.get_config_var("LIBDIR"), sysconfig.get_config_var("LIBPL"), sys.base_prefix + "/lib"]
    multiarch = sysconfig.get_config_var("MULTIARCH")
    if multiarch:
        dirs += [f"/usr/lib/{multiarch}", f"/lib/{multiarch}"]
    for folder in filter(None, dirs):
        for name in filter(None, names):
            candidate = Path(folder, name)
            if ".so" in name and candidate.is_file():
                return str(candidate)
    return None


def vspipe_path() -> Path:
    """The vspipe program of the installed VapourSynth package (the wheel keeps it beside its library)."""
    import vapoursynth

    return Path(vapoursynth.__file__).with_name("vspipe")


def _toml_string(text: str) -> str:
    return json.dumps(text)  # a TOML basic string is a JSON string for these paths


def configure_vsscript(config_home: Path) -> Path:
    """Write ``vapoursynth.toml`` under ``config_home/vapoursynth`` so libvsscript embeds this interpreter.

    Returns the file. Callers run vspipe with ``XDG_CONFIG_HOME=config_home``. Raises RuntimeError
    naming the fix when no shared libpython exists for this interpreter.
    """
    import vapoursynth

    lib = libpython_path()
    if lib is None:
        raise RuntimeError(f"no shared libpython for {sys.executable} ({sys.version.split()[0]}); vspipe needs one "
                           "(install the distribution's libpython3.x package)")
    vsscript = str(Path(vapoursynth.__file__).with_name("libvsscript.so")).replace("/lib64/", "/lib/")
    stamp = str(int(os.stat(sys.executable).st_mtime))
    folder = config_home / "vapoursynth"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "vapoursynth.toml"
    path.write_text(f"{_toml_string(vsscript)} = [{_toml_string(sys.executable)},{_toml_string(lib)},"
                    f"{_toml_string(stamp)}]\n")
    return path


def fps_after_warmup(frames: int, warmup: int, all_s: float, warmup_s: float) -> float:
    """Frames/s of the frames past the first ``warmup``: (frames - warmup) over the difference of the
    two runs' output times (all frames, and the first ``warmup`` only)."""
    if not 0 < warmup < frames:
        raise ValueError(f"warmup must be between 1 and frames - 1 = {frames - 1}, got {warmup}")
    if all_s <= warmup_s:
        raise ValueError(f"the run of {frames} frames ({all_s:.3f} s) was not slower than the run of {warmup} "
                         f"({warmup_s:.3f} s): too few frames to measure; give more frames")
    return (frames - warmup) / (all_s - warmup_s)


def output_seconds(stderr: str) -> float:
    """The output time vspipe reports ("Output N frames in S seconds"), model loading excluded."""
    found = _OUTPUT_LINE.findall(stderr)
    if not found:
        raise RuntimeError("no 'Output N frames in S seconds' line in the output")
    return float(found[-1])


def _script_args(spec: dict[str, Any]) -> dict[str, str]:
    tile = spec.get("tile")
    return {"repo": str(REPO_ROOT), "width": str(spec["width"]), "height": str(spec["height"]),
            "frames": str(spec["frames"]), "weights": str(spec["weights"]), "device": spec["device"],
            "precision": spec["precision"], "tile": "none" if tile is None else str(tile),
            "streams": str(spec.get("streams", 1))}


def _run_once(runner: str, script: Path, args: dict[str, str], *, end: int, env: dict[str, str], timeout: float) -> float:
    """Output frames 0..end of the script through ``runner`` ("vspipe" or "python"); returns the output seconds."""
    if runner == "vspipe":
        command = [str(vspipe_path()), "--end", str(end), *[x for k, v in args.items() for x in ("--arg", f"{k}={v}")],
                   str(script), "--"]
    else:
        command = [sys.executable, "-c", _PYTHON_RUNNER, str(script), str(end), *[f"{k}={v}" for k, v in args.items()]]
    try:
        done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"{runner} timed out after {timeout:.0f} s") from None
    if done.returncode != 0:
        lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
        errors = [line for line in lines if "rror" in line]
        sys.stderr.write(done.stderr[-3000:])
        raise RuntimeError(f"{runner} exit {done.returncode}: {(errors or lines or ['no output'])[-1]}")
    return output_seconds(done.stderr)


def run_filter(spec: dict[str, Any], *, timeout: float) -> dict[str, Any]:
    """One filter row: ``spec`` has width, height, frames, weights, device, precision, tile, warmup and
    optionally streams (model calls at once, default 1).

    Runs the script twice (the first ``warmup`` frames, then all of them), each in a new process.
    Returns status "ok" with runner ("vspipe", or "python" with vspipe_error when vspipe could not
    run), warmup_output_s, output_s, fps_total (all frames over their output time, first calls
    included) and fps_after_warmup; or status "failed" with the reason.
    """
    frames, warmup = int(spec["frames"]), int(spec["warmup"])
    with tempfile.TemporaryDirectory(prefix="vsarvo-filter-") as tmp:
        folder = Path(tmp)
        script = folder / "deblur.vpy"
        script.write_text(SCRIPT)
        env = {**os.environ, "XDG_CONFIG_HOME": str(folder / "config"),
               "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
        errors: dict[str, str] = {}
        runners = ["vspipe", "python"]
        try:
            configure_vsscript(folder / "config")
        except RuntimeError as exc:
            errors["vspipe_error"] = str(exc)
            runners = ["python"]
        began = time.perf_counter()
        for runner in runners:
            try:
                warm_s = _run_once(runner, script, _script_args(spec), end=warmup - 1, env=env, timeout=timeout)
                left = timeout - (time.perf_counter() - began)
                all_s = _run_once(runner, script, _script_args(spec), end=frames - 1, env=env, timeout=max(1.0, left))
                fps = fps_after_warmup(frames, warmup, all_s, warm_s)
            except (RuntimeError, ValueError) as exc:
                errors[f"{runner}_error"] = str(exc)
                continue
            return {**errors, "status": "ok", "runner": runner, "warmup_output_s": warm_s, "output_s": all_s,
                    "fps_total": frames / all_s, "fps_after_warmup": fps}
    return {**errors, "status": "failed", "reason": "; ".join(f"{k}: {v}" for k, v in errors.items())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu_filter", description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", required=True, help="a .safetensors weight file")
    parser.add_argument("--size", default="1080p", help="540p, 720p, 1080p, 2160p or WIDTHxHEIGHT")
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--warmup", type=int, default=4, help="frames left out of the after-warm-up rate")
    parser.add_argument("--device", default="cuda:0")
    parser.add_argument("--precision", default=None)
    parser.add_argument("--tile", type=int, default=None)
    parser.add_argument("--streams", type=int, default=1, help="model calls at once (Deblur's streams)")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args(argv)
    from bench.gpu import parse_frame_size

    label, width, height = parse_frame_size(args.size)
    spec = {"width": width, "height": height, "frames": args.frames, "warmup": args.warmup, "weights": args.weights,
            "device": args.device, "precision": args.precision or ("fp32" if args.device == "cpu" else "fp16"),
            "tile": args.tile, "streams": args.streams}
    print(json.dumps({"size": label, **run_filter(spec, timeout=args.timeout)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
