"""The training loop (paper Sec. 3.4): Trainer holds model, temporal discriminator, optimisers and
history; ``step()`` runs one optimisation step, ``fit()`` runs a segment to its end and records it.

data -> model -> losses (pixel loss on every stage output + alpha * adversarial) -> Adam -> checkpoint.
Several GPUs: run under ``torchrun`` (DistributedDataParallel; rank 0 logs and writes).
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from vsarvo.atomic import write_text_atomic
from vsarvo.model import ARVo, TemporalDiscriminator
from vsarvo.weights import save_model

from .checkpoint import load_trainer_state, read_checkpoint, trainer_state, write_checkpoint
from .config import TrainConfig
from .data.run_data import fetch_batch, make_datasets, step_seed, validation_set_name
from .losses import discriminator_loss, generator_adversarial_loss, restoration_losses
from .plots import plot_curves
from .segments import append_segment

__all__ = ["Trainer", "log"]


def log(msg: str) -> None:
    """Progress goes to stderr, one line at a time."""
    print(msg, file=sys.stderr, flush=True)


def pick_device(cfg: TrainConfig) -> torch.device:
    """``cfg.device``, else this rank's GPU, else the CPU."""
    if cfg.device is not None:
        return torch.device(cfg.device)
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def autocast_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype | None:
    """The dtype a training step autocasts to on ``device`` (None: fp32), from ``cfg.precision``."""
    if not cfg.amp or cfg.precision == "fp32" or (cfg.precision == "auto" and device.type != "cuda"):
        return None
    if cfg.precision == "fp16":
        if device.type != "cuda":
            raise ValueError(f"--precision fp16 needs a CUDA device (this run is on {device.type}): use bf16")
        return torch.float16
    return torch.bfloat16


def device_name(device: torch.device, world: int) -> str:
    """The device a segment ran on, as its record names it (e.g. "cuda (NVIDIA H200)", "2 x cpu")."""
    name = f"cuda ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else device.type
    return name if world == 1 else f"{world} x {name}"


