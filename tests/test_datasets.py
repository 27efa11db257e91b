"""Window datasets: layout detection, frame order, edge clamping, shared augmentation, procedural sets."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vsarvo.training.data.datasets import (
    FlowPairDataset, VideoWindowDataset, find_videos, paired_videos, window_indices,
)

HEIGHT, WIDTH = 12, 16


pytestmark = pytest.mark.usefixtures("one_thread")


def _frame(index: int, *, sharp: bool, pattern: bool) -> np.ndarray:
    """Frame ``index``: 50 * index (+5 if sharp), plus an asymmetric ramp when ``pattern``."""
    value = np.full((HEIGHT, WIDTH, 3), 50 * index + 5 * sharp, np.int32)
    if pattern:
        y, x = np.mgrid[:HEIGHT, :WIDTH]
        value += ((3 * y + 7 * x) % 50)[..., None]
    return value.astype(np.uint8)


def _write_video(folder: Path, blur: str, sharp: str, *, names: list[str], suffix: str = ".png", pattern: bool = False) -> None:
    for kind, sub in ((False, blur), (True, sharp)):
        (folder / sub).mkdir(parents=True)
        for index, name in enumerate(names):
            Image.fromarray(_frame(index, sharp=kind, pattern=pattern)).save(folder / sub / f"{name}{suffix}", quality=100)


def _indices(frames: torch.Tensor) -> list[int]:
    """Recover each frame's index from its (constant) value."""
    return [round(float(f.mean()) * 255 / 50) for f in frames]


def _plain(videos, **options) -> VideoWindowDataset:
    return VideoWindowDataset(videos, crop=None, augment=False, **options)


NAMES = ["00000", "00001", "00002", "00003"]


def test_dvd_layout_with_input_and_GT_jpegs_is_detected(tmp_path):
    _write_video(tmp_path / "test" / "IMG_0030", "input", "GT", names=NAMES, suffix=".jpg")
    (video,) = find_videos(tmp_path, "test")
    assert video.name == "IMG_0030" and [p.parent.name for p in (video.blur[0], video.sharp[0])] == ["input", "GT"]
    blur, sharp = _plain([video])[2]
    assert _indices(blur) == [0, 1, 2, 3, 3]


def test_dvd_variant_with_blur_and_gt_is_detected(tmp_path):
    _write_video(tmp_path / "train" / "v1", "blur", "gt", names=NAMES)
    (video,) = find_videos(tmp_path, "train")
    assert video.sharp[0].parent.name == "gt"


def test_gopro_layout_with_blur_and_sharp_is_detected(tmp_path):
    for name in ("GOPR0372_07_00", "GOPR0372_07_01"):
        _write_video(tmp_path / "train" / name, "blur", "sharp", names=NAMES)
    videos = find_videos(tmp_path, "train")
    assert [v.name for v in videos] == ["GOPR0372_07_00", "GOPR0372_07_01"]
    assert all(v.sharp[0].parent.name == "sharp" for v in videos)


def test_hfr_dvd_frames_with_gaps_in_their_numbers_are_ordered_by_name(tmp_path):
    _write_video(tmp_path / "test" / "scene", "blurry_resize", "sharp_resize", names=["00007", "00045", "00090", "00123"])
    (video,) = find_videos(tmp_path, "test")
    assert [p.stem for p in video.blur] == ["00007", "00045", "00090", "00123"]
    _, sharp = _plain([video])[1]
    assert _indices(sharp - 5 / 255) == [0, 0, 1, 2, 3]


def test_frames_in_unpadded_numbering_follow_numeric_order(tmp_path):
    _write_video(tmp_path / "v", "blur", "sharp", names=["9", "10", "11", "12"])
    (video,) = find_videos(tmp_path)
    assert [p.stem for p in video.blur] == ["9", "10", "11", "12"]


def test_a_single_video_folder_is_a_dataset_of_one_video(tmp_path):
    _write_video(tmp_path / "clip", "blur", "sharp", names=NAMES)
    (video,) = find_videos(tmp_path / "clip")
    assert video.name == "clip" and len(video.blur) == 4


def test_unknown_layout_raises_an_error_listing_the_expected_layouts(tmp_path):
    (tmp_path / "video" / "frames").mkdir(parents=True)
    with pytest.raises(ValueError) as error:
        find_videos(tmp_path)
    message = str(error.value)
    for expected in ("input/ + <video>/GT/", "blur/ + <video>/gt/", "blur/ + <video>/sharp/", "blurry_resize/ + <video>/sharp_resize/"):
        assert expected in message
    assert "video/ holds: frames" in message


