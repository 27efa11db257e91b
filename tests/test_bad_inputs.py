"""One table of bad inputs and faults: each ends in a named error that says what to do, never a silent change.

Each case puts the fault in for real (a damaged file, a NaN pixel, ...) and asserts the error's type and
the words a user needs; none of them may change an output silently.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from vsarvo.model import ARVo, ARVoConfig
from vsarvo.weights import WeightsError, load_model, save_model

SMALL = ARVoConfig.tiny(channels=8, encoder_width=4, recon_width=8, recon_blocks=1, flow_width=0.1, disc_width=4)


def _saved(tmp_path: Path, model: ARVo | None = None) -> Path:
    return save_model(model or ARVo(SMALL), tmp_path / "w.safetensors")


def _damage_tensor_data(path: Path) -> None:
    """Flip bytes near the end of the file: the header stays valid, a tensor's values change."""
    data = bytearray(path.read_bytes())
    for i in range(len(data) - 64, len(data) - 32):
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))


def _nan_model() -> ARVo:
    model = ARVo(SMALL)
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] = float("nan")
    return model


def _drop_digest(path: Path) -> None:
    side = path.with_suffix(".json")
    meta = json.loads(side.read_text())
    del meta["sha256"]
    side.write_text(json.dumps(meta))


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        pytest.param(_damage_tensor_data, "is damaged", id="valid-header-damaged-tensor-data"),
        pytest.param(lambda p: p.with_suffix(".json").unlink(), "needs its .json config", id="sidecar-missing"),
        pytest.param(lambda p: p.with_suffix(".json").write_text("{"), "not valid JSON", id="sidecar-garbled"),
        pytest.param(lambda p: p.write_bytes(p.read_bytes()[:100]), "not a readable safetensors", id="truncated"),
    ],
)
def test_damaged_weight_files_are_refused_by_name(tmp_path: Path, fault, message: str) -> None:
    path = _saved(tmp_path)
    fault(path)
    with pytest.raises(WeightsError, match=message):
        load_model(path)


def test_weights_with_non_finite_values_are_refused_even_with_a_matching_digest(tmp_path: Path) -> None:
    path = _saved(tmp_path, _nan_model())
    with pytest.raises(WeightsError, match="NaN or infinite"):
        load_model(path)


def test_weights_without_a_recorded_digest_still_load(tmp_path: Path) -> None:
    # Sidecars written by hand or by older tools may lack the digest: nothing to check against, so they load.
    path = _saved(tmp_path)
    _drop_digest(path)
    assert load_model(path).config == SMALL


# --- arvo export: arguments the model cannot use end in exit 2, one line, no traceback, no file -------

@pytest.mark.parametrize(
    ("args", "words"),
    [
        pytest.param(["--size", "10x10"], "frames must be at least 64x64, got 10x10", id="size-below-minimum"),
        pytest.param(["--size", "abc"], "size must be WIDTHxHEIGHT", id="size-garbled"),
        pytest.param(["--size", "96x64", "--tile", "2"], "tile must be at least 4 pixels", id="tile-below-stride"),
        pytest.param(["--size", "96x64", "--tile", "32", "--tile-overlap", "8"], "tile_overlap must be at least",
                     id="overlap-below-radius"),
        pytest.param(["--size", "96x64", "--weights", "/nonexistent/w.safetensors"], "weights not found",
                     id="weights-missing"),
    ],
)
def test_export_refuses_unusable_arguments_without_writing(tmp_path: Path, args: list[str], words: str) -> None:
    import os
    import subprocess
    import sys

    env = dict(os.environ, VSARVO_CACHE=str(tmp_path / "cache"))
    result = subprocess.run([sys.executable, "-m", "vsarvo.cli", "export", "--part", "stage", *args],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 2, result.stderr
    assert words in result.stderr and "Traceback" not in result.stderr
    assert not any(path.is_file() for path in tmp_path.rglob("*")), "nothing may be written for refused arguments"
