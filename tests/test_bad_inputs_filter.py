"""The filter's table of bad inputs and faults: each ends in a named error with the words a user needs,
leaves nothing behind in the cache folder, and changes no output silently.

Faults are put in for real: NaN/inf pixels in float frames, tiling arguments below the model's limits,
a cache folder that cannot be written (a path under a file: as root chmod does not stop writes), a full
disk (a 1 MiB tmpfs, mounted only when running as root; skipped otherwise) and a damaged cached .onnx.
"""
from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
import vapoursynth as vs

import vsarvo
from vsarvo.filter import release_runners
from vsarvo.model import ARVo, ARVoConfig
from vsarvo.weights import save_model

SMALL = ARVoConfig.tiny(channels=8, encoder_width=4, recon_width=8, recon_blocks=1, flow_width=0.1, disc_width=4)


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> str:
    torch.manual_seed(0)
    model = ARVo(SMALL).eval()
    model.stage.reconstruction.decode_full[-1].reset_parameters()
    return str(save_model(model, tmp_path_factory.mktemp("w") / "w.safetensors"))


@pytest.fixture(autouse=True)
def fresh_runners():
    yield
    release_runners()


def _clip(fmt: int = vs.RGBS, length: int = 5, bad: dict[int, float] | None = None) -> vs.VideoNode:
    """A noise clip of ``length`` 64x64 frames; frame k of ``bad`` gets the value at two pixels of plane 0.
    Frame n's noise is seeded by n, so it does not depend on the order VapourSynth requests frames in."""
    clip = vs.core.std.BlankClip(format=fmt, width=64, height=64, length=length)

    def fill(n: int, f: vs.VideoFrame) -> vs.VideoFrame:
        out = f.copy()
        rng = np.random.default_rng(n)
        for p in range(out.format.num_planes):
            plane = np.asarray(out[p])
            plane[...] = rng.random(plane.shape) * (1 if p == 0 or fmt == vs.RGBS else 0.2)
        if bad and n in bad:
            np.asarray(out[0])[10:12, 20] = bad[n]
        return out

    return vs.core.std.ModifyFrame(clip, clip, fill)


def _frames(clip: vs.VideoNode) -> list[np.ndarray]:
    return [np.stack([np.asarray(f[p]) for p in range(f.format.num_planes)]) for f in clip.frames()]


# --- non-finite input --------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt, value", [(vs.RGBS, np.nan), (vs.YUV444PS, np.inf), (vs.GRAYS, -np.inf)],
                         ids=["RGBS-nan", "YUV444PS-inf", "GRAYS-minus-inf"])
def test_a_non_finite_frame_fails_every_output_whose_window_holds_it(weights: str, fmt: int, value: float) -> None:
    out = vsarvo.Deblur(_clip(fmt, length=6, bad={2: value}), weights=weights, backend="torch", device="cpu")
    for n in range(6):  # two stages: output n sees inputs n-2 .. n+2
        if abs(n - 2) <= 2:
            with pytest.raises(vs.Error, match=r"frame 2 has 2 NaN or infinite sample\(s\).*nonfinite='replace'"):
                out.get_frame(n)
        else:
            assert np.isfinite(np.asarray(out.get_frame(n)[0])).all()


def test_nonfinite_replace_gives_the_output_of_the_replaced_frame(weights: str) -> None:
    bad = vsarvo.Deblur(_clip(bad={1: np.nan}), weights=weights, backend="torch", device="cpu", nonfinite="replace")
    clean = vsarvo.Deblur(_clip(bad={1: 0.0}), weights=weights, backend="torch", device="cpu")
    for a, b in zip(_frames(bad), _frames(clean)):
        assert np.isfinite(a).all() and np.array_equal(a, b)


# --- arguments below the model's limits and bad values -----------------------------------------------

@pytest.mark.parametrize(
    "kwargs, words",
    [
        pytest.param({"tile": 3}, "tile must be at least 4 pixels (the model's coarsest stride), got 3", id="tile-3"),
        pytest.param({"tile": 64, "tile_overlap": 8}, "tile_overlap must be at least", id="overlap-below-radius"),
        pytest.param({"nonfinite": "zero"}, "nonfinite must be one of 'error', 'replace'", id="nonfinite-value"),
        pytest.param({"tile_overlap": 80}, "tile_overlap needs tile", id="overlap-without-tile"),
    ],
)
def test_bad_arguments_are_refused_at_call_time(weights: str, kwargs: dict, words: str) -> None:
    with pytest.raises(vs.Error) as info:
        vsarvo.Deblur(_clip(), weights=weights, backend="torch", device="cpu", **kwargs)
    assert words in str(info.value) and "Traceback" not in str(info.value)


def test_tile_overlap_at_the_receptive_radius_is_exact(weights: str) -> None:
    from vsarvo.backends.tiling_limits import receptive_radius
    from vsarvo.weights import load_model

    radius = receptive_radius(load_model(weights).stage)
    tiled = _frames(vsarvo.Deblur(_clip(length=3), weights=weights, backend="torch", device="cpu", tile=32,
                                  tile_overlap=radius))
    whole = _frames(vsarvo.Deblur(_clip(length=3), weights=weights, backend="torch", device="cpu"))
    assert max(float(np.abs(a - b).max()) for a, b in zip(tiled, whole)) < 1e-5


# --- the cache ---------------------------------------------------------------------------------------

def _leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and (p.name.startswith(".") or ".tmp" in p.name)]


def test_an_unwritable_cache_and_temp_folder_is_one_named_error(weights: str, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("the cache folder would be under this file")
    monkeypatch.setattr(tempfile, "tempdir", str(blocker / "tmp"))
    with pytest.raises(vs.Error, match=r"cannot be written.*VSARVO_CACHE=<folder> \(or pass cache_dir=<folder>\)"):
        vsarvo.Deblur(_clip(), weights=weights, backend="ort", device="cpu", cache_dir=str(blocker / "cache"))


@pytest.fixture
def full_disk(tmp_path: Path):
    """A 1 MiB tmpfs: too small for any stage graph. Needs root (mount); skipped otherwise."""
    mount = tmp_path / "full"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("a full disk needs a tmpfs mount, which needs root")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


def test_a_full_cache_disk_is_named_and_leaves_no_partial_file(weights: str, full_disk: Path) -> None:
    out = vsarvo.Deblur(_clip(length=1), weights=weights, backend="ort", device="cpu", cache_dir=str(full_disk))
    with pytest.raises(vs.Error, match=r"the disk is full.*VSARVO_CACHE=<folder>"):
        out.get_frame(0)
    assert not _leftovers(full_disk) and not list((full_disk / "onnx").iterdir())


def test_a_damaged_cached_onnx_is_rebuilt_once_and_gives_the_same_output(weights: str, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = _frames(vsarvo.Deblur(_clip(length=1), weights=weights, backend="ort", device="cpu", cache_dir=str(cache)))
    release_runners()
    (graph,) = (cache / "onnx").iterdir()
    graph.write_bytes(graph.read_bytes()[:1000])
    again = _frames(vsarvo.Deblur(_clip(length=1), weights=weights, backend="ort", device="cpu", cache_dir=str(cache)))
    assert np.array_equal(first[0], again[0])
    assert graph.stat().st_size > 1000 and not _leftovers(cache)
