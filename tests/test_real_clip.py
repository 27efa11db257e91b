"""The real-clip before/after: picture layout, the change it reports, and box checking."""
from __future__ import annotations

import argparse
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from vsarvo.training.real_clip import _box, before_after


class _Scale(torch.nn.Module):
    """A stand-in restorer multiplying the reference frame by ``gain``."""

    def __init__(self, gain: float) -> None:
        super().__init__()
        self.config = SimpleNamespace(stages=2)
        self.gain = gain

    def stage(self, previous, reference, following):
        return reference * self.gain


def _frames() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 200, (5, 96, 128, 3), dtype=np.uint8)


def test_an_identity_model_changes_nothing_and_the_picture_holds_both_rows():
    frames = _frames()
    picture, stats = before_after(_Scale(1.0), frames, (16, 8, 96, 64), (8, 8, 24, 16), factor=3)
    assert picture.shape == (64 + 48, 192, 3)
    assert np.array_equal(picture[:64, :96], frames[2, 8:72, 16:112])
    assert np.array_equal(picture[:64, 96:], picture[:64, :96])
    assert np.array_equal(picture[64:, :72], frames[2, 16:32, 24:48].repeat(3, 0).repeat(3, 1))
    assert stats["mean_abs_change_levels"] == 0.0 and stats["pixels_changed_over_2_levels"] == 0.0


def test_the_reported_change_measures_the_model():
    _, stats = before_after(_Scale(0.5), _frames(), (0, 0, 128, 96), (0, 0, 32, 32))
    # Two stages, each halving: the output is a quarter of the input.
    assert stats["mean_abs_change_levels"] == pytest.approx(0.75 * _frames()[2].mean(), abs=0.6)


def test_a_box_must_have_four_sizes():
    assert _box("1,2,3,4") == (1, 2, 3, 4)
    with pytest.raises(argparse.ArgumentTypeError, match="x,y,width,height"):
        _box("1,2,3")