class Trainer:
    """Holds model, discriminator, optimisers and history; ``step()`` runs one optimisation step.

    ``command`` is the command line that started the segment; ``fit()`` records it in the run's
    ``segments.jsonl``.
    """

    def __init__(self, cfg: TrainConfig, *, dataset: Any = None, val_dataset: Any = None,
                 command: str | None = None) -> None:
        self.cfg = cfg
        self.command = command
        self.rank = int(os.environ.get("RANK", "0"))
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        self.device = pick_device(cfg)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
            # Training crops have one shape: let cuDNN pick its fastest convolution algorithms once.
            torch.backends.cudnn.benchmark = True
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        self._build_networks()
        self.amp_dtype = autocast_dtype(cfg, self.device)
        self.use_amp = self.amp_dtype is not None
        # bf16 keeps fp32's exponent range: only fp16 needs a loss scale.
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        # Seconds of each step of the running segment, and fields fit() adds to its segment record.
        self.step_seconds: list[float] = []
        self.segment_extra: dict[str, Any] = {}
        self.step_index = 0
        # "pixel": the pixel term (cfg.pixel_loss, L1 by default) of "loss"; "adv": the adversarial term.
        self.history: dict[str, list[list[float]]] = {"loss": [], "pixel": [], "adv": [], "val_psnr": [], "flow_epe": []}
        if dataset is None:
            dataset, val_dataset = make_datasets(cfg, self.device)
        self.dataset, self.val_dataset = dataset, val_dataset
        # Which validation set the scores in history come from, and the step since which they do.
        self.val_set = validation_set_name(cfg)
        self.val_since = 0
        self.out_dir = Path(cfg.out_dir)
        self._flow_pairs: Any = None  # held-out pairs with known flow, rendered at the first validation
        self._zero_flow_epe = float("nan")

    def _build_networks(self) -> None:
        cfg = self.cfg
        self.model = ARVo(cfg.model).to(self.device)
        self.disc: nn.Module = TemporalDiscriminator(width=cfg.model.disc_width).to(self.device)
        if cfg.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.train_model: nn.Module = self.model
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_model = nn.parallel.DistributedDataParallel(self.model, device_ids=ids, find_unused_parameters=True)
            self.disc = nn.parallel.DistributedDataParallel(self.disc, device_ids=ids)
        self.eager_train_model = self.train_model
        if cfg.compile:
            self.train_model = torch.compile(self.train_model)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.opt_d = torch.optim.Adam(self.disc.parameters(), lr=cfg.lr)

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
        """One optimisation step of the restorer (and of the discriminator when the adversarial term is on)."""
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
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.use_amp):
            pixel, outputs = restoration_losses(self.train_model, blur, sharp, stages, cfg.pixel_loss)
            adv = generator_adversarial_loss(self.disc, outputs) if use_adv else torch.zeros((), device=self.device)
            loss = pixel + cfg.adv_weight * adv
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.opt)
        nn.utils.clip_grad_norm_(self.model.parameters(), cfg.clip_grad)
        self.scaler.step(self.opt)
        self.scaler.update()
        if use_adv:
            with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.use_amp):
                d_loss = discriminator_loss(self.disc, sharp, outputs, cfg.model.window)
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
        from .flow_pretrain import fit_flow

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
        from .eval import to_uint8
        from .metrics import psnr

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
        return trainer_state(self)

    def save_checkpoint(self, path: Path | None = None) -> Path:
        path = path or self.out_dir / "checkpoint.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_checkpoint(self.state(), path)
        return path

    def load_checkpoint(self, path: str | os.PathLike[str]) -> None:
        if load_trainer_state(self, read_checkpoint(path, self.device), path):
            log(f"validation set changed at step {self.step_index} (now {self.val_set}); best weights tracked from here")

    # -- driver ------------------------------------------------------------------------------------

    def fit(self) -> None:
        """Trains to ``cfg.steps`` (or the time limit), validating, checkpointing and, at the end,
        recording the segment in ``segments.jsonl``."""
        cfg = self.cfg
        start = time.time()
        first = self.step_index
        self.step_seconds = []
        while self.step_index < cfg.steps:
            record = self.timed_step()
            n = self.step_index
            # Every rank sees the same verdict, so DDP replicas stop at the same step.
            out_of_time = self.out_of_time(start)
            if self.rank != 0:
                if out_of_time:
                    break
                continue
            last = n == cfg.steps or out_of_time
            if n % cfg.log_every == 0 or last:
                self._log_step(record, first, start)
            if self.val_dataset is not None and (n % cfg.validate_every == 0 or last):
                self._validate_and_keep_best()
            if n % cfg.checkpoint_every == 0 or last:
                self.save_checkpoint()
                self.write_outputs()
            if out_of_time:
                log(f"time limit of {cfg.time_limit:.0f} s reached at step {n}: checkpoint written, stopping")
                break
        if self.rank == 0 and self.step_index > first:
            append_segment(self.out_dir / "segments.jsonl", self.segment_record(first))

    def timed_step(self) -> dict[str, float]:
        """``step()``, timed (it ends on ``.item()``, so the device's work is inside the time). A compiled
        model that fails to compile falls back to the eager one, once, with a log line."""
        t0 = time.perf_counter()
        try:
            record = self.step()
        except Exception as exc:
            if self.train_model is self.eager_train_model:
                raise
            log(f"torch.compile failed ({type(exc).__name__}: {str(exc)[:200]}); training eagerly")
            self.train_model = self.eager_train_model
            self.segment_extra["compile_failed"] = f"{type(exc).__name__}: {str(exc)[:500]}"
            t0 = time.perf_counter()
            record = self.step()
        self.step_seconds.append(time.perf_counter() - t0)
        return record

    def throughput(self, warmup: int = 5) -> dict[str, Any]:
        """Training samples per second of this segment's steps, all of them and past the first ``warmup``
        (compilation, cuDNN's algorithm search); validation and checkpoints excluded."""
        samples = self.cfg.batch_size * self.world
        steady = self.step_seconds[warmup:] if len(self.step_seconds) > warmup else self.step_seconds
        total = sum(self.step_seconds)
        return {"steps_timed": len(self.step_seconds), "warmup_s": round(sum(self.step_seconds[:warmup]), 3),
                "samples_per_s_all": round(samples * len(self.step_seconds) / max(total, 1e-9), 2),
                "samples_per_s": round(samples * len(steady) / max(sum(steady), 1e-9), 2),
                "precision": str(self.amp_dtype).removeprefix("torch.") if self.amp_dtype else "float32",
                "compiled": self.train_model is not self.eager_train_model}

    def _log_step(self, record: dict[str, float], first: int, start: float) -> None:
        cfg, n = self.cfg, self.step_index
        rate = (n - first) / max(time.time() - start, 1e-9)
        eta = (cfg.steps - n) / max(rate, 1e-9)
        log(f"step {n}/{cfg.steps} stages {self.stages_at(n - 1)} loss {record['loss']:.4f} "
            f"{cfg.pixel_loss} {record['pixel']:.4f} adv {record['adv']:.3f} lr {self.lr_at(n - 1):.2e} "
            f"{rate:.2f} it/s ETA {eta / 60:.1f} min")

    @torch.no_grad()
    def validate_flow(self) -> tuple[float, float] | None:
        """The flow net's end-point error on held-out pairs with known flow, and predicting no motion's.

        The restoration loss alone does not keep the flow net a flow estimator: trained jointly without
        flow supervision it can drift until it no longer aligns, and nothing else in training shows it.
        """
        from .flow_pretrain import end_point_error, held_out_pairs

        flow_net = self.model.stage.flow
        if flow_net is None:
            return None
        if self._flow_pairs is None:
            self._flow_pairs = held_out_pairs(16)
            self._zero_flow_epe = end_point_error(None, self._flow_pairs)
        epe = end_point_error(flow_net, self._flow_pairs)
        self.history.setdefault("val_flow_epe", []).append([self.step_index, epe])
        return epe, self._zero_flow_epe

    def _validate_and_keep_best(self) -> None:
        n = self.step_index
        score = self.validate()
        log(f"step {n}: validation PSNR {score:.2f} dB")
        flow = self.validate_flow()
        if flow is not None:
            epe, still = flow
            log(f"step {n}: flow net end-point error {epe:.2f} px on held-out pairs (no motion: {still:.2f} px)"
                + ("; it no longer aligns the neighbours: retrain it (python -m vsarvo.training.flow_pretrain "
                   "--fresh) and keep it frozen (--freeze-flow-steps)" if epe > still else ""))
        best = max((v for s, v in self.history["val_psnr"][:-1] if s > self.val_since), default=float("-inf"))
        if score > best:
            # The best validated weights so far, kept beside the latest ones.
            save_model(self.model, self.out_dir / "best.safetensors", extra={"train_steps": n, "val_psnr": score})

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

    def segment_record(self, first: int) -> dict[str, Any]:
        """This segment (steps ``first`` .. now) as a ``segments.jsonl`` record."""
        scored = [sv for sv in self.history["val_psnr"] if first < sv[0] <= self.step_index]
        best = max(scored, key=lambda sv: sv[1]) if scored else None
        return {"name": self.out_dir.name, "kind": "train", "start": first, "end": self.step_index,
                "device": device_name(self.device, self.world), "command": self.command,
                "config": self.cfg.to_dict(), "best_val": best, "val_set": self.val_set, "source": "arvo train",
                **self.throughput(), **self.segment_extra}

    def write_outputs(self) -> None:
        """Weights as safetensors + JSON, the loss/validation curves as PNG, history as JSON."""
        save_model(self.model, self.out_dir / "arvo.safetensors", extra={"train_steps": self.step_index})
        write_text_atomic(self.out_dir / "history.json", json.dumps(self.history))
        plot_curves(self.history, self.out_dir / "curves.png")
