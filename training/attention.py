"""How much the correlation volume of a set of weights actually attends: a probe, not a benchmark.

    python -m vsarvo.training.attention [--weights W.safetensors | --checkpoint C.pt]

renders one held-out procedural clip (the evaluation's blur), runs the encoder on three consecutive
frames and reports, per pyramid level of the ref<-prev pair: the mean entropy of the attention rows
against the uniform rows' entropy (equal means the volume averages everything, whatever the
features), the aggregated map's spatial standard deviation relative to that of V (near 0: a
spatially constant map, the global mean of V), the features' mean norm and, for cosine volumes, the
learned temperature. Prints a table on stderr; ``--json`` writes the figures too.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from vsarvo.atomic import write_text_atomic
from vsarvo.model.arvo import ARVo
from vsarvo.weights import load_model

from .eval import TEST_BLUR
from .data.procedural import make_clip

__all__ = ["attention_figures", "attention_report", "load_checkpoint_model"]


def load_checkpoint_model(path: str | Path) -> ARVo:
    """The model of a training checkpoint (.pt), in eval mode on the CPU."""
    from .checkpoint import model_from_state, read_checkpoint

    return model_from_state(read_checkpoint(path)).eval()


def attention_report(model: ARVo, *, size: int = 160, seed: int = 424242) -> dict[str, Any]:
    """Per-level figures of the ref<-prev pair on one held-out clip (see the module docstring)."""
    blur, _, _ = make_clip(np.random.default_rng(seed), 3, (size, size), TEST_BLUR, split="test")
    return attention_figures(model, blur)


@torch.no_grad()
def attention_figures(model: ARVo, frames: torch.Tensor) -> dict[str, Any]:
    """Per-level figures of the ref<-prev pair of three consecutive frames [3, 3, H, W] in [0, 1]."""
    stage = model.stage
    if stage.aggregation is None:
        raise ValueError("this model has no correlation volume (levels = 0)")
    if frames.dim() != 4 or frames.shape[0] != 3:
        raise ValueError(f"expected three frames [3, 3, H, W], got {tuple(frames.shape)}")
    feats = stage.encoder(frames)
    ref, prev = feats[1:2], feats[0:1]
    aggregation = stage.aggregation
    aggregated = aggregation(ref, [prev])
    c = model.config.channels
    levels = []
    for k in range(1, aggregation.levels + 1):
        pooled = F.max_pool2d(prev, 2 ** k, 2 ** k, ceil_mode=True)
        q, key = aggregation.query_key(ref, pooled, k)
        rows = torch.softmax(q.flatten(2).transpose(1, 2) @ key.flatten(2), dim=-1)
        values = aggregation.phi[k - 1](pooled)
        levels.append({
            "level": k,
            "entropy": float(-(rows * rows.clamp_min(1e-12).log()).sum(-1).mean()),
            "uniform_entropy": math.log(pooled.shape[-2] * pooled.shape[-1]),
            "spatial_std_ratio": float(aggregated[:, (k - 1) * c:k * c].std(dim=(2, 3)).mean()
                                       / values.std(dim=(2, 3)).mean().clamp_min(1e-12)),
            "temperature": None if aggregation.temperature is None else float(aggregation.temperature[k - 1]),
        })
    return {"feature_norm": float(feats.norm(dim=1).mean()), "cosine": aggregation.temperature is not None,
            "levels": levels}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--weights", help="a .safetensors file (default: the shipped weights)")
    source.add_argument("--checkpoint", help="a training checkpoint (.pt)")
    parser.add_argument("--size", type=int, default=160, help="frame edge of the probe clip")
    parser.add_argument("--json", help="also write the figures here")
    parser.add_argument("--threads", type=int)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.checkpoint and not Path(args.checkpoint).is_file():
        parser.error(f"no checkpoint at {args.checkpoint}")
    model = load_checkpoint_model(args.checkpoint) if args.checkpoint else load_model(args.weights)
    try:
        report = attention_report(model, size=args.size)
    except ValueError as exc:
        parser.error(str(exc))
    print(f"{'cosine' if report['cosine'] else 'raw'} volume; mean feature norm {report['feature_norm']:.3f}",
          file=sys.stderr)
    print("| level | entropy | uniform | aggregated / V spatial std | temperature |\n|---|---|---|---|---|",
          file=sys.stderr)
    for row in report["levels"]:
        temperature = "-" if row["temperature"] is None else f"{row['temperature']:.3f}"
        print(f"| {row['level']} | {row['entropy']:.3f} | {row['uniform_entropy']:.3f} | "
              f"{row['spatial_std_ratio']:.2e} | {temperature} |", file=sys.stderr)
    if args.json:
        write_text_atomic(Path(args.json), json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
