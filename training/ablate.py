"""`python -m vsarvo.training.ablate`: the paper's ablations retrained at one reduced budget, one table.

Variants (all from the same starting configuration, data, seed and budget):
  full          the configuration as given (paper structure: L = 3, flow, two stages)
  stages-1      one stage instead of two
  levels-0      no correlation volume (encoder features straight to the reconstruction)
  no-flow       no flow alignment
  single-frame  one stage that only ever sees the reference frame (neighbours replaced by it)

Each is trained for ``--steps`` steps, or with ``--budget`` for an equal share of that many seconds
(the time left after the set-up, less ``--score-reserve`` per variant for scoring; ``--steps`` then
caps the steps), and scored with ``arvo eval``'s metrics on held-out procedural clips and, with
``--realistic-set FILE`` (a set saved by ``python -m vsarvo.training.realistic_eval save``), on the
realistic held-out clips: every variant on the same interior frames (a one-stage variant gets the clip
less one frame at each end, so it restores exactly the frames a two-stage one does). The training
data are procedural clips, or with ``--footage-shards DIR`` footage shards
(:mod:`vsarvo.training.footage_shards`) held on the training device as a :class:`ShardBank`, mixed
with procedural shards rendered into ``--work`` at ``--footage-share``; a GPU trains in bf16
autocast (``--precision auto``), channels-last, and with ``--compile`` through torch.compile.

``ablation.json`` and ``ablation.md`` (:mod:`vsarvo.training.ablation_table`: cost and scores per
variant, and whether each part helped on the realistic set) go to ``--out``, rewritten after each
variant so a cut run still leaves what finished; the variants' runs go to ``--work`` (default
``--out``). Numbers at such budgets rank the variants only roughly; the table states the budget.
Variants with flow can share one flow net, frozen: pretrained on synthetic pairs with known flow
(``--flow-pretrain-steps N``) or taken from a weight file (``--flow-from``), as the paper starts from
a pretrained PWC-Net (a random one only adds noise at these budgets).
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import shlex
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from vsarvo.atomic import write_text_atomic
from vsarvo.model import ARVoConfig
from vsarvo.model.flow import PWCNet
from vsarvo.weights import load_model, save_model

from .ablation_table import write_outputs
from .config import TrainConfig
from .data.rendered import RenderedClips
from .eval import Video, evaluate, procedural_test_set
from .flow_pretrain import PAIR_MIX, end_point_error, fit_flow, held_out_pairs, render_pairs
from .loop import Trainer, device_name, log
from .train import add_model_arguments, model_config_from_args

__all__ = ["VARIANTS", "SingleFrame", "SingleFrameBank", "ReferenceOnly", "AblationTrainer", "variant_config", "trimmed",
           "pretrained_flow_net", "run", "main"]

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


class SingleFrameBank:
    """Wraps a shard bank: every frame of each blurry window in a batch becomes the centre frame."""

    def __init__(self, base: Any) -> None:
        self.base = base
        self.window, self.crop, self.device = base.window, base.crop, base.device

    @property
    def clips(self) -> int:
        return self.base.clips

    def __len__(self) -> int:
        return len(self.base)

    def sample_batch(self, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        blur, sharp = self.base.sample_batch(size, seed)
        mid = blur.shape[1] // 2
        return blur[:, mid:mid + 1].expand_as(blur).contiguous(), sharp


class ReferenceOnly(torch.nn.Module):
    """A model whose stage sees only the reference frame (both neighbours replaced by it): how the
    single-frame variant restores a clip, for scorers that call ``model.stage(prev, ref, next)``."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model
        self.config = model.config

    def stage(self, prev: torch.Tensor, ref: torch.Tensor, nxt: torch.Tensor) -> torch.Tensor:
        return self.model.stage(ref, ref, ref)


def variant_config(base: ARVoConfig, variant: str) -> ARVoConfig:
    changes: dict[str, Any] = {
        "full": {},
        "stages-1": {"stages": 1},
        "levels-0": {"levels": 0},
        "no-flow": {"use_flow": False},
        "single-frame": {"stages": 1, "use_flow": False},
    }[variant]
    return dataclasses.replace(base, **changes)


