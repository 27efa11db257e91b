"""Training checkpoints: the whole state of a run (model, discriminator, optimisers, loss scale, history,
config), written through a temporary name and read back with ``weights_only=True``."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from vsarvo.atomic import atomic_path
from vsarvo.model import ARVoConfig

if TYPE_CHECKING:
    from .loop import Trainer

__all__ = ["write_checkpoint", "read_checkpoint", "trainer_state", "load_trainer_state", "model_from_state",
           "export_weights", "main"]


def write_checkpoint(obj: Any, path: str | os.PathLike[str]) -> None:
    """torch.save to ``path`` through a temporary name: a killed run never leaves half a checkpoint."""
    with atomic_path(Path(path)) as tmp:
        torch.save(obj, tmp)


def read_checkpoint(path: str | os.PathLike[str], device: torch.device | str = "cpu") -> dict[str, Any]:
    """A checkpoint's tensors and plain values; pickled code in the file is refused (``weights_only``)."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist: pass the checkpoint.pt a run wrote")
    return torch.load(path, map_location=device, weights_only=True)


def _unwrapped(module: nn.Module) -> nn.Module:
    return module.module if hasattr(module, "module") else module


def trainer_state(trainer: Trainer) -> dict[str, Any]:
    """Everything ``--resume`` needs to continue ``trainer`` bit-exactly."""
    return {
        "step": trainer.step_index,
        "model": trainer.model.state_dict(),
        "disc": _unwrapped(trainer.disc).state_dict(),
        "opt": trainer.opt.state_dict(),
        "opt_d": trainer.opt_d.state_dict(),
        "scaler": trainer.scaler.state_dict(),
        "history": trainer.history,
        "config": json.dumps(trainer.cfg.to_dict()),
        "val_set": trainer.val_set,
        "val_since": trainer.val_since,
    }


def load_trainer_state(trainer: Trainer, state: dict[str, Any], path: str | os.PathLike[str]) -> bool:
    """Puts a checkpoint's ``state`` into ``trainer``; True when its validation set differs from the
    trainer's (best weights are then tracked afresh from the resumed step)."""
    saved_model = ARVoConfig.from_dict(json.loads(state["config"])["model"])
    if saved_model != trainer.cfg.model:
        raise ValueError(f"checkpoint {path} was trained with model config {saved_model.to_dict()}, "
                         f"not {trainer.cfg.model.to_dict()}: pass the model flags it was trained with")
    trainer.model.load_state_dict(state["model"])
    _unwrapped(trainer.disc).load_state_dict(state["disc"])
    trainer.opt.load_state_dict(state["opt"])
    trainer.opt_d.load_state_dict(state["opt_d"])
    if state["scaler"]:
        trainer.scaler.load_state_dict(state["scaler"])
    # else: saved by a run without AMP (a CPU or --no-amp run); a CUDA run resuming it starts its loss
    # scale afresh, which GradScaler's own load refuses to do from an empty state.
    trainer.history = state["history"]
    if "l1" in trainer.history:  # checkpoints written before the key was named for either pixel loss
        trainer.history["pixel"] = trainer.history.pop("l1")
    trainer.step_index = int(state["step"])
    if state.get("val_set") == trainer.val_set:
        trainer.val_since = int(state["val_since"])
        return False
    # Scores on another validation set are not comparable: best.safetensors starts over here.
    trainer.val_since = trainer.step_index
    return True


def model_from_state(state: dict[str, Any]) -> nn.Module:
    """The ARVo model a checkpoint's ``state`` (as :func:`read_checkpoint` returns it) holds, on the CPU."""
    from vsarvo.model import ARVo

    model = ARVo(ARVoConfig.from_dict(json.loads(state["config"])["model"]))
    model.load_state_dict(state["model"])
    return model


def export_weights(checkpoint: str | os.PathLike[str], out: str | os.PathLike[str]) -> int:
    """Writes the model of a training checkpoint as a weights file (safetensors + JSON sidecar) that
    ``arvo eval`` and the filter load, recording the step it was trained to; returns that step."""
    from vsarvo.weights import save_model

    state = read_checkpoint(checkpoint)
    save_model(model_from_state(state), out, extra={"train_steps": int(state["step"])})
    return int(state["step"])


def main(argv: list[str] | None = None) -> int:
    """``python -m vsarvo.training.checkpoint weights CHECKPOINT OUT``: export a checkpoint's model."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m vsarvo.training.checkpoint", description=main.__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    weights = commands.add_parser("weights", help="write the checkpoint's model as a .safetensors weights file")
    weights.add_argument("checkpoint", help="a training checkpoint (.pt), e.g. runs/arvo_tiny/rolling.pt")
    weights.add_argument("out", help="the .safetensors file to write (its .json sidecar goes beside it)")
    args = parser.parse_args(argv)
    if not Path(args.checkpoint).is_file():
        parser.error(f"no checkpoint at {args.checkpoint}")
    step = export_weights(args.checkpoint, args.out)
    print(f"wrote {args.out} (step {step})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