def test_unequal_blurry_and_sharp_frame_counts_raise(tmp_path):
    _write_video(tmp_path / "v", "blur", "sharp", names=NAMES)
    (tmp_path / "v" / "sharp" / "00003.png").unlink()
    with pytest.raises(ValueError, match="4 blurry frames .* 3 sharp frames"):
        find_videos(tmp_path)


def test_paired_folders_of_frames_make_one_video(tmp_path):
    _write_video(tmp_path, "blurry", "clean", names=NAMES)
    (video,) = paired_videos(tmp_path / "blurry", tmp_path / "clean")
    assert len(video.blur) == len(video.sharp) == 4


def test_paired_folders_of_video_folders_match_videos_by_name(tmp_path):
    for name in ("a", "b"):
        _write_video(tmp_path / name, "blurry", "clean", names=NAMES)
        for side in ("blurry", "clean"):
            (tmp_path / side).mkdir(exist_ok=True)
            (tmp_path / name / side).rename(tmp_path / side / name)
    videos = paired_videos(tmp_path / "blurry", tmp_path / "clean")
    assert [(v.name, v.blur[0].parent.parent.name, v.sharp[0].parent.parent.name) for v in videos] == [
        ("a", "blurry", "clean"), ("b", "blurry", "clean")
    ]


def test_window_indices_clamp_at_both_ends():
    assert window_indices(0, 5, 4) == [0, 0, 0, 1, 2]
    assert window_indices(3, 5, 4) == [1, 2, 3, 3, 3]
    assert window_indices(1, 3, 1) == [0, 0, 0]


def test_items_are_every_frame_of_every_video_with_edge_frames_repeated(tmp_path):
    _write_video(tmp_path / "a", "blur", "sharp", names=NAMES)
    _write_video(tmp_path / "b", "blur", "sharp", names=NAMES[:2])
    dataset = _plain(find_videos(tmp_path))
    assert len(dataset) == 6
    assert [_indices(dataset[k][0]) for k in (0, 3, 4, 5)] == [[0, 0, 0, 1, 2], [1, 2, 3, 3, 3], [0, 0, 0, 1, 1], [0, 0, 1, 1, 1]]


def test_window_length_is_a_parameter_and_must_be_odd(tmp_path):
    _write_video(tmp_path / "a", "blur", "sharp", names=NAMES)
    videos = find_videos(tmp_path)
    assert _indices(_plain(videos, window=3)[0][0]) == [0, 0, 1]
    with pytest.raises(ValueError, match="window"):
        _plain(videos, window=4)


def test_augmentation_crops_flips_and_rotates_all_frames_alike(tmp_path):
    _write_video(tmp_path / "a", "blur", "sharp", names=NAMES, pattern=True)
    dataset = VideoWindowDataset(find_videos(tmp_path), crop=8, augment=True)
    torch.manual_seed(0)
    first_frames = set()
    for _ in range(24):
        blur, sharp = dataset[2]
        assert blur.shape == sharp.shape == (5, 3, 8, 8)
        # The same geometric transform everywhere: frames differ by a constant only.
        assert torch.allclose(sharp - blur, torch.full_like(blur, 5 / 255), atol=1e-6)
        offsets = (blur - blur[2:3]) * 255
        assert torch.allclose(offsets, offsets.mean(dim=(1, 2, 3), keepdim=True), atol=1e-4)
        first_frames.add(tuple(blur[2, 0].flatten().tolist()))
    assert len(first_frames) > 8  # and the transform does vary between items


def test_crop_larger_than_the_frames_raises(tmp_path):
    _write_video(tmp_path / "a", "blur", "sharp", names=NAMES)
    dataset = VideoWindowDataset(find_videos(tmp_path), crop=32)
    with pytest.raises(ValueError, match="crop=32"):
        dataset[0]


def test_flow_pair_dataset_yields_frames_flow_and_validity():
    frame0, frame1, flow, valid = FlowPairDataset(pairs=1, size=(20, 28))[0]
    assert frame0.shape == frame1.shape == (3, 20, 28)
    assert flow.shape == (2, 20, 28) and valid.shape == (20, 28) and valid.dtype == torch.bool
