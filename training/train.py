"""Progressive generative-adversarial training of ARVo (paper Sec. 3.4), as one readable loop.

data -> model -> losses (L1 on every stage output + alpha * adversarial) -> Adam -> checkpoint.
Run ``arvo train --help`` (or ``python -m vsarvo.training.train``); ``torchrun --nproc_per_node=N`` for
several GPUs (DistributedDataParallel). Every ARVoConfig switch is a flag.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from vsarvo.atomic import atomic_path, write_text_atomic
from vsarvo.model import ARVo, ARVoConfig, TemporalDiscriminator
from vsarvo.model.arvo import MIN_SIZE
from vsarvo.weights import save_model

__all__ = ["TrainConfig", "Trainer", "add_parser", "main", "write_checkpoint"]


# Per-pixel restoration losses ``--pixel-loss`` chooses from.
PIXEL_LOSSES = {"l1": F.l1_loss, "mse": F.mse_loss}


@dataclass(kw_only=True)
class TrainConfig:
    """One training run. Paper recipe: Adam lr 1e-4 halved every 200 epochs, 256x256 crops, alpha = 0.1."""

    model: ARVoConfig = field(default_factory=ARVoConfig.tiny)
    out_dir: str = "runs/arvo"
    data: str | None = None  # dataset root (DVD / GoPro / HFR-DVD / paired); None = procedural synthetic clips
    procedural_clips: int = 64  # clips pre-rendered when data is None
    procedural_size: int = 160  # their frame edge
    procedural_frames: int = 9
    # 0: the training clips are rendered in turn from one generator (how the shipped weights' 96 clips were
    # made); N >= 1: clip i from its own seed, in N processes (the same clips for any N; use on GPU hosts).
    render_workers: int = 0
    crop: int = 256
    batch_size: int = 8
    steps: int = 100_000
    stage1_steps: int = 0  # progressive curriculum: train a single stage on triples first (3x cheaper)
    flow_pretrain_steps: int = 0  # PWC-Net on synthetic pairs with known flow before joint training
    flow_lr: float = 4e-4  # Adam's starting rate for that pretraining (cosine decay; 1e-3 did not converge)
    freeze_flow_steps: int = 0  # keep the (pretrained) flow net fixed this long, then train it jointly
    lr: float = 1e-4
    lr_halve_epochs: int = 200
    adv_weight: float = 0.1  # 0 switches the adversarial loss off
    clip_grad: float = 1.0
    seed: int = 0
    amp: bool = True  # CUDA only
    checkpoint_every: int = 200
    validate_every: int = 200
    val_clips: int = 4
    log_every: int = 10
    # Wall-clock budget in seconds (0 = none): the run validates, checkpoints and stops at the first step
    # past it, so a leased GPU or a batch slot is used to its end and nothing is lost.
    time_limit: float = 0.0
    device: str | None = None
    threads: int | None = None
    # NHWC weights and activations: oneDNN's convolutions run ~1.3x faster that way on a CPU at the tiny
    # widths (measured: 0.71 -> 0.55 s per single-stage step, batch 8 of 96^2, 2 threads).
    channels_last: bool = True
    # "l1" is the paper's loss; "mse" optimises PSNR directly (squared error weights the large errors at
    # edges, where deblurring gains, over the irrecoverable fine texture that dominates L1's gradient).
    pixel_loss: str = "l1"

    def __post_init__(self) -> None:
        if self.pixel_loss not in PIXEL_LOSSES:
            raise ValueError(f"pixel_loss must be one of {sorted(PIXEL_LOSSES)}, got {self.pixel_loss!r}")
        if self.crop < MIN_SIZE:
            # Found here, not at the first step after minutes of rendering.
            raise ValueError(f"crop must be at least {MIN_SIZE} (the model's smallest frame), got {self.crop}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["model"] = self.model.to_dict()
        return d


# ---------------------------------------------------------------------------------------------------
# data


# Procedural validation clips are rendered with the training seed plus this, so they are clips of their own.
VAL_SEED_OFFSET = 10_000


def validation_set_name(cfg: TrainConfig) -> str:
    if cfg.data is None:
        return f"procedural train-split {cfg.val_clips}x{cfg.model.window}x{cfg.procedural_size} seed {cfg.seed + VAL_SEED_OFFSET}"
    return f"{cfg.data} test split"


def make_datasets(cfg: TrainConfig) -> tuple[Any, Any]:
    """Training and validation datasets of (blur [T,3,h,w], sharp [T,3,h,w]) windows, T = model window."""
    window = cfg.model.window
    if cfg.data is None:
        from vsarvo.training.data.rendered import RenderedClips

        cache = Path(cfg.out_dir) / "cache"
        per_clip = "_perclip" if cfg.render_workers > 0 else ""
        train = RenderedClips(
            clips=cfg.procedural_clips, frames=cfg.procedural_frames, size=cfg.procedural_size,
            window=window, crop=cfg.crop, split="train", seed=cfg.seed, workers=cfg.render_workers,
            cache=cache / f"train_{cfg.procedural_clips}x{cfg.procedural_frames}x{cfg.procedural_size}_s{cfg.seed}{per_clip}.pt",
        )
        # Validation (which picks best.safetensors) renders clips of its own from the training sources:
        # the held-out test split stays unseen until `arvo eval`, so model selection cannot fit it.
        val = RenderedClips(
            clips=cfg.val_clips, frames=window, size=cfg.procedural_size, window=window, crop=None,
            split="train", seed=cfg.seed + VAL_SEED_OFFSET, augment=False,
            cache=cache / f"val_train_{cfg.val_clips}x{window}x{cfg.procedural_size}_s{cfg.seed}.pt",
        )
        return train, val
    from vsarvo.training.data.datasets import VideoWindowDataset, find_videos

    train = VideoWindowDataset(find_videos(Path(cfg.data), "train"), window=window, crop=cfg.crop, augment=True)
    try:
        val_videos = find_videos(Path(cfg.data), "test")
    except ValueError:
        return train, None
    val = VideoWindowDataset(val_videos, window=window, crop=cfg.crop, augment=False)
    # A fixed, evenly spread subset keeps validation cheap on datasets of thousands of frames.
    picks = np.linspace(0, len(val) - 1, num=min(cfg.val_clips, len(val))).round().astype(int).tolist()
    return train, torch.utils.data.Subset(val, picks)


def step_seed(seed: int, step: int, rank: int) -> int:
    return (seed * 1_000_003 + step * 7919 + rank) % (2**31)


def fetch_batch(dataset: Any, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch fully determined by ``seed`` (indices, crops, flips), so --resume continues bit-exactly."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    idx = torch.randint(len(dataset), (size,)).tolist()
    items = [dataset[i] for i in idx]
    return torch.stack([b for b, _ in items]), torch.stack([s for _, s in items])


# ---------------------------------------------------------------------------------------------------
# losses


def restoration_losses(model: nn.Module, blur: torch.Tensor, sharp: torch.Tensor, stages: int,
                       pixel_loss: str = "l1") -> tuple[torch.Tensor, list[torch.Tensor]]:
    """L1 (the paper; ``pixel_loss="mse"``: squared error) on the final output and on every
    intermediate stage output, each against its sharp frame.

    ``stages`` may be below the model's (the single-stage curriculum): the window is then cut to the
    middle 2*stages+1 frames. ``model`` is the ARVo (or its DDP wrapper). Returns (loss, stage outputs).
    """
    t = blur.shape[1]
    lo = (t - (2 * stages + 1)) // 2
    blur = blur[:, lo:lo + 2 * stages + 1]
    sharp = sharp[:, lo:lo + 2 * stages + 1]
    outputs = model(blur, all_stages=True, stages=stages)
    distance = PIXEL_LOSSES[pixel_loss]
    loss = distance(outputs[-1], sharp[:, stages:stages + 1])
    for s, out in enumerate(outputs[:-1], start=1):
        loss = loss + distance(out, sharp[:, s:s + out.shape[1]]) / (stages - 1)
    return loss, outputs


def restored_sequence(outputs: list[torch.Tensor]) -> torch.Tensor:
    """{R^{S-1}_{i-1}, R^S_i, R^{S-1}_{i+1}}: what the temporal discriminator judges (needs >= 2 stages)."""
    prev_stage, last = outputs[-2], outputs[-1]
    mid = prev_stage.shape[1] // 2
    return torch.stack((prev_stage[:, mid - 1], last[:, 0], prev_stage[:, mid + 1]), dim=1)


def sharp_sequence(sharp: torch.Tensor) -> torch.Tensor:
    mid = sharp.shape[1] // 2
    return sharp[:, mid - 1:mid + 2]


# ---------------------------------------------------------------------------------------------------
# the loop


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def write_checkpoint(obj: Any, path: str | os.PathLike[str]) -> None:
    """torch.save to ``path`` through a temporary name: a killed run never leaves half a checkpoint."""
    with atomic_path(Path(path)) as tmp:
        torch.save(obj, tmp)


class Trainer:
    """Holds model, discriminator, optimisers and history; ``step()`` runs one optimisation step."""

    def __init__(self, cfg: TrainConfig, *, dataset: Any = None, val_dataset: Any = None) -> None:
        self.cfg = cfg
        self.rank = int(os.environ.get("RANK", "0"))
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        if cfg.device is not None:
            self.device = torch.device(cfg.device)
        elif torch.cuda.is_available():
            self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        else:
            self.device = torch.device("cpu")
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
            # Training crops have one shape: let cuDNN pick its fastest convolution algorithms once.
            torch.backends.cudnn.benchmark = True
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        self.model = ARVo(cfg.model).to(self.device)
        self.disc = TemporalDiscriminator(width=cfg.model.disc_width).to(self.device)
        if cfg.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.train_model: nn.Module = self.model
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_model = nn.parallel.DistributedDataParallel(self.model, device_ids=ids, find_unused_parameters=True)
            self.disc = nn.parallel.DistributedDataParallel(self.disc, device_ids=ids)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.opt_d = torch.optim.Adam(self.disc.parameters(), lr=cfg.lr)
        self.use_amp = cfg.amp and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.step_index = 0
        # "pixel": the pixel term (cfg.pixel_loss, L1 by default) of "loss"; "adv": the adversarial term.
        self.history: dict[str, list[list[float]]] = {"loss": [], "pixel": [], "adv": [], "val_psnr": [], "flow_epe": []}
        if dataset is None:
            dataset, val_dataset = make_datasets(cfg)
        self.dataset, self.val_dataset = dataset, val_dataset
        # Which validation set the scores in history come from, and the step since which they do.
        self.val_set = validation_set_name(cfg)
        self.val_since = 0
        self.out_dir = Path(cfg.out_dir)

    # -- schedule ----------------------------------------------------------------------------------

    def steps_per_epoch(self) -> int:
        return max(1, math.ceil(len(self.dataset) / (self.cfg.batch_size * self.world)))

    def lr_at(self, step: int) -> float:
        epoch = step // self.steps_per_epoch()
        return self.cfg.lr * 0.5 ** (epoch // self.cfg.lr_halve_epochs)

    def stages_at(self, step: int) -> int:
        return 1 if step < self.cfg.stage1_steps else self.cfg.model.stages

    # -- one step ----------------------------------------------------------------------------------

    def step(self) -> dict[str, float]:
        cfg = self.cfg
        step = self.step_index
        lr = self.lr_at(step)
        for opt in (self.opt, self.opt_d):
            for group in opt.param_groups:
                group["lr"] = lr
        blur, sharp = fetch_batch(self.dataset, cfg.batch_size, step_seed(cfg.seed, step, self.rank))
        blur, sharp = blur.to(self.device), sharp.to(self.device)
        stages = self.stages_at(step)
        if self.model.stage.flow is not None:
            # A frozen flow net records no graph: on a CPU this halves the cost of an early step.
            self.model.stage.flow.requires_grad_(step >= cfg.freeze_flow_steps)
        use_adv = cfg.adv_weight > 0 and stages >= 2
        self.train_model.train()
        with torch.autocast(self.device.type, enabled=self.use_amp):
            pixel, outputs = restoration_losses(self.train_model, blur, sharp, stages, cfg.pixel_loss)
            adv = torch.zeros((), device=self.device)
            if use_adv:
                logits = self.disc(restored_sequence(outputs))
                adv = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
            loss = pixel + cfg.adv_weight * adv
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.opt)
        nn.utils.clip_grad_norm_(self.model.parameters(), cfg.clip_grad)
        self.scaler.step(self.opt)
        self.scaler.update()

        if use_adv:
            with torch.autocast(self.device.type, enabled=self.use_amp):
                real = self.disc(sharp_sequence(sharp[:, (sharp.shape[1] - cfg.model.window) // 2:]))
                fake = self.disc(restored_sequence([o.detach() for o in outputs]))
                d_loss = F.binary_cross_entropy_with_logits(real, torch.ones_like(real)) + \
                    F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))
            self.opt_d.zero_grad(set_to_none=True)
            self.scaler.scale(d_loss).backward()
            self.scaler.step(self.opt_d)
            self.scaler.update()

        self.step_index += 1
        record = {"loss": loss.item(), "pixel": pixel.item(), "adv": adv.item()}
        for key, value in record.items():
            self.history[key].append([self.step_index, value])
        return record

    # -- flow pretraining ----------------------------------------------------------------------------

    def pretrain_flow(self, steps: int, *, size: int = 128, batch: int = 8) -> float:
        """Supervised PWC-Net training on synthetic pairs with known flow (:mod:`.flow_pretrain`);
        returns the last batch's end-point error (px)."""
        from vsarvo.training.flow_pretrain import fit_flow

        flow_net = self.model.stage.flow
        if flow_net is None or steps <= 0:
            return float("nan")
        # Every rank draws the same pairs, so DDP replicas keep identical flow nets.
        trained = fit_flow(flow_net, steps, lr=self.cfg.flow_lr, batch=batch, size=size, seed=self.cfg.seed,
                           clip_grad=self.cfg.clip_grad, log_every=self.cfg.log_every)
        self.history["flow_epe"].extend(trained)
        return trained[-1][1]

    # -- validation --------------------------------------------------------------------------------

    @torch.no_grad()
    def validate(self) -> float:
        """Mean PSNR (dB, RGB in [0, 1] -> uint8 as the DVD papers report) on the validation windows."""
        from vsarvo.training.eval import to_uint8
        from vsarvo.training.metrics import psnr

        if self.val_dataset is None or len(self.val_dataset) == 0:
            return float("nan")
        self.model.eval()
        scores = []
        for i in range(len(self.val_dataset)):
            blur, sharp = self.val_dataset[i]
            out = self.model(blur.unsqueeze(0).to(self.device))[0]
            mid = sharp.shape[0] // 2
            scores.append(psnr(to_uint8(out), to_uint8(sharp[mid])))
        value = float(np.mean(scores))
        self.history["val_psnr"].append([self.step_index, value])
        return value

    # -- checkpoints -------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {
            "step": self.step_index,
            "model": self.model.state_dict(),
            "disc": (self.disc.module if hasattr(self.disc, "module") else self.disc).state_dict(),
            "opt": self.opt.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "scaler": self.scaler.state_dict(),
            "history": self.history,
            "config": json.dumps(self.cfg.to_dict()),
            "val_set": self.val_set,
            "val_since": self.val_since,
        }

    def save_checkpoint(self, path: Path | None = None) -> Path:
        path = path or self.out_dir / "checkpoint.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_checkpoint(self.state(), path)
        return path

    def load_checkpoint(self, path: str | os.PathLike[str]) -> None:
        state = torch.load(path, map_location=self.device, weights_only=True)
        saved_model = ARVoConfig.from_dict(json.loads(state["config"])["model"])
        if saved_model != self.cfg.model:
            raise ValueError(f"checkpoint {path} was trained with model config {saved_model.to_dict()}, "
                             f"not {self.cfg.model.to_dict()}: pass the model flags it was trained with")
        self.model.load_state_dict(state["model"])
        (self.disc.module if hasattr(self.disc, "module") else self.disc).load_state_dict(state["disc"])
        self.opt.load_state_dict(state["opt"])
        self.opt_d.load_state_dict(state["opt_d"])
        if state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        # else: saved by a run without AMP (a CPU or --no-amp run); a CUDA run resuming it starts its loss
        # scale afresh, which GradScaler's own load refuses to do from an empty state.
        self.history = state["history"]
        if "l1" in self.history:  # checkpoints written before the key was named for either pixel loss
            self.history["pixel"] = self.history.pop("l1")
        self.step_index = int(state["step"])
        if state.get("val_set") == self.val_set:
            self.val_since = int(state["val_since"])
        else:
            # Scores on another validation set are not comparable: best.safetensors starts over here.
            self.val_since = self.step_index
            log(f"validation set changed at step {self.step_index} (now {self.val_set}); best weights tracked from here")

    # -- driver ------------------------------------------------------------------------------------

    def fit(self) -> None:
        cfg = self.cfg
        start = time.time()
        first = self.step_index
        while self.step_index < cfg.steps:
            record = self.step()
            n = self.step_index
            # Every rank sees the same verdict, so DDP replicas stop at the same step.
            out_of_time = self.out_of_time(start)
            if self.rank != 0:
                if out_of_time:
                    break
                continue
            last = n == cfg.steps or out_of_time
            if n % cfg.log_every == 0 or last:
                rate = (n - first) / max(time.time() - start, 1e-9)
                eta = (cfg.steps - n) / max(rate, 1e-9)
                log(f"step {n}/{cfg.steps} stages {self.stages_at(n - 1)} loss {record['loss']:.4f} "
                    f"{cfg.pixel_loss} {record['pixel']:.4f} adv {record['adv']:.3f} lr {self.lr_at(n - 1):.2e} "
                    f"{rate:.2f} it/s ETA {eta / 60:.1f} min")
            if self.val_dataset is not None and (n % cfg.validate_every == 0 or last):
                score = self.validate()
                log(f"step {n}: validation PSNR {score:.2f} dB")
                best = max((v for s, v in self.history["val_psnr"][:-1] if s > self.val_since), default=float("-inf"))
                if score > best:
                    # The best validated weights so far, kept beside the latest ones.
                    save_model(self.model, self.out_dir / "best.safetensors", extra={"train_steps": n, "val_psnr": score})
            if n % cfg.checkpoint_every == 0 or last:
                self.save_checkpoint()
                self.write_outputs()
            if out_of_time:
                log(f"time limit of {cfg.time_limit:.0f} s reached at step {n}: checkpoint written, stopping")
                break

    def out_of_time(self, start: float) -> bool:
        if self.cfg.time_limit <= 0:
            return False
        over = time.time() - start > self.cfg.time_limit
        if self.world > 1:
            # Clocks differ across ranks: stop when rank 0 says so.
            flag = torch.tensor(float(over), device=self.device)
            dist.broadcast(flag, src=0)
            over = bool(flag.item())
        return over

    def write_outputs(self) -> None:
        """Weights as safetensors + JSON, the loss/validation curves as PNG, history as JSON."""
        save_model(self.model, self.out_dir / "arvo.safetensors", extra={"train_steps": self.step_index})
        write_text_atomic(self.out_dir / "history.json", json.dumps(self.history))
        plot_curves(self.history, self.out_dir / "curves.png")


