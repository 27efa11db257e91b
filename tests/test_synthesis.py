"""Blur synthesis: the HFR-DVD recipe, procedural clips and their flow, source images, the command."""
import subprocess

import numpy as np
import pytest
import torch
from PIL import Image

from vsarvo.model import warp
from vsarvo.training.data.frames import list_frames, read_rgb
from vsarvo.training.data.hfr import average_frames, hfr_pairs, middle_frames, read_video_frames
from vsarvo.training.metrics import psnr
from vsarvo.training.data.procedural import (
    ClipSettings, linear_to_srgb, make_clip, make_flow_pair, make_scene, render_blurry, render_sharp, srgb_to_linear,
)
from vsarvo.training.data.sources import (
    TEST_PHOTOS, TEST_SEED_LIMIT, TRAIN_PHOTOS, SourceRecipe, draw_recipe, render_source, source_images,
)
from vsarvo.training.data.synthesis import main


pytestmark = pytest.mark.usefixtures("one_thread")


def _ramp(n_frames: int) -> list[np.ndarray]:
    """A synthetic video whose frame t has the value t everywhere."""
    return [np.full((4, 6, 3), t, np.uint8) for t in range(n_frames)]


def _u8(frame: torch.Tensor) -> np.ndarray:
    return (frame.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)


# --- HFR-DVD recipe --------------------------------------------------------------------------

def test_hfr_middles_start_at_the_first_full_window_and_step_within_the_range():
    middles = middle_frames(np.random.default_rng(3), window=41, step=(38, 44))
    first = [next(middles) for _ in range(200)]
    steps = np.diff(first)
    assert first[0] == 20
    assert steps.min() >= 38 and steps.max() <= 44
    assert len(set(steps.tolist())) == 7  # every step in [38, 44] occurs


def test_hfr_blurry_frame_is_the_exact_mean_of_the_window_and_sharp_is_its_middle():
    pairs = list(hfr_pairs(_ramp(250), window=41, step=(38, 44), seed=5))
    middles = middle_frames(np.random.default_rng(5), window=41, step=(38, 44))
    expected = [m for m in (next(middles) for _ in range(10)) if m + 20 < 250]
    assert len(pairs) == len(expected)
    for (blurry, sharp), middle in zip(pairs, expected):
        # mean(m - 20 .. m + 20) = m on a ramp
        assert np.all(blurry == middle) and np.all(sharp == middle)


def test_hfr_average_rounds_to_the_nearest_level():
    frames = [np.zeros((2, 2, 3), np.uint8), np.full((2, 2, 3), 1, np.uint8), np.full((2, 2, 3), 1, np.uint8)]
    assert np.all(average_frames(frames) == 1)  # 2/3 rounds up
    assert np.all(average_frames(frames[:1] * 2 + frames[1:2]) == 0)  # 1/3 rounds down


def test_hfr_pairs_are_reproducible_from_the_seed():
    first = [s[0, 0, 0] for _, s in hfr_pairs(_ramp(250), seed=1)]
    again = [s[0, 0, 0] for _, s in hfr_pairs(_ramp(250), seed=1)]
    other = [s[0, 0, 0] for _, s in hfr_pairs(_ramp(250), seed=2)]
    assert first == again and first != other


def test_read_video_frames_decodes_every_frame_through_ffmpeg(tmp_path):
    video = tmp_path / "ramp.mkv"
    raw = b"".join(np.full((16, 16, 3), 10 * t, np.uint8).tobytes() for t in range(12))
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "16x16", "-r", "1000", "-i", "pipe:0",
         "-c:v", "ffv1", "-pix_fmt", "bgr0", str(video)],
        input=raw, check=True,
    )
    frames = list(read_video_frames(video, (16, 16)))
    assert [int(f[8, 8, 0]) for f in frames] == [10 * t for t in range(12)]


def test_hfr_command_writes_blur_and_sharp_folders_from_a_frame_folder(tmp_path):
    source = tmp_path / "clip"
    source.mkdir()
    for t, frame in enumerate(_ramp(100)):
        Image.fromarray(np.repeat(np.repeat(frame, 4, 0), 4, 1)).save(source / f"{t}.png")  # unpadded names: natural order
    main(["hfr", str(source), "--out", str(tmp_path / "out"), "--size", "12x8", "--window", "5", "--step", "10", "10"])
    blur = list_frames(tmp_path / "out" / "clip" / "blur")
    sharp = list_frames(tmp_path / "out" / "clip" / "sharp")
    assert [int(read_rgb(p)[0, 0, 0]) for p in sharp] == list(range(2, 98, 10))
    assert [int(read_rgb(p)[0, 0, 0]) for p in blur] == list(range(2, 98, 10))
    assert read_rgb(blur[0]).shape == (8, 12, 3)


# --- procedural clips ------------------------------------------------------------------------

def test_srgb_decode_and_encode_are_inverse():
    x = torch.linspace(0, 1, 1001)
    assert torch.allclose(linear_to_srgb(srgb_to_linear(x)), x, atol=1e-5)


def test_make_clip_shapes_and_value_range():
    blur, sharp, flow = make_clip(np.random.default_rng(0), 4, (40, 56))
    assert blur.shape == sharp.shape == (4, 3, 40, 56)
    assert flow.shape == (3, 2, 40, 56)
    assert blur.dtype == sharp.dtype == flow.dtype == torch.float32
    assert 0 <= blur.min() and blur.max() <= 1 and 0 <= sharp.min() and sharp.max() <= 1
    assert torch.equal(torch.round(blur * 255) / 255, blur)  # 8-bit levels, like PNGs on disk


