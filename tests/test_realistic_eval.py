"""The realistic held-out set of `arvo eval`: held-out photos only, deterministic, scored per blur class."""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from vsarvo.training.data.photos import MANIFEST, split_of
from vsarvo.training.realistic_eval import (
    RealisticSet, add_realistic_arguments, chosen_sets, realistic_test_set, restore_interior, score_realistic,
)

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")

TINY = RealisticSet(photos=2, clips_per_photo=3, frames=5, size=64, seed=7)


def _names(split: str, count: int) -> list[str]:
    names = (f"fake/photo_{i}.png" for i in range(1000))
    return [n for n in names if split_of(n) == split][:count]


def _write_photos(root: Path, held_out: int = 2, train: int = 2) -> dict[str, str]:
    """Detailed synthetic pictures under a manifest, like `make photos` writes; returns name -> split."""
    entries, splits = [], {}
    for k, name in enumerate(_names("held_out", held_out) + _names("train", train)):
        rng = np.random.default_rng(k)
        blocks = rng.random((30, 40, 3)).repeat(8, 0).repeat(8, 1)
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((blocks * 255).astype(np.uint8)).save(root / name)
        entries.append({"name": name, "file": name, "split": split_of(name)})
        splits[name] = split_of(name)
    (root / MANIFEST).write_text(json.dumps({"photos": entries}))
    return splits


class _Model(torch.nn.Module):
    """A stand-in restorer: returns the reference frame (identity) or looks up the sharp frame."""

    def __init__(self, sharp_of: dict[bytes, torch.Tensor] | None = None) -> None:
        super().__init__()
        self.config = SimpleNamespace(stages=2)
        self.sharp_of = sharp_of

    def stage(self, previous, reference, following):
        if self.sharp_of is None:
            return reference
        return self.sharp_of.get(reference.numpy().tobytes(), reference)


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    _write_photos(root)
    return root, *realistic_test_set(root, TINY)


def test_the_set_uses_held_out_photos_in_every_blur_class(tiny_set):
    root, videos, records = tiny_set
    assert len(videos) == TINY.photos * TINY.clips_per_photo
    held = set(_names("held_out", 2))
    assert {v.name.rsplit("_", 2)[0] + ".png" for v in videos} == held
    assert sorted(r["blur_class"] for r in records.values()) == ["mild", "mild", "none", "none", "strong", "strong"]
    assert all(r["codec"] in ("libx264", "libx265") for r in records.values())


def test_the_set_is_deterministic(tiny_set):
    root, videos, _ = tiny_set
    again, _ = realistic_test_set(root, TINY)
    assert all(torch.equal(a.blur, b.blur) and torch.equal(a.sharp, b.sharp) for a, b in zip(videos, again))


def test_an_identity_model_gains_nothing_and_makes_no_frame_worse(tiny_set):
    _, videos, records = tiny_set
    report = score_realistic(_Model(), videos, records, crop=4, spec=TINY)
    assert report["gain_db"] == 0.0
    assert report["frames_worse"] == 0.0
    # 5 frames, 2 stages: one interior frame per clip.
    assert report["frames"] == len(videos)


def test_a_model_returning_the_sharp_frames_gains_a_lot(tiny_set):
    _, videos, records = tiny_set
    sharp_of = {}
    for video in videos:
        for t in range(video.blur.shape[0]):
            sharp_of[video.blur[t:t + 1].numpy().tobytes()] = video.sharp[t:t + 1]
    # The second stage sees the first stage's output (sharp) and must keep it.
    report = score_realistic(_Model(sharp_of), videos, records, crop=4, spec=TINY)
    assert report["gain_db"] > 5
    assert report["frames_worse"] == 0.0
    assert report["input_psnr"] < 45


