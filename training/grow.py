"""Grow a trained ARVo into a wider one that computes exactly the same function, and keep training it.

Training a wider model from scratch on a CPU would throw away many hours of training. Instead every
parameter of the trained model is copied into the leading slices of the wider one, and the weights that
lead from the new channels into the old ones are zeroed: the old channels then compute what they did
before, the new channels compute something arbitrary that nothing reads yet, and the first gradient
step starts putting them to use (the zeroed weights receive a gradient, since their inputs are not zero).

Only the widths whose channels do not meet a correlation can grow this way: ``recon_width`` and
``encoder_width``. The feature width ``channels`` and the flow net's widths feed dot products over
channels (the correlation volumes), which new channels would change. The reconstruction also grows
deeper: the new ``recon_blocks`` residual blocks of each scale come after the trained ones with their
last convolution zeroed, so each starts as the identity (that convolution still receives a gradient,
its input being non-zero). The switches that only add inputs to the reconstruction net,
``frame_features`` and ``aligned_skip``, can be turned on (their new input channels come after the old
ones, with zeroed weights), never off. And ``cosine_correlation`` turns on with its temperatures at 0,
where every attention row is uniform: in weights trained with raw scores the rows are uniform already
(their features are far too small to sharpen a softmax), so the output stays the same to within their
tiny deviation from uniform. Adam moves a temperature by about the learning rate per step, so from 0
it stays near 0 for thousands of steps; ``--cosine-temperature T`` starts it at T instead, with the
reconstruction's weights on the aggregated maps zeroed (see ``grow_model``).

    python -m vsarvo.training.grow --checkpoint runs/arvo_tiny/rolling.pt \\
        --recon-width 32 --out runs/wide/checkpoint.pt
    python -m vsarvo.training.grow --checkpoint old.pt --recon-blocks 4 --out deep.pt
    python -m vsarvo.training.grow --checkpoint old.pt --frame-features --aligned-skip --out new.pt
    python -m vsarvo.training.grow --checkpoint old.pt --cosine-correlation --cosine-temperature 10 --out new.pt

writes a checkpoint that ``arvo train --resume`` continues with the grown configuration (pass the same
flags there). The optimiser keeps its moments for every parameter whose shape is unchanged; history and
the validation record carry over, so the best weights are still judged against the scores the smaller
model reached.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from vsarvo.model.arvo import ARVo
from vsarvo.model.config import ARVoConfig

from .checkpoint import write_checkpoint

__all__ = ["GROWABLE", "SWITCHABLE", "grow_config", "deepened_names", "widen_into", "grow_model",
           "carried_optimiser_state", "grow_checkpoint"]

#: The ARVoConfig widths (and the reconstruction's depth) that can grow without changing what the model computes.
GROWABLE = ("recon_width", "encoder_width", "recon_blocks")
#: The ARVoConfig switches that can be turned on without changing what the model computes.
SWITCHABLE = ("frame_features", "aligned_skip", "cosine_correlation")


def grow_config(old: ARVoConfig, **changes: int | bool) -> ARVoConfig:
    """``old`` with some GROWABLE widths raised and some SWITCHABLE switches on; refuses anything else."""
    for name, value in changes.items():
        if name not in GROWABLE + SWITCHABLE:
            raise ValueError(f"only {', '.join(GROWABLE + SWITCHABLE)} can grow, not {name}")
        if name in SWITCHABLE and not value and getattr(old, name):
            raise ValueError(f"{name} can only be turned on, not off")
        if name in GROWABLE and value < getattr(old, name):
            raise ValueError(f"{name} can only grow: {getattr(old, name)} -> {value}")
    return dataclasses.replace(old, **changes)


def deepened_names(old: ARVoConfig, new: ARVoConfig) -> dict[str, str]:
    """Parameter names of ``old`` that move in ``new`` when the reconstruction is deeper: the output
    convolution of ``decode_full`` comes after its residual blocks, so its index shifts."""
    if old.recon_blocks == new.recon_blocks:
        return {}
    head = "stage.reconstruction.decode_full."
    return {f"{head}{old.recon_blocks}.{p}": f"{head}{new.recon_blocks}.{p}" for p in ("weight", "bias")}


@torch.no_grad()
def widen_into(old: nn.Module, new: nn.Module, renamed: dict[str, str] | None = None) -> None:
    """Copy ``old``'s parameters into the leading slices of ``new``'s (same names, or the names
    ``renamed`` gives; each dimension at least as large) and zero every weight from a new input
    channel into an old output channel."""
    renamed = renamed or {}
    modules = dict(new.named_modules())
    new_params = dict(new.named_parameters())
    for old_name, source in old.named_parameters():
        name = renamed.get(old_name, old_name)
        target = new_params[name]
        if target.shape == source.shape:
            target.copy_(source)
            continue
        if target.dim() != source.dim() or any(t < s for t, s in zip(target.shape, source.shape)):
            raise ValueError(f"{name}: cannot widen {tuple(source.shape)} into {tuple(target.shape)}")
        if target.dim() > 1:
            module = modules[name.rpartition(".")[0]]
            # Conv weights are [out, in, ...]; transposed convs store [in, out, ...].
            out_dim, in_dim = (1, 0) if isinstance(module, nn.ConvTranspose2d) else (0, 1)
            from_new_inputs = [slice(None)] * target.dim()
            from_new_inputs[out_dim] = slice(0, source.shape[out_dim])
            from_new_inputs[in_dim] = slice(source.shape[in_dim], None)
            target[tuple(from_new_inputs)] = 0
        target[tuple(slice(0, s) for s in source.shape)] = source


@torch.no_grad()
def grow_model(old: ARVo, new: ARVo, *, cosine_temperature: float = 0.0) -> None:
    """``widen_into`` plus the switches' starting values. A cosine correlation switched on starts at
    ``cosine_temperature``: at 0 every attention row is uniform, as raw scores on small features are,
    so the output is kept; above 0 the attention is sharp from the first step, and the reconstruction
    weights that read the aggregated maps (tuned to the spatially constant maps of uniform rows) are
    zeroed, so the new maps enter as new inputs do: the output loses what those constant maps added and
    the zeroed weights learn to read the new ones."""
    if cosine_temperature < 0:
        raise ValueError(f"cosine_temperature must be >= 0, got {cosine_temperature}")
    widen_into(old, new, deepened_names(old.config, new.config))
    recon = new.stage.reconstruction
    for blocks in (recon.quarter_blocks, recon.half_blocks, recon.decode_full[:-1]):
        for block in list(blocks)[old.config.recon_blocks:]:
            block.body[-1].weight.zero_()
            block.body[-1].bias.zero_()
    aggregation = new.stage.aggregation
    if new.config.cosine_correlation and not old.config.cosine_correlation and aggregation is not None:
        aggregation.temperature.fill_(cosine_temperature)
        if cosine_temperature > 0:
            new.stage.reconstruction.fuse[0].weight[:, :new.stage.aggregated_channels] = 0


def carried_optimiser_state(old_state: dict[str, Any], old: nn.Module, new: nn.Module,
                            renamed: dict[str, str] | None = None) -> dict[str, Any]:
    """The Adam state of ``old`` (built over ``old.parameters()``, as the trainer does) rewritten for
    ``new``: the moments of every parameter whose name and shape are unchanged carry over, so training
    resumes without a fresh optimiser's first large steps; reshaped and new parameters start afresh.
    ``renamed`` maps the old names that moved, as for ``widen_into``. (The discriminator is not grown,
    so its optimiser state carries over whole.)"""
    renamed = renamed or {}
    old_params = {renamed.get(name, name): (i, p.shape) for i, (name, p) in enumerate(old.named_parameters())}
    new_params = list(new.named_parameters())
    state: dict[int, Any] = {}
    for i, (name, p) in enumerate(new_params):
        j, shape = old_params.get(name, (None, None))
        if shape == p.shape and j in old_state["state"]:
            state[i] = old_state["state"][j]
    groups = [dict(old_state["param_groups"][0], params=list(range(len(new_params))))]
    return {"state": state, "param_groups": groups}


def grow_checkpoint(checkpoint: str | Path, out: str | Path, *, cosine_temperature: float = 0.0,
                    **changes: int | bool) -> ARVoConfig:
    """Read a training checkpoint, grow its model, write a checkpoint ``arvo train --resume`` accepts."""
    state: dict[str, Any] = torch.load(checkpoint, map_location="cpu", weights_only=True)
    train_config = json.loads(state["config"])
    old_config = ARVoConfig.from_dict(train_config["model"])
    new_config = grow_config(old_config, **changes)
    old_model, new_model = ARVo(old_config), ARVo(new_config)
    old_model.load_state_dict(state["model"])
    grow_model(old_model, new_model, cosine_temperature=cosine_temperature)
    train_config["model"] = new_config.to_dict()
    opt = carried_optimiser_state(state["opt"], old_model, new_model, deepened_names(old_config, new_config))
    grown = dict(state, model=new_model.state_dict(), config=json.dumps(train_config), opt=opt)
    write_checkpoint(grown, out)
    return new_config


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="training checkpoint (.pt) to grow")
    parser.add_argument("--out", required=True, help="where to write the grown checkpoint")
    for name in GROWABLE:
        parser.add_argument("--" + name.replace("_", "-"), type=int)
    for name in SWITCHABLE:
        parser.add_argument("--" + name.replace("_", "-"), action="store_true", default=None)
    parser.add_argument("--cosine-temperature", type=float, default=0.0,
                        help="with --cosine-correlation: the starting temperature (0 keeps the output; "
                             "above 0 the attention is sharp at once and the reconstruction relearns "
                             "to read the aggregated maps)")
    args = parser.parse_args(argv)
    changes = {name: getattr(args, name) for name in GROWABLE + SWITCHABLE if getattr(args, name) is not None}
    if not changes:
        parser.error(f"give at least one width or switch: {', '.join('--' + n.replace('_', '-') for n in GROWABLE + SWITCHABLE)}")
    if not Path(args.checkpoint).is_file():
        parser.error(f"no checkpoint at {args.checkpoint}")
    try:
        config = grow_checkpoint(args.checkpoint, args.out, cosine_temperature=args.cosine_temperature, **changes)
    except ValueError as exc:
        parser.error(str(exc))
    flags = " ".join([f"--{n.replace('_', '-')} {getattr(config, n)}" for n in GROWABLE]
                     + [f"--{'' if getattr(config, n) else 'no-'}{n.replace('_', '-')}" for n in SWITCHABLE])
    print(f"wrote {args.out}; continue with: arvo train --resume {args.out} {flags} ...", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
