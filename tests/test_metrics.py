"""PSNR and SSIM agree with scikit-image; flicker measures changing errors only."""
import math

import numpy as np
import pytest
import skimage.data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from vsarvo.training.metrics import flicker, psnr, ssim


def _image_pairs() -> list[tuple[np.ndarray, np.ndarray]]:
    """Sharp photos against degraded versions: noise, a box blur, a colour shift."""
    rng = np.random.default_rng(7)
    pairs = []
    for photo in (skimage.data.astronaut()[100:196, 150:270], skimage.data.coffee()[:80, :64], skimage.data.chelsea()[50:150, 100:230]):
        noisy = np.clip(photo + rng.normal(0, 12, photo.shape), 0, 255).astype(np.uint8)
        blurred = ((photo[:-2, :-2].astype(np.float64) + photo[1:-1, 1:-1] + photo[2:, 2:]) / 3).round().astype(np.uint8)
        shifted = np.clip(photo.astype(np.int16) + np.array([9, -4, 2]), 0, 255).astype(np.uint8)
        pairs += [(photo, noisy), (photo[1:-1, 1:-1], blurred), (photo, shifted)]
    return pairs


def test_ssim_matches_scikit_image_gaussian_population_covariance():
    for a, b in _image_pairs():
        reference = structural_similarity(
            a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255, channel_axis=-1
        )
        assert ssim(a, b) == pytest.approx(reference, abs=1e-6)


def test_psnr_matches_scikit_image():
    for a, b in _image_pairs():
        assert psnr(a, b) == pytest.approx(peak_signal_noise_ratio(a, b, data_range=255), abs=1e-9)


def test_crop_scores_only_the_interior():
    a, b = _image_pairs()[0]
    reference = structural_similarity(
        a[4:-4, 4:-4], b[4:-4, 4:-4], gaussian_weights=True, sigma=1.5,
        use_sample_covariance=False, data_range=255, channel_axis=-1,
    )
    assert ssim(a, b, crop=4) == pytest.approx(reference, abs=1e-6)
    assert psnr(a, b, crop=4) == pytest.approx(peak_signal_noise_ratio(a[4:-4, 4:-4], b[4:-4, 4:-4], data_range=255))


def test_identical_frames_score_infinite_psnr_and_unit_ssim():
    a = _image_pairs()[0][0]
    assert psnr(a, a.copy()) == math.inf
    assert ssim(a, a.copy()) == pytest.approx(1.0)


def test_psnr_of_a_constant_error_of_one_level():
    a = np.zeros((16, 16, 3), np.uint8)
    assert psnr(a, a + 1) == pytest.approx(20 * math.log10(255))


def test_metrics_reject_non_uint8_frames():
    a = np.zeros((16, 16, 3), np.float32)
    with pytest.raises(ValueError, match="uint8"):
        psnr(a, a)


def test_flicker_ignores_an_error_that_is_constant_over_time():
    rng = np.random.default_rng(0)
    sharp = [rng.integers(0, 200, (12, 12, 3), dtype=np.uint8) for _ in range(4)]
    tinted = [s + 20 for s in sharp]
    assert flicker(tinted, sharp) == 0.0


def test_flicker_is_the_mean_absolute_change_of_the_error():
    sharp = [np.full((8, 8, 3), 100, np.uint8)] * 3
    # Errors +0, +6, +0: temporal differences of the error are +6 then -6.
    restored = [np.full((8, 8, 3), v, np.uint8) for v in (100, 106, 100)]
    assert flicker(restored, sharp) == pytest.approx(6.0)
