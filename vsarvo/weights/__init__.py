"""Shipped default weights and the safetensors + JSON format every vsarvo weight file uses.

A weight file ``name.safetensors`` holds the model's state dict; ``name.json`` beside it holds
``{"config": ARVoConfig fields, "config_digest": ..., "sha256": <hash of the .safetensors>, ...}``.
Nothing here unpickles anything.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file

from vsarvo.atomic import atomic_path, write_text_atomic
from vsarvo.digest import file_sha256
from vsarvo.model import ARVo, ARVoConfig

__all__ = ["DEFAULT_WEIGHTS", "WeightsError", "default_weights_path", "load_model", "save_model", "file_sha256"]

DEFAULT_WEIGHTS = "arvo_tiny"


class WeightsError(RuntimeError):
    """A weight file is missing, corrupt or does not match its config."""


def default_weights_path() -> Path:
    """The shipped default weights (``vsarvo/weights/arvo_tiny.safetensors``)."""
    return Path(__file__).with_name(f"{DEFAULT_WEIGHTS}.safetensors")


def _sidecar(path: Path) -> Path:
    return path.with_suffix(".json")


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON sidecar of a weight file."""
    side = _sidecar(Path(path))
    if not side.is_file():
        raise WeightsError(f"{side} is missing: every .safetensors weight file needs its .json config beside it")
    try:
        return json.loads(side.read_text())
    except json.JSONDecodeError as exc:
        raise WeightsError(f"{side} is not valid JSON ({exc}); re-export the weights") from exc


def load_model(path: str | os.PathLike[str] | None = None) -> ARVo:
    """Build an ARVo from a weight file (default: the shipped weights), in eval mode on the CPU."""
    path = Path(path) if path is not None else default_weights_path()
    if not path.is_file():
        raise WeightsError(f"weights not found: {path} (pass weights= a .safetensors file written by 'arvo train')")
    meta = read_metadata(path)
    try:
        config = ARVoConfig.from_dict(meta["config"])
    except (KeyError, TypeError, ValueError) as exc:
        raise WeightsError(f"{_sidecar(path)} has no valid 'config' ({exc})") from exc
    model = ARVo(config)
    try:
        state = load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types for truncated/garbled files
        raise WeightsError(f"{path} is not a readable safetensors file ({exc}); re-download or re-train") from exc
    _check_digest(path, meta)
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # tensors whose shapes differ from the config's
        raise WeightsError(f"{path} does not match its config ({str(exc).splitlines()[1].strip()})") from exc
    if missing or unexpected:
        raise WeightsError(
            f"{path} does not match its config: missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}"
        )
    _check_finite(path, state)
    return model.eval()


def _check_digest(path: Path, meta: dict[str, Any]) -> None:
    """The sidecar's SHA-256, where it has one, must be the file's: a damaged tensor would load unnoticed."""
    recorded = meta.get("sha256")
    if recorded is None:
        return
    actual = file_sha256(path)
    if actual != recorded:
        raise WeightsError(
            f"{path} is damaged: its SHA-256 is {actual[:16]}..., its sidecar {_sidecar(path).name} records "
            f"{str(recorded)[:16]}...; reinstall vsarvo (shipped weights) or copy the file again from where it was trained"
        )


def _check_finite(path: Path, state: dict[str, Any]) -> None:
    bad = [name for name, tensor in state.items() if tensor.is_floating_point() and not bool(tensor.isfinite().all())]
    if bad:
        raise WeightsError(f"{path} holds NaN or infinite values in {len(bad)} tensor(s) ({', '.join(sorted(bad)[:3])}); it cannot be used: re-train or use another checkpoint")


def save_model(model: ARVo, path: str | os.PathLike[str], extra: dict[str, Any] | None = None) -> Path:
    """Write ``path`` (.safetensors) and its JSON sidecar atomically (temp name, then rename)."""
    path = Path(path)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp))
        meta = {"config": model.config.to_dict(), "config_digest": model.config.digest(), "sha256": file_sha256(tmp)}
        meta.update(extra or {})
        write_text_atomic(_sidecar(path), json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return path
