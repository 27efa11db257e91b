"""Which model width buys the most realistic-set quality per GPU-minute: two candidates, one device call.

``python -m vsarvo.training.capacity device --resume runs/arvo_tiny/rolling.pt --realistic FILE --out $OUT``
(what ``training/gpu_capacity.sh`` runs) continues the rolling checkpoint's run as two candidates: ``tiny``,
the checkpoint as it is, and ``wide``, the same checkpoint grown by :mod:`vsarvo.training.grow` (``--grow
recon_width=32`` by default). Growing is function-preserving, so both start from the same quality; they
train from one shared shard bank (procedural shards rendered meanwhile by the host's other cores, plus the
carried footage shards at ``--footage-share``) with the same batch, crop, precision, learning rate and
batch seeds, taking turns: each trains until its own training steps have taken ``k`` times an equal chunk
of seconds, is scored on the saved realistic set (:func:`~.realistic_eval.load_realistic_set`), and then
the other does the same. The chunk is planned from the budget once the scoring and the first steps have
been timed. GPU seconds are the summed times of the training steps (each ends on ``.item()``, so the
device's work is inside), less the first ``--warmup`` steps of each candidate, which hold cuDNN's
algorithm search (and compilation, with ``--compile``); scoring and writing are not counted. At most
8 files come back, each under 16 MiB, rewritten after every scoring so a call cut short still returns
every point reached:

- ``capacity.json``: per candidate its config, parameters, fp32 weight bytes, samples/s, the GPU's name
  and the curve of (GPU seconds, steps, realistic gain, frames made worse, mild-blur gain) points, the
  per-frame PSNR of its last point; the data drawn, the bundle's parts and SHA-256;
- ``capacity.png``: the curves; ``capacity_log.txt`` (written by the shell script): the log;
- ``run.tar.000``, ``run.tar.001``: one tar of each candidate's ``NAME.safetensors`` and its JSON sidecar,
  cut into 15 MiB parts (a wide model's fp32 file alone is over the 16 MiB a returned file may hold).

``python -m vsarvo.training.capacity report FILES_AT --out runs/capacity`` (here, after the call) checks
those files, unpacks the weights, measures each candidate's CPU time per 540p frame on this machine,
and writes ``capacity.json``, ``capacity.md`` (the table) and the winner's ``winner.safetensors`` (with
its sidecar) under ``--out``. The winner is the candidate with the higher realistic gain at the last
point both reached (equal GPU seconds); the margin comes with its standard error over the scored frames.

A full training checkpoint of the wide model (weights and two Adam moments) and its weight files would
not fit what a later call returns, so only weights come back, and a later segment continues the winner
from them with fresh optimiser moments:
``python -m vsarvo.training.capacity checkpoint --resume runs/arvo_tiny/rolling.pt --weights
runs/capacity/winner.safetensors --out runs/arvo_wide/rolling.pt`` grows the rolling checkpoint to the
winner's config (step count, history and discriminator carry over), puts the winner's weights in and
empties the optimisers' moments (``gpu_segment.slim_checkpoint``); ``gpu_segment run --resume
runs/arvo_wide/rolling.pt --slim`` then trains it and returns such a slim checkpoint again.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from vsarvo.atomic import atomic_path, write_text_atomic

from .gpu_segment import add_data_arguments, check_data_arguments

__all__ = ["MAX_WEIGHT_BYTES", "check_limits", "parse_grow", "candidate_configs", "weight_bytes", "winner_checkpoint",
           "run_capacity", "plot_capacity", "read_returned", "cpu_ms_per_frame", "decide", "markdown_table", "report",
           "main"]

#: The largest fp32 weight file a candidate may have (the size a second shipped weights file may reach).
MAX_WEIGHT_BYTES = 25_000_000
#: The device tool's limits on what comes back.
MAX_FILES, MAX_FILE_BYTES = 8, 16 * 2**20
RECORD = "capacity.json"


def parse_grow(items: Sequence[str]) -> dict[str, int | bool]:
    """``["recon_width=32", "recon_blocks=10"]`` as grow_config's keyword arguments."""
    from .grow import GROWABLE, SWITCHABLE

    changes: dict[str, int | bool] = {}
    for item in items:
        name, _, value = item.partition("=")
        if name not in GROWABLE + SWITCHABLE or not value:
            raise ValueError(f"--grow {item!r}: give NAME=VALUE with NAME one of {', '.join(GROWABLE + SWITCHABLE)}")
        changes[name] = value.lower() in ("1", "true", "on") if name in SWITCHABLE else int(value)
    if not changes:
        raise ValueError("--grow: give at least one NAME=VALUE, e.g. recon_width=32")
    return changes