def test_make_clip_is_reproducible_from_the_generator_state():
    first = make_clip(np.random.default_rng(11), 3, (32, 32))
    again = make_clip(np.random.default_rng(11), 3, (32, 32))
    assert all(torch.equal(a, b) for a, b in zip(first, again))


def test_ground_truth_flow_warps_the_next_sharp_frame_onto_the_current_one():
    errors, motions = [], []
    for seed in range(4):
        frame0, frame1, flow, valid = make_flow_pair(np.random.default_rng(seed), (64, 80))
        warped, _ = warp(frame1[None], flow[None])
        errors.append((warped[0] - frame0).abs().mean(0)[valid].mean().item())
        motions.append(flow.norm(dim=0).mean().item())
    assert min(motions) > 1.0  # the scenes do move
    assert np.mean(errors) < 0.02


def test_flow_is_the_motion_of_the_scene_not_an_approximation():
    # A one-pixel error in the flow warps much worse than the ground truth.
    frame0, frame1, flow, valid = make_flow_pair(np.random.default_rng(2), (64, 80))
    exact = (warp(frame1[None], flow[None])[0][0] - frame0).abs().mean(0)[valid].mean()
    shifted = (warp(frame1[None], flow[None] + 1.0)[0][0] - frame0).abs().mean(0)[valid].mean()
    assert exact < shifted / 3


def test_default_blur_strength_gives_blurry_psnr_between_24_and_30_db():
    scores = []
    for seed in range(8):
        blur, sharp, _ = make_clip(np.random.default_rng(100 + seed), 2, (96, 96))
        scores += [psnr(_u8(b), _u8(s)) for b, s in zip(blur, sharp)]
    assert 24.0 <= np.mean(scores) <= 30.0


def test_longer_exposure_blurs_more():
    def mean_psnr(exposure: float) -> float:
        settings = ClipSettings(exposure=(exposure, exposure), noise=(0.0, 0.0))
        scene = make_scene(np.random.default_rng(4), 1, (64, 64), settings)  # same scene, only the shutter differs
        return psnr(_u8(render_blurry(scene, 0, np.random.default_rng(0))), _u8(render_sharp(scene, 0)))

    assert mean_psnr(1.0) < mean_psnr(0.5) < mean_psnr(0.2)


def test_zero_exposure_without_noise_renders_the_sharp_frame():
    settings = ClipSettings(exposure=(0.0, 0.0), noise=(0.0, 0.0))
    blur, sharp, _ = make_clip(np.random.default_rng(0), 2, (32, 32), settings)
    assert torch.equal(blur, sharp)


def test_clip_settings_reject_an_exposure_longer_than_the_frame_interval():
    with pytest.raises(ValueError, match="exposure"):
        ClipSettings(exposure=(0.5, 1.5))


def test_procedural_command_writes_frames_flow_and_validity(tmp_path):
    main(["procedural", "--out", str(tmp_path), "--videos", "1", "--frames", "3", "--size", "40x24"])
    (video,) = [p for p in tmp_path.iterdir()]
    assert len(list_frames(video / "blur")) == len(list_frames(video / "sharp")) == 3
    flows = sorted((video / "flow").glob("*.npy"))
    assert len(flows) == 2
    assert np.load(flows[0]).shape == (2, 24, 40) and np.load(flows[0]).dtype == np.float32
    assert read_rgb(video / "flow_valid" / "00000.png").shape == (24, 40, 3)


# --- source images ---------------------------------------------------------------------------

def test_held_out_photos_are_not_training_photos():
    assert not set(TRAIN_PHOTOS) & set(TEST_PHOTOS)


def test_train_and_test_recipes_draw_disjoint_photos_and_seeds():
    rng = np.random.default_rng(0)
    train = [draw_recipe(rng, "train") for _ in range(500)]
    test = [draw_recipe(rng, "test") for _ in range(500)]
    assert {r.photo for r in train} - {None} <= set(TRAIN_PHOTOS)
    assert {r.photo for r in test} - {None} <= set(TEST_PHOTOS)
    assert max(r.seed for r in test) < TEST_SEED_LIMIT <= min(r.seed for r in train)
    assert {r.split for r in train} == {"train"} and {r.split for r in test} == {"test"}


def test_source_images_have_the_requested_size_and_are_reproducible():
    images = source_images("test", count=3, size=(48, 64), seed=9)
    again = source_images("test", count=3, size=(48, 64), seed=9)
    assert [im.shape for im in images] == [(48, 64, 3)] * 3
    assert all(np.array_equal(a, b) for a, b in zip(images, again))


def test_every_listed_photo_loads_offline():
    # A photo that needs a download would fail here rather than in training.
    rng = np.random.default_rng(0)
    for photo in TRAIN_PHOTOS + TEST_PHOTOS:
        seed = int(rng.integers(TEST_SEED_LIMIT)) if photo in TEST_PHOTOS else TEST_SEED_LIMIT
        assert render_source(SourceRecipe(photo=photo, seed=seed), (16, 16)).shape == (16, 16, 3)