def trimmed(videos: list[Video], frames: int) -> list[Video]:
    """The clips less ``frames`` frames at each end: a variant with fewer stages then restores the same
    interior frames as one with more (``frames`` = the difference in stages)."""
    if frames == 0:
        return videos
    return [Video(v.name, v.blur[frames:v.blur.shape[0] - frames], v.sharp[frames:v.sharp.shape[0] - frames])
            for v in videos]


def _device(args: argparse.Namespace) -> torch.device:
    """``--device``, else the first GPU, else the CPU; a GPU always with its index (the trainer selects it)."""
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    return torch.device("cuda", 0) if device.type == "cuda" and device.index is None else device


class AblationTrainer(Trainer):
    """A trainer whose outputs are the weights and the history only: the ablation's table is its result,
    and no curves means no plotting library on the device."""

    def write_outputs(self) -> None:
        save_model(self.model, self.out_dir / "arvo.safetensors", extra={"train_steps": self.step_index})
        write_text_atomic(self.out_dir / "history.json", json.dumps(self.history))


def training_data(args: argparse.Namespace, window: int, root: Path, device: torch.device) -> tuple[Any, dict[str, Any]]:
    """The training windows every variant draws from and the budget's account of them."""
    if not args.footage_shards:
        return RenderedClips(clips=args.clips, frames=args.frames, size=args.size, window=window, crop=args.crop,
                             seed=args.seed, cache=root / f"clips_{args.clips}x{args.frames}x{args.size}.pt"), {}
    from .shards import ShardBank, with_footage, write_shards

    def record(footage: ShardBank) -> dict[str, Any]:
        return {"footage_shards": str(args.footage_shards), "footage_clips": footage.clips,
                "footage_share": args.footage_share}

    if args.footage_share >= 1:
        footage = ShardBank(args.footage_shards, window=window, crop=args.crop, device=device)
        return footage, record(footage)
    folder = root / f"procedural_shards_{args.clips}x{args.frames}x{args.size}"
    if not any(folder.glob("shard_*.npz")):
        write_shards(folder, clips=args.clips, frames=args.frames, size=args.size, seed=args.seed,
                     workers=args.render_workers)
    procedural = ShardBank(folder, window=window, crop=args.crop, device=device)
    mixed = with_footage(procedural, args.footage_shards, args.footage_share)
    return mixed, record(mixed.first)


FLOW_BATCH, FLOW_SIZE = 8, 128  # the flow pretraining's pairs per step and their edge


def _flow_batch(job: tuple[int, int]) -> Any:
    """Flow pretraining batch ``i`` of ``seed``: the pairs fit_flow would render itself for that step."""
    seed, i = job
    return render_pairs(np.random.default_rng([seed, i, 77]), FLOW_BATCH, FLOW_SIZE, mix=PAIR_MIX)