def test_the_blur_classes_are_reported_separately(tiny_set):
    _, videos, records = tiny_set
    # A model that only damages the mild clips.
    mild = {v.blur[t:t + 1].numpy().tobytes() for v in videos if records[v.name]["blur_class"] == "mild"
            for t in range(v.blur.shape[0])}

    class Damaging(_Model):
        def stage(self, previous, reference, following):
            return (reference * 0.5) if reference.numpy().tobytes() in mild else reference

    report = score_realistic(Damaging(), videos, records, crop=4, spec=TINY)
    assert report["by_class"]["mild"]["gain_db"] < -1 and report["by_class"]["mild"]["frames_worse"] == 1.0
    assert report["by_class"]["none"]["gain_db"] == 0.0 and report["by_class"]["strong"]["gain_db"] == 0.0
    assert report["by_class"]["mild"]["frames"] == 2


def test_interior_restoration_matches_the_whole_clip_restoration():
    from vsarvo.model import ARVo, ARVoConfig, restore_clip

    torch.manual_seed(0)
    model = ARVo(ARVoConfig.tiny()).eval()
    frames = torch.rand(7, 3, 64, 64)
    with torch.no_grad():
        whole = restore_clip(model, frames)
        inner = restore_interior(model, frames)
    stages = model.config.stages
    assert torch.allclose(inner, whole[stages:7 - stages], atol=1e-5)


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data")
    add_realistic_arguments(parser)
    return parser.parse_args(argv)


def test_the_default_is_both_sets_with_photos_and_procedural_without(tmp_path, capsys):
    assert chosen_sets(_args("--photos", str(tmp_path))) == ("procedural",)
    assert "make photos" in capsys.readouterr().err
    (tmp_path / MANIFEST).write_text('{"photos": []}')
    assert chosen_sets(_args("--photos", str(tmp_path))) == ("realistic", "procedural")


def test_asking_for_the_realistic_set_without_photos_names_make_photos(tmp_path):
    with pytest.raises(SystemExit, match="make photos"):
        chosen_sets(_args("--set", "realistic", "--photos", str(tmp_path)))


def test_the_decoded_frames_are_what_bestsource_and_the_filter_give(tmp_path):
    """compression.py's decode against bestsource + the filter's YUV -> RGB conversion of the same file."""
    import subprocess

    vs = pytest.importorskip("vapoursynth")
    if not hasattr(vs.core, "bs"):
        pytest.skip("needs the bestsource plugin")
    from vsarvo.training.data import compression

    rng = np.random.default_rng(1)
    frames = (rng.random((3, 6, 8, 3)).repeat(8, 1).repeat(8, 2) * 255).astype(np.uint8)  # colourful 48x64
    video = tmp_path / "clip.mkv"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "64x48",
                    "-i", "-", "-vf", compression._TO_YUV, "-c:v", "libx264", "-crf", "18", "-colorspace", "bt709",
                    "-color_range", "tv", "-chroma_sample_location", "left", str(video)], input=frames.tobytes(), check=True)
    raw = subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(video), "-vf", compression._TO_RGB,
                          "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], capture_output=True, check=True).stdout
    decoded = np.frombuffer(raw, np.uint8).reshape(frames.shape).astype(np.float64)
    # vsarvo.filter._to_rgbs: resize.Bicubic to RGBS, limited range, BT.709 (HD) / props, left chroma by default.
    rgb = vs.core.resize.Bicubic(vs.core.bs.VideoSource(str(video)), format=vs.RGBS, matrix_in=1,
                                 range_in=int(vs.Range.RANGE_LIMITED), chromaloc_in=int(vs.ChromaLocation.CHROMA_LEFT))
    filtered = np.stack([np.stack([np.asarray(f[p]) for p in range(3)], -1) for f in rgb.frames()]) * 255
    filtered = np.clip(np.round(filtered), 0, 255)  # as the 8-bit frames a user's encode would get
    # Saturated colour blocks: 48.5 dB with the same chroma siting, 26.6 dB with swscale's default siting.
    # What differs then is the bicubic kernels' overshoot at colour edges (swscale c = 0.6, zimg 0.5).
    assert 10 * np.log10(255**2 / np.mean((decoded - filtered) ** 2)) > 40