def weight_bytes(config: Any) -> int:
    """The fp32 size of a model's parameters (the safetensors file is this plus a small header)."""
    from vsarvo.model.arvo import ARVo

    return 4 * sum(p.numel() for p in ARVo(config).parameters())


def candidate_configs(base: Any, changes: dict[str, int | bool], max_bytes: int = MAX_WEIGHT_BYTES) -> dict[str, Any]:
    """``{"tiny": base, "wide": base grown by changes}``; refuses a wide model whose fp32 weights exceed
    ``max_bytes``."""
    from .grow import grow_config

    wide = grow_config(base, **changes)
    if wide == base:
        raise ValueError(f"--grow {changes} leaves the model as it is: give a wider value")
    size = weight_bytes(wide)
    if size > max_bytes:
        raise ValueError(f"the grown model's fp32 weights are {size / 1e6:.1f} MB, over {max_bytes / 1e6:.0f} MB: "
                         "grow it less")
    return {"tiny": base, "wide": wide}


def _growth(base: Any, grown: Any) -> dict[str, Any]:
    """The fields in which ``grown`` differs from ``base`` (grow_config's keyword arguments)."""
    return {f.name: getattr(grown, f.name) for f in dataclasses.fields(grown)
            if getattr(grown, f.name) != getattr(base, f.name)}


def winner_checkpoint(base: Path, weights: Path, out: Path) -> Any:
    """The checkpoint a later segment continues the winner from: ``base`` (the rolling checkpoint both
    candidates started from) grown to the weights' config, the weights as its model, and the optimisers'
    moments empty (a wide model's full checkpoint would not travel); returns the model config."""
    from vsarvo.model import ARVoConfig
    from vsarvo.weights import WeightsError, load_model

    from .checkpoint import read_checkpoint, write_checkpoint
    from .gpu_segment import slim_checkpoint
    from .grow import grow_checkpoint

    try:
        model = load_model(weights)
    except WeightsError as error:
        raise ValueError(str(error)) from None
    state = read_checkpoint(base)
    changes = _growth(ARVoConfig.from_dict(json.loads(state["config"])["model"]), model.config)
    if changes:
        grow_checkpoint(base, out, **changes)
        state = read_checkpoint(out)
    state["model"] = model.state_dict()
    write_checkpoint(state, out)
    slim_checkpoint(out)
    return model.config


# -- the device side ---------------------------------------------------------------------------------


def _shared_bank(args: argparse.Namespace, shard_dir: Path, cfg: Any, device: torch.device) -> Any:
    """One bank both candidates draw from: the procedural shards, mixed with the carried footage shards."""
    from .shards import ShardBank, with_footage

    bank = ShardBank(shard_dir, window=cfg.model.window, crop=cfg.crop, device=device)
    return with_footage(bank, args.carried_shards, args.footage_share) if args.carried_shards else bank


