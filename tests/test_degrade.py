"""The footage degradation: camera paths, shutter blur, sensor noise, compression and the clip pipeline."""
from __future__ import annotations

import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from vsarvo.training.data.camera_path import mean_speed, sample_path
from vsarvo.training.data.compression import compress_frames
from vsarvo.training.data.degrade import BLUR_CLASSES, FootageSettings, render_footage_clip
from vsarvo.training.data.moving_scene import Layer, MovingScene, pool_to_output
from vsarvo.training.data.sensor import linear_to_srgb, srgb_to_linear
from vsarvo.training.data.shutter import expose, sub_frame_count

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")

SMALL = FootageSettings(frames=5, size=(96, 128))
CLEAN = replace(SMALL, noise=False, compress=False)


def _photo(seed: int = 0, size: tuple[int, int] = (480, 640)) -> Image.Image:
    """A detailed test picture: smooth colour fields plus random grey edges (photos carry detail in luma)."""
    rng = np.random.default_rng(seed)
    height, width = size
    ys, xs = np.mgrid[0:height, 0:width] / 60.0
    base = np.stack([np.sin(xs + c) * np.cos(ys * 1.3 - c) for c in (0.0, 1.0, 2.0)], -1) * 0.3 + 0.5
    blocks = rng.random((height // 8 + 1, width // 8 + 1, 1)).repeat(8, 0).repeat(8, 1)[:height, :width]
    return Image.fromarray(((0.5 * base + 0.5 * blocks) * 255).astype(np.uint8))


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a - b) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(1 / mse)


def _sharpness(frames: torch.Tensor) -> float:
    """Mean absolute horizontal plus vertical gradient: falls as blur grows."""
    return float((frames[..., 1:, :] - frames[..., :-1, :]).abs().mean() + (frames[..., 1:] - frames[..., :-1]).abs().mean())


def test_a_path_hits_its_speed_and_a_zero_speed_path_is_static():
    rng = np.random.default_rng(3)
    path = sample_path(rng, speed=6.0, frames=5, size=(96, 128))
    assert mean_speed(path, 5, (96, 128)) == pytest.approx(6.0, rel=0.01)
    still = sample_path(rng, speed=0.0, frames=5, size=(96, 128))
    matrix, shift = still.pose(np.linspace(-0.5, 4.5, 11))
    assert np.array_equal(matrix, np.broadcast_to(matrix[0], matrix.shape)) and np.all(shift == shift[0])


def test_sub_frames_follow_the_streak_length():
    assert sub_frame_count(0.0) == 1
    assert sub_frame_count(1e-9) == 1
    assert sub_frame_count(0.6) == 2
    assert sub_frame_count(10.0) == 11
    assert sub_frame_count(1000.0) == 24


def test_srgb_curve_round_trips():
    values = torch.linspace(0, 1, 1001)
    assert torch.allclose(linear_to_srgb(srgb_to_linear(values)), values, atol=1e-5)
    assert float(srgb_to_linear(torch.tensor(0.5))) == pytest.approx(0.2140, abs=1e-4)


def _scene_blur(speed: float, duty: float) -> float:
    photo = torch.from_numpy(np.asarray(_photo(1), dtype=np.float32) / 255).permute(2, 0, 1).contiguous()
    path = sample_path(np.random.default_rng(5), speed=speed, frames=3, size=(64, 64))
    scene = MovingScene(Layer(srgb_to_linear(photo), path), [], (64, 64), 2)
    blurry = pool_to_output(expose(scene.render, 3, duty, sub_frame_count(2 * speed * duty)), 2)
    return _sharpness(linear_to_srgb(blurry))


def test_blur_grows_with_shutter_and_motion():
    by_duty = [_scene_blur(8.0, duty) for duty in (0.25, 0.5, 1.0)]
    assert by_duty[0] > by_duty[1] > by_duty[2]
    by_speed = [_scene_blur(speed, 0.5) for speed in (0.0, 2.0, 8.0)]
    assert by_speed[0] > by_speed[1] > by_speed[2]
    assert by_speed[2] < 0.9 * by_speed[0]


@pytest.mark.parametrize("objects", [(0, 0), (2, 2)])
def test_a_zero_motion_clip_has_blur_free_input(objects):
    settings = replace(CLEAN, class_shares=(1.0, 0.0, 0.0), objects=objects)
    clip = render_footage_clip(_photo(), seed=4, settings=settings)
    assert clip.record.blur_class == "none" and clip.record.sub_frames == 1
    assert clip.record.motion_px == 0.0 and clip.record.blur_px == 0.0
    assert torch.equal(clip.blurry, clip.sharp)


def test_noise_alone_leaves_a_still_clip_close_to_its_ground_truth():
    settings = replace(SMALL, class_shares=(1.0, 0.0, 0.0), compress=False)
    clip = render_footage_clip(_photo(), seed=4, settings=settings)
    difference = clip.blurry - clip.sharp
    assert 30 < _psnr(clip.blurry, clip.sharp) < 70
    assert abs(float(difference.mean())) < 0.01


def test_blurry_input_differs_from_ground_truth_when_the_camera_moves():
    settings = replace(CLEAN, class_shares=(0.0, 0.0, 1.0))
    clip = render_footage_clip(_photo(), seed=2, settings=settings)
    assert clip.record.blur_class == "strong" and clip.record.blur_px > 2.0
    assert clip.record.sub_frames > 1
    assert _sharpness(clip.blurry) < 0.9 * _sharpness(clip.sharp)


@needs_ffmpeg
def test_same_seed_same_clip_and_another_seed_another():
    first = render_footage_clip(_photo(), seed=7, settings=SMALL)
    again = render_footage_clip(_photo(), seed=7, settings=SMALL)
    other = render_footage_clip(_photo(), seed=8, settings=SMALL)
    assert torch.equal(first.blurry, again.blurry) and torch.equal(first.sharp, again.sharp)
    assert first.record == again.record
    assert not torch.equal(first.sharp, other.sharp)
    assert not torch.equal(first.blurry, other.blurry)


@needs_ffmpeg
@pytest.mark.parametrize("codec", ["libx264", "libx265"])
def test_compression_changes_the_blurry_frames_but_keeps_them_close(codec):
    settings = replace(SMALL, codecs=(codec,), crf=(23, 23), class_shares=(0.0, 1.0, 0.0))
    compressed = render_footage_clip(_photo(), seed=1, settings=settings)
    uncompressed = render_footage_clip(_photo(), seed=1, settings=replace(settings, compress=False))
    assert compressed.record.codec == codec and compressed.record.crf == 23
    psnr = _psnr(compressed.blurry, uncompressed.blurry)
    assert 25 < psnr < 50


@needs_ffmpeg
def test_ground_truth_never_gets_noise_or_compression():
    degraded = render_footage_clip(_photo(), seed=3, settings=SMALL)
    clean = render_footage_clip(_photo(), seed=3, settings=CLEAN)
    assert degraded.record.codec is not None and degraded.record.shot_noise > 0
    assert torch.equal(degraded.sharp, clean.sharp)
    assert not torch.equal(degraded.blurry, clean.blurry)


@needs_ffmpeg
def test_compression_subsamples_chroma():
    # Alternate red and blue columns: full-resolution chroma. 4:2:0 halves the chroma resolution, so the
    # colours smear into each other even at a high quality setting.
    frames = np.zeros((3, 32, 32, 3), np.uint8)
    frames[:, :, 0::2, 0] = 255
    frames[:, :, 1::2, 2] = 255
    decoded = compress_frames(frames, codec="libx264", crf=18)
    assert np.abs(decoded.astype(int) - frames).mean() > 40


@needs_ffmpeg
def test_compression_keeps_a_smooth_picture_close():
    picture = np.asarray(_photo(2, (64, 64)).resize((64, 64)))[None].repeat(3, 0)
    decoded = compress_frames(np.ascontiguousarray(picture), codec="libx265", crf=18)
    assert decoded.shape == picture.shape and decoded.dtype == np.uint8
    assert np.abs(decoded.astype(int) - picture).mean() < 12


def test_records_describe_the_clip():
    records = [render_footage_clip(_photo(), seed=s, settings=replace(CLEAN, size=(64, 64))).record for s in range(6)]
    assert {r.blur_class for r in records} <= set(BLUR_CLASSES)
    for record in records:
        assert 0.25 <= record.duty <= 1.0
        assert (record.blur_px == 0) == (record.blur_class == "none")


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="even"):
        FootageSettings(size=(95, 128))
    with pytest.raises(ValueError, match="duty"):
        FootageSettings(duty=(0.0, 1.0))
    with pytest.raises(ValueError, match="codec"):
        compress_frames(np.zeros((2, 8, 8, 3), np.uint8), codec="mpeg2video", crf=20)
    with pytest.raises(ValueError, match="even"):
        compress_frames(np.zeros((2, 7, 8, 3), np.uint8), codec="libx264", crf=20)