# --- the saved set a lent GPU carries --------------------------------------------------------------


def test_a_saved_set_loads_back_bit_identical_with_its_records(tiny_set, tmp_path):
    from vsarvo.training.realistic_eval import load_realistic_set, save_realistic_set

    _, videos, records = tiny_set
    path = save_realistic_set(tmp_path / "set.npz", videos, records, TINY)
    loaded, loaded_records, spec = load_realistic_set(path)
    assert spec == TINY and loaded_records == json.loads(json.dumps(records))  # tuples come back as lists
    assert [v.name for v in loaded] == [v.name for v in videos]
    assert all(torch.equal(a.blur, b.blur) and torch.equal(a.sharp, b.sharp) for a, b in zip(videos, loaded))


def test_frames_that_are_not_8_bit_values_are_refused_not_rounded(tiny_set, tmp_path):
    from vsarvo.training.eval import Video
    from vsarvo.training.realistic_eval import save_realistic_set

    _, videos, records = tiny_set
    odd = Video(videos[0].name, videos[0].blur + 0.3 / 255, videos[0].sharp)
    with pytest.raises(ValueError, match="not 8-bit values"):
        save_realistic_set(tmp_path / "set.npz", [odd], records, TINY)
    assert not (tmp_path / "set.npz").exists()


def test_a_damaged_or_missing_saved_set_names_the_command_that_writes_it(tiny_set, tmp_path):
    from vsarvo.training.realistic_eval import load_realistic_set, save_realistic_set

    _, videos, records = tiny_set
    with pytest.raises(FileNotFoundError, match="realistic_eval save"):
        load_realistic_set(tmp_path / "missing.npz")
    path = save_realistic_set(tmp_path / "set.npz", videos, records, TINY)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match="not a complete saved realistic set.*realistic_eval save"):
        load_realistic_set(path)


def test_arvo_eval_scores_a_saved_set_without_photos(tiny_set, tmp_path):
    """The CLI path a lent GPU takes: `save` here, `arvo eval --realistic-from` there (no photos, no ffmpeg)."""
    import subprocess
    import sys

    from vsarvo.model import ARVo, ARVoConfig
    from vsarvo.weights import save_model

    root, videos, records = tiny_set
    saved = tmp_path / "set.npz"
    made = subprocess.run([sys.executable, "-m", "vsarvo.training.realistic_eval", "save", "--photos", str(root),
                           "--out", str(saved), "--realistic-photos", "2", "--realistic-clips", "3",
                           "--realistic-frames", "5", "--realistic-size", "64", "--realistic-seed", "7"],
                          capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    torch.manual_seed(0)
    weights = save_model(ARVo(ARVoConfig.tiny()), tmp_path / "w.safetensors")
    done = subprocess.run([sys.executable, "-m", "vsarvo.cli", "eval", "--weights", str(weights), "--set", "realistic",
                           "--realistic-from", str(saved), "--photos", str(tmp_path / "no_photos"),
                           "--out", str(tmp_path / "out"), "--threads", "1"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "out" / "eval_realistic.json").read_text())
    assert report["set"] == {"photos": 2, "clips_per_photo": 3, "frames": 5, "size": 64, "seed": 7}
    assert sorted(report["videos"]) == sorted(v.name for v in videos)
    # The same inputs as the set rendered here: the input scores match the freshly rendered clips'.
    fresh = score_realistic(_Model(), videos, records, crop=4, spec=TINY)
    assert report["input_psnr"] == pytest.approx(fresh["input_psnr"], abs=1e-9)


def test_a_saved_set_with_set_procedural_is_a_contradiction(tmp_path):
    with pytest.raises(SystemExit, match="drop one of them"):
        chosen_sets(_args("--set", "procedural", "--realistic-from", str(tmp_path / "set.npz")))
    assert chosen_sets(_args("--realistic-from", str(tmp_path / "set.npz"))) == ("realistic", "procedural")
