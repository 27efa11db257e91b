"""`python -m vsarvo.training.ablate`: the paper's ablations retrained at one reduced budget, one table.

Variants (all from the same starting configuration, data, seed and step budget):
  full          the configuration as given (paper structure: L = 3, flow, two stages)
  stages-1      one stage instead of two
  levels-0      no correlation volume (encoder features straight to the reconstruction)
  no-flow       no flow alignment
  single-frame  one stage that only ever sees the reference frame (neighbours replaced by it)
Each is trained for ``--steps`` steps and scored with ``arvo eval``'s metrics on held-out procedural
clips; the table (markdown) and JSON go to ``--out``. Numbers at such budgets rank the variants only
roughly; the table states the budget it was made with. With ``--flow-pretrain-steps N`` one flow net
is first trained on synthetic pairs with known flow and every variant that aligns starts from it,
frozen (the paper starts from a pretrained PWC-Net; a random one only adds noise at these budgets).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, Sequence

import torch

from vsarvo.atomic import write_text_atomic
from vsarvo.model import ARVoConfig
from vsarvo.model.flow import PWCNet

from .eval import evaluate, procedural_test_set
from .flow_pretrain import end_point_error, fit_flow, held_out_pairs
from .data.rendered import RenderedClips
from .config import TrainConfig
from .loop import Trainer, log
from .train import add_model_arguments, model_config_from_args

__all__ = ["VARIANTS", "SingleFrame", "variant_config", "main"]

VARIANTS = ("full", "stages-1", "levels-0", "no-flow", "single-frame")


class SingleFrame(torch.utils.data.Dataset):
    """Wraps a window dataset: every frame of the blurry window becomes the centre frame."""

    def __init__(self, base: torch.utils.data.Dataset) -> None:
        self.base = base

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        blur, sharp = self.base[index]
        mid = blur.shape[0] // 2
        return blur[mid:mid + 1].expand_as(blur).contiguous(), sharp


def variant_config(base: ARVoConfig, variant: str) -> ARVoConfig:
    changes: dict[str, Any] = {
        "full": {},
        "stages-1": {"stages": 1},
        "levels-0": {"levels": 0},
        "no-flow": {"use_flow": False},
        "single-frame": {"stages": 1, "use_flow": False},
    }[variant]
    return dataclasses.replace(base, **changes)


def run(args: argparse.Namespace) -> dict[str, Any]:
    base = model_config_from_args(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.threads:
        torch.set_num_threads(args.threads)
    test = procedural_test_set(clips=args.test_clips, frames=args.test_frames, size=args.test_size, seed=args.test_seed)
    results: dict[str, Any] = {"budget": {"steps": args.steps, "batch_size": args.batch_size, "crop": args.crop,
                                          "clips": args.clips, "base_config": base.to_dict()}, "variants": {}}
    flow_state = None
    if args.flow_pretrain_steps:
        torch.manual_seed(args.seed)
        flow_net = PWCNet(width=base.flow_width)
        fit_flow(flow_net, args.flow_pretrain_steps, lr=args.flow_lr, seed=args.seed, log_every=max(1, args.flow_pretrain_steps // 5))
        flow_state = flow_net.state_dict()
        pairs = held_out_pairs()
        results["budget"].update(flow_pretrain_steps=args.flow_pretrain_steps,
                                 flow_epe=end_point_error(flow_net, pairs), zero_flow_epe=end_point_error(None, pairs))
    for variant in args.variants:
        config = variant_config(base, variant)
        cfg = TrainConfig(model=config, out_dir=str(out / variant), steps=args.steps, batch_size=args.batch_size,
                          crop=args.crop, lr=args.lr, adv_weight=args.adv_weight, seed=args.seed,
                          checkpoint_every=args.steps, validate_every=10 ** 9, log_every=max(1, args.steps // 5),
                          freeze_flow_steps=args.steps if flow_state is not None else 0)
        # Same 5-frame windows for every variant: a 1-stage model trains on their middle three frames.
        train = RenderedClips(clips=args.clips, frames=args.frames, size=args.size, window=5, crop=args.crop,
                              seed=args.seed, cache=out / f"clips_{args.clips}x{args.frames}x{args.size}.pt")
        dataset = SingleFrame(train) if variant == "single-frame" else train
        log(f"ablation {variant}: {config.to_dict()}")
        trainer = Trainer(cfg, dataset=dataset, val_dataset=None)
        if flow_state is not None and trainer.model.stage.flow is not None:
            trainer.model.stage.flow.load_state_dict(flow_state)
        trainer.fit()
        model = trainer.model.eval()
        report = evaluate(model, test, crop=4, single_frame=variant == "single-frame")
        results["variants"][variant] = {"psnr": report["model"]["mean_psnr"], "ssim": report["model"]["mean_ssim"],
                                        "input_psnr": report["input"]["mean_psnr"], "config": config.to_dict()}
    write_outputs(results, out)
    return results


def write_outputs(results: dict[str, Any], out: Path) -> None:
    b = results["budget"]
    flow = (f" Variants with flow start from one flow net pretrained for {b['flow_pretrain_steps']} steps (held-out "
            f"end-point error {b['flow_epe']:.2f} px; no motion: {b['zero_flow_epe']:.2f} px), frozen."
            if b.get("flow_pretrain_steps") else "")
    lines = [f"Ablation at a reduced budget: {b['steps']} steps, batch {b['batch_size']}, {b['crop']}px crops, "
             f"{b['clips']} procedural training clips; held-out procedural test clips, border crop 4.{flow}", "",
             "| variant | PSNR (dB) | SSIM | blurry input PSNR |", "|---|---|---|---|"]
    for name, r in results["variants"].items():
        lines.append(f"| {name} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['input_psnr']:.2f} |")
    table = "\n".join(lines) + "\n"
    for name, text in (("ablation.md", table), ("ablation.json", json.dumps(results, indent=1))):
        write_text_atomic(out / name, text)
    print(table, file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vsarvo.training.ablate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(p)
    p.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    p.add_argument("--out", default="runs/ablation")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--crop", type=int, default=80)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--adv-weight", type=float, default=0.0)
    p.add_argument("--clips", type=int, default=24)
    p.add_argument("--frames", type=int, default=7)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--test-clips", type=int, default=4)
    p.add_argument("--test-frames", type=int, default=8)
    p.add_argument("--test-size", type=int, default=128)
    p.add_argument("--test-seed", type=int, default=424242)
    p.add_argument("--flow-pretrain-steps", type=int, default=0,
                   help="pretrain one flow net this long on synthetic flow pairs; variants with flow start from it, frozen")
    p.add_argument("--flow-lr", type=float, default=4e-4)
    p.add_argument("--threads", type=int)
    args = p.parse_args(argv)
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