def _trainers(args: argparse.Namespace, cfg: Any, configs: dict[str, Any], bank: Any, work: Path) -> dict[str, Any]:
    """A Trainer per candidate on the shared bank, without validation; the wide one resumes the grown checkpoint."""
    from .grow import grow_checkpoint
    from .loop import Trainer

    trainers = {}
    for name, model_config in configs.items():
        checkpoint = Path(args.resume)
        if model_config != cfg.model:
            checkpoint = work / f"{name}.pt"
            grow_checkpoint(args.resume, checkpoint, **_growth(cfg.model, model_config))
        run_cfg = dataclasses.replace(cfg, model=model_config, out_dir=str(work / name))
        trainer = Trainer(run_cfg, dataset=bank, val_dataset=None, command=None)
        trainer.load_checkpoint(checkpoint)
        trainers[name] = trainer
    return trainers


def _score(trainer: Any, videos: list[Any], records: dict[str, dict], spec: Any) -> dict[str, Any]:
    """The realistic set's gain, share of frames made worse and mild-blur gain, with the per-frame PSNR."""
    from .realistic_eval import score_realistic

    with contextlib.redirect_stderr(io.StringIO()):  # one line per clip: kept out of the log
        scored = score_realistic(trainer.model, videos, records, spec=spec)
    frames = [p for v in videos for p in scored["videos"][v.name]["model"]["psnr"]]
    inputs = [p for v in videos for p in scored["videos"][v.name]["input"]["psnr"]]
    mild = scored["by_class"]["mild"]
    return {"gain_db": scored["gain_db"], "frames_worse": scored["frames_worse"], "model_psnr": scored["model_psnr"],
            "mild_gain_db": mild["gain_db"] if mild["frames"] else None, "frame_psnr": frames, "input_psnr": inputs}


def _gpu_seconds(trainer: Any, warmup: int) -> float:
    return float(sum(trainer.step_seconds[warmup:]))


def _point(trainer: Any, scored: dict[str, Any], warmup: int, first_step: int, target: float,
           start: float) -> dict[str, Any]:
    keep = ("gain_db", "frames_worse", "mild_gain_db", "model_psnr")
    return {"target_s": round(target, 3), "gpu_s": round(_gpu_seconds(trainer, warmup), 3),
            "steps": trainer.step_index - first_step, "wall_s": round(time.time() - start, 1),
            **{k: scored[k] for k in keep}}