def pretrained_flow_net(steps: int, *, lr: float, seed: int, width: float, device: torch.device,
                        workers: int = 1) -> PWCNet:
    """A flow net trained ``steps`` steps on synthetic pairs with known flow. With ``workers`` > 1 the pairs
    are rendered first in that many processes (the same pairs), so a GPU does not wait for one CPU core."""
    torch.manual_seed(seed)
    flow_net = PWCNet(width=width).to(device)
    batches = None
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
            rendered = list(pool.map(_flow_batch, [(seed, i) for i in range(steps)], chunksize=max(1, steps // (4 * workers))))
        batches = rendered.__getitem__
    fit_flow(flow_net, steps, lr=lr, batch=FLOW_BATCH, size=FLOW_SIZE, seed=seed, log_every=max(1, steps // 5),
             batches=batches)
    return flow_net


def shared_flow(args: argparse.Namespace, base: ARVoConfig, device: torch.device) -> tuple[dict | None, dict[str, Any]]:
    """The flow net every variant with flow starts from (None: each its own random one) and its record."""
    if args.flow_from:
        flow_net = load_model(args.flow_from).stage.flow
        if flow_net is None:
            raise ValueError(f"--flow-from {args.flow_from} holds a model without flow: give weights with a flow net")
        expected = {k: v.shape for k, v in PWCNet(width=base.flow_width).state_dict().items()}
        if expected != {k: v.shape for k, v in flow_net.state_dict().items()}:
            raise ValueError(f"--flow-from {args.flow_from} has a flow net of another width than --flow-width "
                             f"{base.flow_width}: give that file's flow width")
        record: dict[str, Any] = {"flow_from": str(args.flow_from)}
    elif args.flow_pretrain_steps:
        flow_net = pretrained_flow_net(args.flow_pretrain_steps, lr=args.flow_lr, seed=args.seed, width=base.flow_width,
                                       device=device, workers=args.render_workers)
        record = {"flow_pretrain_steps": args.flow_pretrain_steps}
    else:
        return None, {}
    flow_net = flow_net.to(device)
    pairs = held_out_pairs()
    record.update(flow_epe=end_point_error(flow_net, pairs), zero_flow_epe=end_point_error(None, pairs))
    return {k: v.detach().cpu() for k, v in flow_net.state_dict().items()}, record


def test_sets(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """The procedural test clips and, with ``--realistic-set``, the saved realistic clips, on ``device``."""
    def on_device(videos: list[Video]) -> list[Video]:
        return [Video(v.name, v.blur.to(device), v.sharp.to(device)) for v in videos]

    sets: dict[str, Any] = {"procedural": on_device(procedural_test_set(
        clips=args.test_clips, frames=args.test_frames, size=args.test_size, seed=args.test_seed))}
    if args.realistic_set:
        from .realistic_eval import load_realistic_set

        videos, records, spec = load_realistic_set(args.realistic_set)
        sets["realistic"] = (on_device(videos), records, spec)
    return sets


def _realistic_row(report: dict[str, Any]) -> dict[str, Any]:
    """What the table and the part verdicts need of a realistic-set report."""
    mild = report["by_class"].get("mild", {})
    return {key: report[key] for key in ("frames", "input_psnr", "model_psnr", "gain_db", "frames_worse")} | {
        "mild_gain_db": mild.get("gain_db"),
        "class_gain_db": {name: row.get("gain_db") for name, row in report["by_class"].items()},
        "clip_psnr": {name: v["model"]["mean_psnr"] for name, v in report["videos"].items()}}


def score(model: torch.nn.Module, variant: str, sets: dict[str, Any], most_stages: int) -> dict[str, Any]:
    """A trained variant's procedural and realistic scores (the single-frame one fed only reference frames)."""
    single = variant == "single-frame"
    report = evaluate(model, sets["procedural"], crop=4, single_frame=single)
    row: dict[str, Any] = {"psnr": report["model"]["mean_psnr"], "ssim": report["model"]["mean_ssim"],
                           "input_psnr": report["input"]["mean_psnr"]}
    if "realistic" in sets:
        from .realistic_eval import score_realistic

        videos, records, spec = sets["realistic"]
        scored = ReferenceOnly(model) if single else model
        videos = trimmed(videos, most_stages - model.config.stages)
        row["realistic"] = _realistic_row(score_realistic(scored, videos, records, crop=4, spec=spec))
    return row


def train_variant(args: argparse.Namespace, config: ARVoConfig, dataset: Any, flow_state: dict | None,
                  run_dir: Path, seconds: float, device: torch.device) -> Trainer:
    """One variant trained from scratch to ``--steps`` or ``seconds`` (0: no time limit)."""
    cfg = TrainConfig(model=config, out_dir=str(run_dir), steps=args.steps, batch_size=args.batch_size,
                      crop=args.crop, lr=args.lr, adv_weight=args.adv_weight, seed=args.seed,
                      checkpoint_every=args.steps, validate_every=10 ** 9, log_every=args.log_every or max(1, args.steps // 5),
                      freeze_flow_steps=args.steps if flow_state is not None else 0, time_limit=seconds,
                      device=str(device), precision=args.precision, compile=args.compile, threads=args.threads)
    trainer = AblationTrainer(cfg, dataset=dataset, val_dataset=None,
                      command=f"python -m vsarvo.training.ablate (variant {run_dir.name})")
    if flow_state is not None and trainer.model.stage.flow is not None:
        trainer.model.stage.flow.load_state_dict(flow_state)
    trainer.fit()
    return trainer


def _budget(args: argparse.Namespace, base: ARVoConfig, device: torch.device, argv: Sequence[str]) -> dict[str, Any]:
    """The settings every variant shares, as the table and the model card state them."""
    budget: dict[str, Any] = {"steps": args.steps, "batch_size": args.batch_size, "crop": args.crop, "clips": args.clips,
                              "lr": args.lr, "base_config": base.to_dict(), "device": device_name(device, 1),
                              "precision": args.precision, "compile": args.compile,
                              "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                              "command": shlex.join(["python", "-m", "vsarvo.training.ablate", *argv])}
    if args.budget:
        budget["budget_s"] = args.budget
    return budget


def _realistic_record(sets: dict[str, Any], path: str) -> str:
    videos, _, spec = sets["realistic"]
    return f"{len(videos)} clips of {spec.frames} frames at {spec.size} px ({Path(path).name})"


def _seconds_per_variant(args: argparse.Namespace, setup_s: float) -> float:
    """Each variant's equal share of what ``--budget`` leaves after the set-up and the scoring (0: no budget)."""
    if not args.budget:
        return 0.0
    seconds = (args.budget - setup_s) / len(args.variants) - args.score_reserve
    if seconds < 1:
        raise ValueError(f"--budget {args.budget:g} s leaves {seconds:.1f} s of training per variant after "
                         f"{setup_s:.0f} s of set-up: give a larger budget, fewer variants or a smaller --score-reserve")
    return seconds


def run(args: argparse.Namespace, argv: Sequence[str] = ()) -> dict[str, Any]:
    """Trains and scores every variant; writes ablation.json and ablation.md after each (see the docstring)."""
    start = time.time()
    base = model_config_from_args(args)
    out = Path(args.out)
    root = Path(args.work) if args.work else out
    for folder in (out, root):
        folder.mkdir(parents=True, exist_ok=True)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = _device(args)
    results: dict[str, Any] = {"budget": _budget(args, base, device, argv), "variants": {}, "skipped": []}
    dataset, data_record = training_data(args, base.window, root, device)
    flow_state, flow_record = shared_flow(args, base, device)
    sets = test_sets(args, device)
    results["budget"].update(data_record, **flow_record)
    if "realistic" in sets:
        results["budget"]["realistic_set"] = _realistic_record(sets, args.realistic_set)
    seconds = _seconds_per_variant(args, time.time() - start)
    results["budget"].update(setup_s=round(time.time() - start, 1), seconds_per_variant=seconds)
    most_stages = max(variant_config(base, v).stages for v in args.variants)
    for variant in args.variants:
        limit = min(seconds, args.budget - (time.time() - start) - args.score_reserve) if seconds else 0.0
        if seconds and limit < 0.8 * seconds:
            log(f"ablation {variant}: skipped, {limit:.0f} s are left of the {seconds:.0f} s it needs")
            results["skipped"].append(variant)
            continue
        config = variant_config(base, variant)
        # Same windows for every variant: a 1-stage model trains on their middle three frames.
        data = dataset if variant != "single-frame" else (
            SingleFrameBank(dataset) if hasattr(dataset, "sample_batch") else SingleFrame(dataset))
        log(f"ablation {variant}: {config.to_dict()}" + (f", {limit:.0f} s" if seconds else ""))
        began = time.time()
        trainer = train_variant(args, config, data, flow_state, root / variant, limit, device)
        train_s = time.time() - began
        model = trainer.model.eval()
        results["variants"][variant] = {
            **score(model, variant, sets, most_stages), "params": sum(p.numel() for p in model.parameters()),
            "steps": trainer.step_index, "samples_per_s": trainer.throughput()["samples_per_s"],
            "train_s": round(train_s, 1), "config": config.to_dict()}
        write_outputs(results, out)
    results["budget"]["total_s"] = round(time.time() - start, 1)
    write_outputs(results, out)
    return results


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m vsarvo.training.ablate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(p)
    p.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    p.add_argument("--out", default="runs/ablation", help="folder for ablation.json and ablation.md")
    p.add_argument("--work", help="folder for the variants' runs and rendered data (default: --out)")
    p.add_argument("--steps", type=int, default=300, help="steps per variant (with --budget: the most steps)")
    p.add_argument("--budget", type=float, default=0.0,
                   help="seconds from start to the last table; each variant trains for an equal share (0: --steps)")
    p.add_argument("--score-reserve", type=float, default=15.0,
                   help="seconds kept per variant for building it and scoring it (with --budget)")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--crop", type=int, default=80)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--adv-weight", type=float, default=0.0)
    p.add_argument("--clips", type=int, default=24, help="procedural training clips")
    p.add_argument("--frames", type=int, default=7)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--footage-shards", help="footage shards to train from (python -m vsarvo.training.shards footage)")
    p.add_argument("--footage-share", type=float, default=0.6,
                   help="share of each batch from --footage-shards, the rest from --clips procedural clips")
    p.add_argument("--render-workers", type=int, default=1,
                   help="processes rendering the procedural shards and the flow pretraining's pairs")
    p.add_argument("--realistic-set", help="saved realistic set to score on (python -m vsarvo.training.realistic_eval save)")
    p.add_argument("--test-clips", type=int, default=4)
    p.add_argument("--test-frames", type=int, default=8)
    p.add_argument("--test-size", type=int, default=128)
    p.add_argument("--test-seed", type=int, default=424242)
    p.add_argument("--flow-pretrain-steps", type=int, default=0,
                   help="pretrain one flow net this long on synthetic flow pairs; variants with flow start from it, frozen")
    p.add_argument("--flow-lr", type=float, default=4e-4)
    p.add_argument("--flow-from", help="weights whose flow net the variants with flow start from, frozen")
    p.add_argument("--device", help="default: the GPU when there is one")
    p.add_argument("--precision", default="auto", help="auto: bf16 autocast on a GPU, fp32 on the CPU")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=False,
                   help="torch.compile each variant (its warm-up counts against the variant's time)")
    p.add_argument("--log-every", type=int, default=0, help="steps between log lines (0: a fifth of --steps)")
    p.add_argument("--threads", type=int)
    return p


def _problems(args: argparse.Namespace) -> list[str]:
    """What is wrong with the arguments, one sentence each naming the fix."""
    problems = []
    if not 0 <= args.footage_share <= 1:
        problems.append(f"--footage-share {args.footage_share} is out of range: give a share in [0, 1]")
    if args.footage_shards and not Path(args.footage_shards).is_dir():
        problems.append(f"--footage-shards {args.footage_shards} is not a folder: render it with "
                        "`python -m vsarvo.training.shards footage --out DIR`")
    if args.realistic_set and not Path(args.realistic_set).is_file():
        problems.append(f"--realistic-set {args.realistic_set} does not exist: write it with "
                        "`python -m vsarvo.training.realistic_eval save --out FILE`")
    if args.flow_from and args.flow_pretrain_steps:
        problems.append("--flow-from and --flow-pretrain-steps both give the shared flow net: pass one of them")
    if args.budget < 0 or args.score_reserve < 0:
        problems.append("--budget and --score-reserve are seconds: give values >= 0")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    problems = _problems(args)
    try:
        if problems:
            raise ValueError("; ".join(problems))
        run(args, argv)
    except (ValueError, FileNotFoundError) as exc:
        print(f"ablate: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