def plot_curves(history: dict[str, list[list[float]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for key in ("loss", "pixel"):
        if history.get(key):
            xs, ys = zip(*history[key])
            k = max(1, len(ys) // 200)
            smooth = np.convolve(ys, np.ones(k) / k, mode="valid")
            axes[0].plot(xs[k - 1:], smooth, label=key)
    axes[0].set(title="training loss", xlabel="step", yscale="log")
    axes[0].legend()
    if history.get("val_psnr"):
        xs, ys = zip(*history["val_psnr"])
        axes[1].plot(xs, ys, marker="o")
    axes[1].set(title="validation PSNR (dB)", xlabel="step")
    if history.get("flow_epe"):
        xs, ys = zip(*history["flow_epe"])
        axes[2].plot(xs, ys)
    axes[2].set(title="flow pretraining EPE (px)", xlabel="step")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------------
# command line


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Every ARVoConfig field as a flag, on top of a preset."""
    g = parser.add_argument_group("model (ARVoConfig; defaults from --preset)")
    g.add_argument("--preset", choices=("tiny", "paper"), default="tiny")
    g.add_argument("--channels", type=int, help="feature width C")
    g.add_argument("--levels", type=int, help="pyramid levels L (0 = no correlation volume)")
    g.add_argument("--stages", type=int, help="progressive stages (1-3)")
    g.add_argument("--no-flow", dest="use_flow", action="store_false", default=None, help="no flow alignment")
    g.add_argument("--flow-width", type=float)
    g.add_argument("--encoder-width", type=int)
    g.add_argument("--recon-width", type=int)
    g.add_argument("--recon-blocks", type=int)
    g.add_argument("--disc-width", type=int)
    g.add_argument("--frame-features", action=argparse.BooleanOptionalAction, default=None,
                   help="the three frames' encoder features reach the reconstruction beside the aggregated ones")
    g.add_argument("--aligned-skip", action=argparse.BooleanOptionalAction, default=None,
                   help="the reconstruction's full-resolution skip sees the aligned neighbours too")
    g.add_argument("--cosine-correlation", action=argparse.BooleanOptionalAction, default=None,
                   help="the correlation volume scores cosine similarity times a learned temperature")


def model_config_from_args(args: argparse.Namespace) -> ARVoConfig:
    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(ARVoConfig)
                 if getattr(args, f.name, None) is not None}
    return getattr(ARVoConfig, args.preset)(**overrides)


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("train", help="train ARVo weights", description=__doc__,
                              formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_model_arguments(p)
    defaults = TrainConfig()
    for f in dataclasses.fields(TrainConfig):
        if f.name == "model":
            continue
        flag = "--" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        if isinstance(default, bool):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=default)
        else:
            annotation = str(f.type)  # e.g. "int | None"
            kind = int if annotation.startswith("int") else float if annotation.startswith("float") else str
            p.add_argument(flag, type=kind, default=default)
    p.add_argument("--resume", metavar="CHECKPOINT", help="continue from a checkpoint.pt (bit-exact)")
    p.set_defaults(func=run_from_args)


def run_from_args(args: argparse.Namespace) -> int:
    fields = {f.name for f in dataclasses.fields(TrainConfig)} - {"model"}
    cfg = TrainConfig(model=model_config_from_args(args), **{k: getattr(args, k) for k in fields})
    trainer = Trainer(cfg)
    if args.resume:
        trainer.load_checkpoint(args.resume)
        log(f"resumed at step {trainer.step_index}")
    elif cfg.flow_pretrain_steps:
        epe = trainer.pretrain_flow(cfg.flow_pretrain_steps)
        log(f"flow pretraining done: EPE {epe:.3f} px")
    Path(cfg.out_dir).mkdir(parents=True, exist_ok=True)
    (Path(cfg.out_dir) / "train_config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
    trainer.fit()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m vsarvo.training.train``: the same as ``arvo train``."""
    from vsarvo.cli import main as arvo

    return arvo(["train", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