def _candidate_record(name: str, trainer: Any, warmup: int) -> dict[str, Any]:
    device = trainer.device
    throughput = trainer.throughput(warmup=warmup)
    return {"name": name, "config": trainer.cfg.model.to_dict(),
            "params": sum(p.numel() for p in trainer.model.parameters()),
            "weight_bytes": weight_bytes(trainer.cfg.model), "samples_per_s": throughput["samples_per_s"],
            "precision": throughput["precision"], "compiled": throughput["compiled"],
            "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else device.type, "points": []}


def _write(out: Path, record: dict[str, Any], trainers: dict[str, Any], work: Path) -> None:
    """Every returned file but the log: the weights' bundle, the curves, and the record (last, with the
    bundle's SHA-256)."""
    from vsarvo.weights import save_model

    from .gpu_segment import PART_BYTES, bundle

    weights = work / "weights"
    names = []
    for name, trainer in trainers.items():
        save_model(trainer.model, weights / f"{name}.safetensors", extra={"train_steps": trainer.step_index})
        names += [f"{name}.safetensors", f"{name}.json"]
    for old in out.glob("run.tar.*"):
        old.unlink()
    parts = bundle(weights, out, PART_BYTES, names)
    record.update(parts)
    plot_capacity(record, out / "capacity.png")
    write_text_atomic(out / RECORD, json.dumps(record, indent=1, sort_keys=True))
    check_limits(out)


def check_limits(out: Path) -> None:
    """Refuses an ``out`` that the device tool would not bring back whole (too many files, or one too large)."""
    files = [p for p in out.rglob("*") if p.is_file()]
    large = [f"{p.name} ({p.stat().st_size} bytes)" for p in files if p.stat().st_size > MAX_FILE_BYTES]
    if len(files) > MAX_FILES or large:
        raise ValueError(f"{out} holds {len(files)} files{', too large: ' + ', '.join(large) if large else ''}: "
                         f"the device call returns at most {MAX_FILES}, each up to {MAX_FILE_BYTES} bytes")


def _chunk_seconds(left: float, points: int, per_point_s: float, candidates: int) -> float:
    """The training seconds per candidate and point that fit ``left`` seconds (5 % kept for the steps' overheads)."""
    chunk = (left / points - per_point_s) / candidates / 1.05
    if chunk <= 0:
        raise ValueError(f"{left:.0f} s are left after the setup, too few for --points {points} that each take "
                         f"{per_point_s:.1f} s to score and write: give a larger --budget or fewer --points")
    return chunk


def _compare(args: argparse.Namespace, trainers: dict[str, Any], realistic: tuple[Any, ...], record: dict[str, Any],
             start: float, work: Path) -> None:
    """Scores both at the start, warms them up, then trains and scores them in turns (see the module's docstring)."""
    from .gpu_segment import data_record
    from .loop import log

    out, first = Path(args.out), {name: t.step_index for name, t in trainers.items()}
    tick = time.time()
    for name, trainer in trainers.items():
        record["start_scores"][name] = {k: v for k, v in _score(trainer, *realistic).items() if not k.endswith("psnr")}
        log(f"{name}: realistic gain at the start {record['start_scores'][name]['gain_db']:+.3f} dB")
    score_s = (time.time() - tick) / len(trainers)
    for trainer in trainers.values():
        while len(trainer.step_seconds) < args.warmup:
            trainer.timed_step()
    for name, trainer in trainers.items():
        record["candidates"][name] = _candidate_record(name, trainer, args.warmup)
    tick = time.time()
    _write(out, record, trainers, work)
    # Scoring, writing, and the last step of each chunk, which ends past the chunk's end.
    per_point = len(trainers) * score_s + (time.time() - tick) + sum(t.step_seconds[-1] for t in trainers.values())
    left = args.budget - (time.time() - start) - args.reserve
    chunk = _chunk_seconds(left, args.points, per_point, len(trainers))
    record["chunk_s"] = round(chunk, 3)
    log(f"setup and warm-up took {time.time() - start:.0f} s; {args.points} points of {chunk:.1f} GPU-s per candidate")
    point_s = 0.0
    for k in range(1, args.points + 1):
        if time.time() - start + point_s > args.budget - args.reserve:
            log(f"stopping after {k - 1} points: the next would end past the budget")
            break
        tick = time.time()
        for name, trainer in trainers.items():
            while _gpu_seconds(trainer, args.warmup) < k * chunk:
                trainer.timed_step()
            scored = _score(trainer, *realistic)
            candidate = record["candidates"][name]
            now = _candidate_record(name, trainer, args.warmup)
            candidate.update({key: v for key, v in now.items() if key != "points"})
            candidate["points"].append(_point(trainer, scored, args.warmup, first[name], k * chunk, start))
            candidate["frame_psnr"], record["input_psnr"] = scored["frame_psnr"], scored["input_psnr"]
            log(f"{name}: {candidate['points'][-1]}")
        record.update(data_record(next(iter(trainers.values())).dataset), total_s=round(time.time() - start, 1))
        _write(out, record, trainers, work)
        point_s = time.time() - tick


def run_capacity(args: argparse.Namespace) -> dict[str, Any]:
    """Set up both candidates and compare them, writing ``args.out`` as the comparison goes."""
    from .eval import Video
    from .gpu_segment import config_from_checkpoint, training_shards
    from .loop import pick_device
    from .realistic_eval import load_realistic_set

    start = time.time()
    # Checked before anything is rendered or written.
    cfg = config_from_checkpoint(Path(args.resume), batch_size=args.batch_size, crop=args.crop,
                                 precision=args.precision, compile=args.compile, amp=True, device=args.device,
                                 steps=10**9, checkpoint_every=10**9, render_workers=0)
    configs = candidate_configs(cfg.model, parse_grow(args.grow), args.max_weight_bytes)
    videos, records, spec = load_realistic_set(args.realistic)
    work = Path(tempfile.mkdtemp(prefix="arvo-capacity-", dir=args.work))
    try:
        with training_shards(args, work, cfg) as shard_dir:
            device = pick_device(cfg)
            trainers = _trainers(args, cfg, configs, _shared_bank(args, shard_dir, cfg, device), work)
            on_device = [Video(v.name, v.blur.to(device), v.sharp.to(device)) for v in videos]
            record = {"arguments": vars(args), "resumed_step": next(iter(trainers.values())).step_index,
                      "realistic_set": dataclasses.asdict(spec), "realistic_clips": len(videos),
                      "warmup_steps": args.warmup, "batch_size": cfg.batch_size, "crop": cfg.crop, "lr": cfg.lr,
                      "precision": cfg.precision, "start_scores": {}, "candidates": {}}
            _compare(args, trainers, (on_device, records, spec), record, start, work)
            return record
    finally:
        shutil.rmtree(work, ignore_errors=True)


def plot_capacity(record: dict[str, Any], path: Path) -> None:
    """Realistic gain, mild-blur gain and frames made worse against GPU seconds, one line per candidate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    keys = (("gain_db", "realistic gain (dB)"), ("mild_gain_db", "mild-blur gain (dB)"),
            ("frames_worse", "frames made worse"))
    for name, candidate in record["candidates"].items():
        start = record["start_scores"][name]
        points = [dict(start, gpu_s=0.0)] + candidate["points"]
        for axis, (key, title) in zip(axes, keys):
            shown = [(p["gpu_s"], p[key]) for p in points if p.get(key) is not None]
            if shown:
                axis.plot(*zip(*shown), marker="o", label=f"{name} ({candidate['params'] / 1e6:.2f} M)")
            axis.set(title=title, xlabel="GPU seconds")
    axes[0].legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80)
    plt.close(fig)


# -- the report, here ----------------------------------------------------------------------------------


def read_returned(folder: Path, into: Path) -> dict[str, Any]:
    """The returned record, its weights unpacked into ``into`` and checked; a clear error for anything
    missing or damaged."""
    from .gpu_segment import unpack

    path = folder / RECORD
    if not path.is_file():
        raise ValueError(f"{path} is missing: pass the folder the device call's files were fetched to")
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error}): fetch the files again") from None
    candidates = record.get("candidates", {})
    if len(candidates) < 2 or any(not c.get("points") for c in candidates.values()):
        raise ValueError(f"{path} holds no scored points for two candidates: the call ended before the first "
                         "point (see capacity_log.txt); rerun it with a larger budget")
    unpack(folder, record, into)
    return record


@torch.no_grad()
def cpu_ms_per_frame(model: Any, width: int = 960, height: int = 540, repeats: int = 3) -> float:
    """Milliseconds of CPU time per output frame at ``width`` x ``height``: the median time of one stage call
    (fp32, torch's threads) times the stages, since the filter computes each stage's frame once."""
    model = model.eval().to("cpu")
    frames = torch.rand(3, 1, 3, height, width, generator=torch.Generator().manual_seed(0))
    model.stage(*frames)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model.stage(*frames)
        times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times)) * model.config.stages


def decide(record: dict[str, Any]) -> dict[str, Any]:
    """The candidate with the higher realistic gain at the last point all reached (equal GPU seconds),
    its margin over the runner-up and that margin's standard error over the scored frames."""
    candidates = record["candidates"]
    k = min(len(c["points"]) for c in candidates.values()) - 1
    ranked = sorted(candidates, key=lambda name: candidates[name]["points"][k]["gain_db"], reverse=True)
    winner, runner_up = candidates[ranked[0]], candidates[ranked[1]]
    margin = winner["points"][k]["gain_db"] - runner_up["points"][k]["gain_db"]
    same_point = all(len(c["points"]) == k + 1 for c in candidates.values())
    diffs = np.subtract(winner["frame_psnr"], runner_up["frame_psnr"]) if same_point else np.array([])
    error = float(diffs.std(ddof=1) / np.sqrt(len(diffs))) if len(diffs) > 1 else None
    return {"winner": ranked[0], "runner_up": ranked[1], "point": k, "target_s": winner["points"][k]["target_s"],
            "margin_db": margin, "margin_se_db": error, "frames": len(diffs)}


def markdown_table(record: dict[str, Any]) -> str:
    """The comparison as a markdown table and the verdict, every figure from ``record``."""
    verdict, cpu = record["decision"], record["cpu"]
    k, target = verdict["point"], verdict["target_s"]
    lines = [f"| candidate | params | weights (MB) | GPU samples/s | gain at start (dB) | gain at {target:.0f} GPU-s "
             f"(dB) | frames worse | mild gain (dB) | CPU ms per {cpu['height']}p frame |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, c in record["candidates"].items():
        p, mild = c["points"][k], c["points"][k]["mild_gain_db"]
        cells = [name, f"{c['params'] / 1e6:.2f} M", f"{c['weights_file_bytes'] / 1e6:.1f}",
                 f"{c['samples_per_s']:.0f}",
                 f"{record['start_scores'][name]['gain_db']:+.3f}", f"{p['gain_db']:+.3f}",
                 f"{100 * p['frames_worse']:.1f} %", "n/a" if mild is None else f"{mild:+.3f}",
                 f"{cpu['ms_per_frame'][name]:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    se = verdict["margin_se_db"]
    gpu = next(iter(record["candidates"].values()))["gpu"]
    error = f" (standard error {se:.3f} dB over {verdict['frames']} frames)" if se is not None else ""
    lines += ["", f"Winner: **{verdict['winner']}**, {verdict['margin_db']:+.3f} dB realistic gain over "
              f"{verdict['runner_up']} at {target:.0f} GPU-s each{error}. GPU: {gpu}, batch {record['batch_size']}, "
              f"crop {record['crop']}, resumed at step {record['resumed_step']}; CPU times measured here with "
              f"{cpu['threads']} threads ({cpu['width']}x{cpu['height']}, fp32, median of {cpu['repeats']}, load average "
              f"{cpu['load_average_before']} before)."]
    return "\n".join(lines) + "\n"


def report(folder: Path, out: Path, *, width: int = 960, height: int = 540, repeats: int = 3) -> dict[str, Any]:
    """Checks the returned files, measures CPU time here, writes capacity.json, capacity.md and the winner's weights."""
    from vsarvo.model import ARVoConfig
    from vsarvo.weights import WeightsError, load_model

    with tempfile.TemporaryDirectory() as tmp:
        record = read_returned(folder, Path(tmp))
        models = {}
        for name, candidate in record["candidates"].items():
            weights = Path(tmp) / f"{name}.safetensors"
            try:
                models[name] = load_model(weights)
            except WeightsError as error:
                raise ValueError(f"the returned weights of {name} cannot be used: {error}") from None
            if models[name].config != ARVoConfig.from_dict(candidate["config"]):
                raise ValueError(f"the returned weights of {name} are not the config {RECORD} names: "
                                 "fetch the files again")
            candidate["weights_file_bytes"] = weights.stat().st_size
        # The load average says whether other work shared the cores while the times were taken.
        record["cpu"] = {"width": width, "height": height, "repeats": repeats, "threads": torch.get_num_threads(),
                         "load_average_before": round(os.getloadavg()[0], 2),
                         "ms_per_frame": {name: round(cpu_ms_per_frame(m, width, height, repeats), 1)
                                          for name, m in models.items()}}
        record["decision"] = decide(record)
        out.mkdir(parents=True, exist_ok=True)
        winner = record["decision"]["winner"]
        for suffix in (".safetensors", ".json"):
            with atomic_path(out / f"winner{suffix}") as target:
                shutil.copyfile(Path(tmp) / f"{winner}{suffix}", target)
    if (folder / "capacity.png").is_file():
        with atomic_path(out / "capacity.png") as target:
            shutil.copyfile(folder / "capacity.png", target)
    record = {k: v for k, v in record.items() if not k.startswith("bundle_")}
    write_text_atomic(out / RECORD, json.dumps(record, indent=1, sort_keys=True))
    write_text_atomic(out / "capacity.md", markdown_table(record))
    return record


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m vsarvo.training.capacity", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="action", required=True)
    d = sub.add_parser("device", help="train and score both candidates (the device call)")
    d.add_argument("--resume", required=True, help="the rolling checkpoint both candidates continue")
    d.add_argument("--realistic", required=True, help="the saved realistic set (realistic_eval save)")
    d.add_argument("--out", required=True, help="folder for the (at most 8) files that come back")
    d.add_argument("--grow", action="append", help="NAME=VALUE the wide candidate grows (default recon_width=32)")
    d.add_argument("--max-weight-bytes", type=int, default=MAX_WEIGHT_BYTES, help="the wide model's fp32 limit")
    d.add_argument("--budget", type=float, default=480.0, help="seconds from start to the last written outputs")
    d.add_argument("--reserve", type=float, default=20.0, help="seconds kept for the last scoring and writing")
    d.add_argument("--points", type=int, default=4, help="scorings of each candidate after the start")
    d.add_argument("--warmup", type=int, default=5, help="first steps of each candidate left out of the GPU seconds")
    d.add_argument("--compile", action=argparse.BooleanOptionalAction, default=False,
                   help="torch.compile both (off: compiling two models takes a large share of one call)")
    add_data_arguments(d)
    r = sub.add_parser("report", help="check the returned files, measure CPU time, write the result here")
    r.add_argument("folder", help="the folder holding the returned capacity.json and run.tar.NNN")
    r.add_argument("--out", required=True, help="where capacity.json, capacity.md and winner.safetensors go")
    r.add_argument("--cpu-size", default="960x540", help="WIDTHxHEIGHT of the CPU timing")
    r.add_argument("--cpu-repeats", type=int, default=3)
    c = sub.add_parser("checkpoint", help="the checkpoint a later segment continues the winner from")
    c.add_argument("--resume", required=True, help="the rolling checkpoint both candidates started from")
    c.add_argument("--weights", required=True, help="the winner's weights (report's winner.safetensors)")
    c.add_argument("--out", required=True, help="where the checkpoint goes, e.g. runs/arvo_wide/rolling.pt")
    return p


def _check_device_args(args: argparse.Namespace) -> None:
    check_data_arguments(args, positive=("budget", "points", "batch_size", "crop"))
    if args.warmup < 0:
        raise ValueError(f"--warmup {args.warmup} is out of range: give 0 or more")
    args.grow = args.grow or ["recon_width=32"]


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # A timeout's SIGTERM unwinds like an exception, so the scratch folder and the renderer go with it.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        if args.action == "report":
            width, _, height = args.cpu_size.partition("x")
            if not (width.isdigit() and height.isdigit()):
                raise ValueError(f"--cpu-size {args.cpu_size}: give WIDTHxHEIGHT, e.g. 960x540")
            done = report(Path(args.folder), Path(args.out), width=int(width), height=int(height),
                          repeats=args.cpu_repeats)
            print(markdown_table(done), end="")
            return 0
        if args.action == "checkpoint":
            config = winner_checkpoint(Path(args.resume), Path(args.weights), Path(args.out))
            print(f"wrote {args.out} ({config.to_dict()}); continue it with gpu_segment run --resume {args.out} --slim",
                  file=sys.stderr)
            return 0
        _check_device_args(args)
        record = run_capacity(args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"capacity: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({name: c["points"][-1] if c["points"] else None for name, c in record["candidates"].items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
