"""`arvo train` (also ``python -m vsarvo.training.train``): progressive generative-adversarial training of
ARVo (paper Sec. 3.4) from the command line.

Every TrainConfig setting and every ARVoConfig field is a flag; the model flags start from ``--preset``.
``torchrun --nproc_per_node=N -m vsarvo.training.train ...`` trains on N GPUs (DistributedDataParallel).
Each run appends a record of itself (command, config, steps, best validation) to ``OUT_DIR/segments.jsonl``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
import typing
from pathlib import Path
from typing import Any, Sequence

from vsarvo.atomic import write_text_atomic
from vsarvo.model import ARVoConfig

from .config import TrainConfig, model_config, model_presets
from .loop import Trainer, log

__all__ = ["add_parser", "add_model_arguments", "model_config_from_args", "command_line", "main"]


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _scalar_type(hint: Any) -> type:
    """int, float, bool or str: the non-None member of a field's type hint."""
    members = [m for m in typing.get_args(hint) if m is not type(None)] or [hint]
    return members[0] if members[0] in (int, float, bool) else str


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """``--preset`` and one flag per ARVoConfig field (help from the field's ``help`` metadata); a flag
    left out keeps the preset's value."""
    g = parser.add_argument_group("model (ARVoConfig; a flag left out keeps the --preset's value)")
    g.add_argument("--preset", choices=sorted(model_presets()), default="tiny", help="the model configuration to start from")
    hints = typing.get_type_hints(ARVoConfig)
    for f in dataclasses.fields(ARVoConfig):
        kind = _scalar_type(hints[f.name])
        common = dict(dest=f.name, default=argparse.SUPPRESS, help=f.metadata.get("help", f.name))
        if kind is bool:
            g.add_argument(_flag(f.name), action=argparse.BooleanOptionalAction, **common)
        else:
            g.add_argument(_flag(f.name), type=kind, **common)


def model_config_from_args(args: argparse.Namespace) -> ARVoConfig:
    """The preset's ARVoConfig with the model flags given on the command line applied."""
    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(ARVoConfig) if hasattr(args, f.name)}
    return model_config(args.preset, **overrides)


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig setting, with its default."""
    defaults = TrainConfig()
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        if f.name == "model":
            continue
        default = getattr(defaults, f.name)
        kind = _scalar_type(hints[f.name])
        if kind is bool:
            parser.add_argument(_flag(f.name), action=argparse.BooleanOptionalAction, default=default)
        else:
            parser.add_argument(_flag(f.name), type=kind, default=default)


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("train", help="train ARVo weights", description=__doc__,
                              formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_model_arguments(p)
    add_train_arguments(p)
    p.add_argument("--resume", metavar="CHECKPOINT", help="continue from a checkpoint.pt (bit-exact)")
    p.set_defaults(func=run_from_args)


def _setting(name: str, value: Any) -> list[str]:
    if isinstance(value, bool):
        return [_flag(name) if value else "--no-" + name.replace("_", "-")]
    return [_flag(name), str(value)]


def command_line(cfg: TrainConfig, preset: str, resume: str | None = None) -> str:
    """The ``arvo train`` command that reproduces ``cfg``: the preset, then every setting that differs
    from its default (model fields: from the preset's)."""
    words = ["arvo", "train", "--preset", preset]
    base = model_config(preset)
    for f in dataclasses.fields(ARVoConfig):
        if getattr(cfg.model, f.name) != getattr(base, f.name):
            words += _setting(f.name, getattr(cfg.model, f.name))
    defaults = TrainConfig()
    for f in dataclasses.fields(TrainConfig):
        value = getattr(cfg, f.name)
        if f.name != "model" and value != getattr(defaults, f.name) and value is not None:
            words += _setting(f.name, value)
    if resume:
        words += ["--resume", resume]
    return shlex.join(words)


def run_from_args(args: argparse.Namespace) -> int:
    fields = {f.name for f in dataclasses.fields(TrainConfig)} - {"model"}
    cfg = TrainConfig(model=model_config_from_args(args), **{k: getattr(args, k) for k in fields})
    if args.resume and not Path(args.resume).is_file():
        # Before the training clips are rendered.
        raise ValueError(f"--resume {args.resume} does not exist: pass the checkpoint.pt a run wrote")
    trainer = Trainer(cfg, command=command_line(cfg, args.preset, args.resume))
    if args.resume:
        trainer.load_checkpoint(args.resume)
        log(f"resumed at step {trainer.step_index}")
    elif cfg.flow_pretrain_steps:
        epe = trainer.pretrain_flow(cfg.flow_pretrain_steps)
        log(f"flow pretraining done: EPE {epe:.3f} px")
    Path(cfg.out_dir).mkdir(parents=True, exist_ok=True)
    write_text_atomic(Path(cfg.out_dir) / "train_config.json", json.dumps(cfg.to_dict(), indent=2))
    trainer.fit()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m vsarvo.training.train``: the same as ``arvo train``."""
    from vsarvo.cli import main as arvo

    return arvo(["train", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
