"""Supervised training of the flow net (PWC-Net) on synthetic pairs with known flow.

ARVo warps each neighbour onto the reference with PWC-Net before correlating features; the paper
starts from a PWC-Net trained on FlyingChairs/Things. No such weights can be downloaded here, so the
flow net learns from procedural pairs whose flow is known exactly (:func:`make_flow_pair`): half of
every batch sharp (stage 2 sees restored frames), half blurred with the training blur (stage 1 sees
blurry ones). The loss is the end-point error where the flow is defined.

``arvo train --flow-pretrain-steps N`` runs this before training from scratch. This module's command
does it for an existing training checkpoint, replacing its flow net's weights and leaving everything
else as it was, so that training can resume with a flow net that actually aligns:

    python -m vsarvo.training.flow_pretrain --checkpoint runs/arvo_tiny/rolling.pt \\
        --steps 1200 --out runs/flow/checkpoint.pt

It reports the end-point error on held-out pairs (source images training never sees, their own seed)
before and after, next to the error of predicting no motion at all.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from vsarvo.atomic import write_text_atomic
from vsarvo.model.arvo import ARVo
from vsarvo.model.config import ARVoConfig
from vsarvo.model.flow import PWCNet

from .data.procedural import FLOW_PAIR_SETTINGS, ClipSettings, make_flow_pair
from .data.rendered import TRAIN_BLUR
from .checkpoint import write_checkpoint

__all__ = ["PAIR_MIX", "FlowPairs", "held_out_pairs", "end_point_error", "fit_flow", "refine_checkpoint"]

#: Batches alternate between these settings: sharp pairs and pairs blurred like the training clips.
PAIR_MIX: tuple[ClipSettings, ...] = (FLOW_PAIR_SETTINGS, TRAIN_BLUR)

FlowPairs = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]  # im1, im2, flow, valid


def render_pairs(rng: np.random.Generator, n: int, size: int, *, split: str = "train",
                 mix: Sequence[ClipSettings] = PAIR_MIX) -> FlowPairs:
    """``n`` pairs of ``size``^2, settings taken in turn from ``mix``; stacked (im1, im2, flow, valid)."""
    pairs = [make_flow_pair(rng, (size, size), mix[i % len(mix)], split=split) for i in range(n)]
    return tuple(torch.stack(t) for t in zip(*pairs))  # type: ignore[return-value]


def held_out_pairs(n: int = 32, size: int = 128, seed: int = 20_000) -> FlowPairs:
    """The fixed evaluation pairs: test-split source images, a seed no training batch uses."""
    return render_pairs(np.random.default_rng(seed), n, size, split="test")


@torch.no_grad()
def end_point_error(flow_net: nn.Module | None, pairs: FlowPairs, *, batch: int = 8) -> float:
    """Mean end-point error (px) where the flow is defined; ``flow_net=None`` scores zero flow."""
    im1, im2, flow, valid = pairs
    if flow_net is None:
        return flow.norm(dim=1)[valid].mean().item()
    was_training = flow_net.training
    flow_net.eval()
    device = next(flow_net.parameters()).device
    errors = []
    for i in range(0, im1.shape[0], batch):
        sl = slice(i, i + batch)
        pred = flow_net(im1[sl].to(device), im2[sl].to(device))
        errors.append((pred - flow[sl].to(device)).norm(dim=1)[valid[sl].to(device)])
    flow_net.train(was_training)
    return torch.cat(errors).mean().item()


def fit_flow(flow_net: nn.Module, steps: int, *, lr: float, batch: int = 8, size: int = 128, seed: int = 0,
             clip_grad: float = 1.0, log_every: int = 50, mix: Sequence[ClipSettings] = PAIR_MIX,
             held_out: FlowPairs | None = None,
             batches: Callable[[int], FlowPairs] | None = None) -> list[list[float]]:
    """Train ``flow_net`` for ``steps`` batches of fresh pairs; returns [[step, training EPE], ...].

    Adam with a cosine decay from ``lr`` to lr/20. Every ``log_every`` steps progress goes to stderr,
    with the held-out EPE when ``held_out`` is given. Batch ``i`` is ``batches(i)``, by default ``batch``
    fresh pairs that depend only on ``seed`` and ``i``.
    """
    if batches is None:
        def batches(i: int) -> FlowPairs:
            return render_pairs(np.random.default_rng([seed, i, 77]), batch, size, mix=mix)

    device = next(flow_net.parameters()).device
    flow_net.requires_grad_(True)
    flow_net.train()
    opt = torch.optim.Adam(flow_net.parameters(), lr=lr)
    history: list[list[float]] = []
    start = time.time()
    for i in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * i / max(steps, 1))))
        im1, im2, flow, valid = (t.to(device) for t in batches(i))
        err = (flow_net(im1, im2) - flow).norm(dim=1)[valid]
        loss = err.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(flow_net.parameters(), clip_grad)
        opt.step()
        history.append([i + 1, loss.item()])
        if (i + 1) % log_every == 0 or i + 1 == steps:
            recent = np.mean([e for _, e in history[-log_every:]])
            msg = f"flow {i + 1}/{steps}: training EPE {recent:.3f} px"
            if held_out is not None:
                msg += f", held-out EPE {end_point_error(flow_net, held_out):.3f} px"
            rate = (i + 1) / (time.time() - start)
            print(f"{msg} ({rate:.2f} it/s, ETA {(steps - i - 1) / rate / 60:.1f} min)", file=sys.stderr, flush=True)
    return history


def refine_checkpoint(checkpoint: str | Path, out: str | Path, *, steps: int, lr: float, batch: int = 8,
                      size: int = 128, seed: int = 0, log_every: int = 50, held_out: int = 32,
                      fresh: bool = False) -> dict[str, float]:
    """Retrain the flow net of a training checkpoint; write the result where ``arvo train --resume``
    reads it. ``held_out`` pairs score it; ``fresh`` starts the flow net from a new random
    initialisation (seeded by ``seed``) instead of its current weights. Everything but the flow net's
    weights (and its optimiser moments, which described the old weights and are dropped) is kept.
    Returns the held-out EPEs: zero flow, before, after."""
    state: dict[str, Any] = torch.load(checkpoint, map_location="cpu", weights_only=True)
    config = ARVoConfig.from_dict(json.loads(state["config"])["model"])
    if not config.use_flow:
        raise ValueError(f"{checkpoint} has no flow net (use_flow is off)")
    model = ARVo(config)
    model.load_state_dict(state["model"])
    if fresh:
        torch.manual_seed(seed)
        model.stage.flow = PWCNet(width=config.flow_width)
    flow_net = model.stage.flow
    pairs = held_out_pairs(held_out, size=size)
    report = {"zero_flow_epe": end_point_error(None, pairs), "epe_before": end_point_error(flow_net, pairs)}
    print(f"held-out EPE: zero flow {report['zero_flow_epe']:.3f} px, flow net {report['epe_before']:.3f} px",
          file=sys.stderr, flush=True)
    trained = fit_flow(flow_net, steps, lr=lr, batch=batch, size=size, seed=seed, log_every=log_every, held_out=pairs)
    report["epe_after"] = end_point_error(flow_net, pairs)

    history = state["history"]
    offset = int(history["flow_epe"][-1][0]) if history.get("flow_epe") else 0
    history["flow_epe"] = list(history.get("flow_epe", [])) + [[offset + s, e] for s, e in trained]
    # Adam's state is keyed by parameter position in model.parameters(); drop the flow net's entries.
    flow_ids = {id(p) for p in flow_net.parameters()}
    positions = {i for i, p in enumerate(model.parameters()) if id(p) in flow_ids}
    opt = state["opt"]
    opt["state"] = {k: v for k, v in opt["state"].items() if int(k) not in positions}
    refined = dict(state, model=model.state_dict(), history=history, opt=opt)
    write_checkpoint(refined, out)
    return report


def measure_weights(weights: str | Path, *, held_out: int = 32, size: int = 128) -> dict[str, Any]:
    """The held-out end-point error of a weights file's flow net, next to predicting no motion.

    A flow net that trains jointly with the restorer and no flow supervision can drift into something that
    no longer aligns (an error above the no-motion one); this is how the model card checks the shipped file.
    """
    from vsarvo.digest import file_sha256
    from vsarvo.weights import load_model

    model = load_model(weights)
    if model.stage.flow is None:
        raise ValueError(f"{weights} has no flow net (use_flow is off)")
    pairs = held_out_pairs(held_out, size=size)
    return {"weights": Path(weights).name, "sha256": file_sha256(weights), "pairs": held_out, "size": size,
            "zero_flow_epe": end_point_error(None, pairs), "epe": end_point_error(model.stage.flow, pairs)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--measure", metavar="WEIGHTS",
                        help="only score the flow net of a .safetensors file on the held-out pairs (with --report: "
                             "write the result there) and train nothing")
    parser.add_argument("--checkpoint", help="training checkpoint (.pt) whose flow net to retrain")
    parser.add_argument("--out", help="where to write the checkpoint with the retrained flow net")
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--lr", type=float, default=4e-4, help="Adam learning rate at the start (cosine decay to lr/20)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--size", type=int, default=128, help="pair edge in pixels")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    parser.add_argument("--log-every", type=int, default=50)
    parser.add_argument("--report", help="also write the held-out EPEs (zero flow, before, after) and the settings here as JSON")
    parser.add_argument("--fresh", action="store_true",
                        help="start from a new random flow net instead of the checkpoint's (e.g. after the flow net's layout changed)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.measure:
        return _measure(parser, args)
    if not args.checkpoint or not args.out:
        parser.error("give --checkpoint and --out (or --measure WEIGHTS to only score a flow net)")
    if not Path(args.checkpoint).is_file():
        parser.error(f"no checkpoint at {args.checkpoint}")
    if args.steps < 1:
        parser.error("--steps must be at least 1")
    try:
        report = refine_checkpoint(args.checkpoint, args.out, steps=args.steps, lr=args.lr, batch=args.batch_size,
                                   size=args.size, seed=args.seed, log_every=args.log_every,
                                   fresh=args.fresh)
    except ValueError as exc:
        parser.error(str(exc))
    report.update(steps=args.steps, lr=args.lr, batch_size=args.batch_size, size=args.size, fresh=args.fresh)
    print(json.dumps(report))
    if args.report:
        write_text_atomic(Path(args.report), json.dumps(report, indent=2))
    print(f"wrote {args.out}; continue with: arvo train --resume {args.out} ...", file=sys.stderr)
    return 0


def _measure(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if not Path(args.measure).is_file():
        parser.error(f"--measure {args.measure}: no such weights file")
    try:
        report = measure_weights(args.measure, size=args.size)
    except ValueError as exc:
        parser.error(str(exc))
    print(f"{args.measure}: flow net end-point error {report['epe']:.2f} px on held-out pairs "
          f"(predicting no motion: {report['zero_flow_epe']:.2f} px)", file=sys.stderr)
    if args.report:
        write_text_atomic(Path(args.report), json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
