"""One GPU training segment in one device call, and the joining of what it sends back.

``python -m vsarvo.training.gpu_segment run --resume runs/arvo_tiny/rolling.pt --out $OUT`` continues the
rolling checkpoint's run with its own settings, changed only where a flag says (batch, crop, precision,
compile): the host's idle cores render procedural clips into uint8 shards (``vsarvo.training.shards``)
while the GPU trains from them (a ShardBank on the GPU, refreshed as shards arrive, so a step never
waits for the host). With ``--carried-shards DIR`` (footage shards rendered beforehand on a machine
with ffmpeg and the photos, :mod:`vsarvo.training.footage_shards`) a ``--footage-share`` of each
batch's samples comes from those, the rest from the procedural shards; it measures the GPU's bf16 matrix rate and the FLOPs of one sample first, trains
until ``--budget`` seconds after its start less a reserve for the last validation and the writing,
and leaves at most 8 files under ``--out``, each under 16 MiB (the device tool's limits):

- ``segment.json``: the segment record (segments.jsonl's fields plus samples/s, the GPU's name, its
  measured bf16 rate, the step's FLOPs and their fraction of that rate, the bundle's parts and SHA-256);
- ``curves.png``: the run's loss and validation curves;
- ``run.tar.000``, ``run.tar.001``, ...: one tar of checkpoint.pt, arvo.safetensors, best.safetensors,
  history.json and train_config.json, cut into parts below 15 MiB; with ``--slim`` only checkpoint.pt,
  without the optimisers' moments (the next segment starts them afresh), history.json and
  train_config.json, for a model whose full bundle would not fit (``vsarvo.training.capacity``'s wide one).

``python -m vsarvo.training.gpu_segment join FOLDER --into DIR [--run runs/arvo_tiny]`` re-joins the
parts, checks their SHA-256 against segment.json, unpacks the tar into DIR and, with ``--run``, makes
its checkpoint that run's rolling.pt and appends the record to its segments.jsonl.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

from vsarvo.atomic import atomic_path, write_text_atomic

__all__ = ["PART_BYTES", "BUNDLED", "SLIM_BUNDLED", "ON_DEVICE", "config_from_checkpoint", "slim_checkpoint", "bundle", "unpack",
           "join", "training_shards", "data_record", "run_segment", "add_data_arguments",
           "check_data_arguments", "main"]

PART_BYTES = 15 * 2**20
BUNDLED = ("checkpoint.pt", "arvo.safetensors", "best.safetensors", "history.json", "train_config.json")
#: What ``--slim`` returns: the checkpoint (its weights are the model's) without the optimisers' moments.
SLIM_BUNDLED = ("checkpoint.pt", "history.json", "train_config.json")


# What a device call's training data is, whatever the checkpoint trained on: procedural shards rendered
# there, plus footage only as carried shards (the device has neither the photos nor ffmpeg to render it).
ON_DEVICE = {"data_kind": "procedural", "data": None}


def config_from_checkpoint(path: Path, **overrides: Any) -> Any:
    """The TrainConfig a checkpoint was trained with for a device call: ``overrides`` (those not None) and
    then ON_DEVICE applied, checked before any work."""
    from vsarvo.model import ARVoConfig

    from .checkpoint import read_checkpoint
    from .config import TrainConfig

    saved = json.loads(read_checkpoint(path)["config"])
    known = {f.name for f in dataclasses.fields(TrainConfig)} - {"model"}
    settings = {k: v for k, v in saved.items() if k in known}
    settings.update({k: v for k, v in overrides.items() if v is not None})
    settings.update(ON_DEVICE)
    return TrainConfig(model=ARVoConfig.from_dict(saved["model"]), **settings)


def slim_checkpoint(path: Path) -> None:
    """Rewrites the checkpoint at ``path`` with empty optimiser states (their parameter groups kept), about a
    third of a wide model's checkpoint; resuming it starts Adam's moments afresh."""
    from .checkpoint import read_checkpoint, write_checkpoint

    state = read_checkpoint(path)
    for key in ("opt", "opt_d"):
        state[key] = {"state": {}, "param_groups": state[key]["param_groups"]}
    write_checkpoint(state, path)


def bundle(run_dir: Path, out: Path, part_bytes: int = PART_BYTES, names: Sequence[str] = BUNDLED) -> dict[str, Any]:
    """Tars ``run_dir``'s files ``names`` (those present) and cuts the tar into ``out/run.tar.NNN`` parts."""
    with tempfile.TemporaryDirectory() as tmp:
        tar_path = Path(tmp) / "run.tar"
        with tarfile.open(tar_path, "w") as tar:
            for name in names:
                if (run_dir / name).is_file():
                    tar.add(run_dir / name, arcname=name)
        data = tar_path.read_bytes()
    parts = []
    for i in range(0, len(data), part_bytes):
        part = out / f"run.tar.{i // part_bytes:03d}"
        with atomic_path(part) as tmp_part:
            Path(tmp_part).write_bytes(data[i:i + part_bytes])
        parts.append(part.name)
    return {"bundle_parts": parts, "bundle_sha256": hashlib.sha256(data).hexdigest(), "bundle_bytes": len(data)}


def join(folder: Path, into: Path, run: Path | None = None) -> dict[str, Any]:
    """Re-joins a segment's parts from ``folder`` into ``into`` (see the module's docstring)."""
    record = json.loads((folder / "segment.json").read_text())
    unpack(folder, record, into)
    if run is not None:
        from .segments import append_segment

        with atomic_path(run / "rolling.pt") as tmp_ckpt:
            shutil.copyfile(into / "checkpoint.pt", tmp_ckpt)
        append_segment(run / "segments.jsonl", {k: v for k, v in record.items() if not k.startswith("bundle_")})
    return record


def unpack(folder: Path, record: dict[str, Any], into: Path) -> None:
    """Joins the parts ``record`` (what :func:`bundle` returned) names in ``folder``, checks their SHA-256
    and unpacks the tar into ``into``."""
    missing = [p for p in record["bundle_parts"] if not (folder / p).is_file()]
    if missing:
        raise ValueError(f"{folder} lacks the parts {missing}: fetch every file the device call returned")
    data = b"".join((folder / p).read_bytes() for p in record["bundle_parts"])
    if hashlib.sha256(data).hexdigest() != record["bundle_sha256"]:
        raise ValueError(f"the parts in {folder} do not join into the bundle its record names (SHA-256 differs)")
    into.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tar_path = Path(tmp) / "run.tar"
        tar_path.write_bytes(data)
        with tarfile.open(tar_path) as tar:
            tar.extractall(into, filter="data")


def start_renderer(args: argparse.Namespace, folder: Path, cfg: Any) -> subprocess.Popen[bytes]:
    """Renders the training shards in the background, in ``args.render_workers`` processes."""
    command = [sys.executable, "-m", "vsarvo.training.shards", "--out", str(folder), "--clips", str(args.clips),
               "--frames", str(cfg.procedural_frames), "--size", str(cfg.procedural_size), "--seed", str(cfg.seed),
               "--workers", str(args.render_workers), "--per-shard", str(args.per_shard)]
    return subprocess.Popen(command)


def _command(args: argparse.Namespace) -> str:
    """The command that reproduces this segment (what the record's ``command`` holds)."""
    words = ["python", "-m", "vsarvo.training.gpu_segment", "run", "--resume", args.resume, "--budget", str(args.budget),
             "--batch-size", str(args.batch_size), "--crop", str(args.crop), "--precision", args.precision,
             "--compile" if args.compile else "--no-compile"]
    words += ["--shards", args.shards] if args.shards else ["--clips", str(args.clips)]
    if args.carried_shards:
        words += ["--carried-shards", args.carried_shards, "--footage-share", str(args.footage_share)]
    if args.slim:
        words += ["--slim"]
    return shlex.join(words)


def data_record(dataset: Any) -> dict[str, Any]:
    """The segment record's account of its training data: clips held and, when mixed, samples drawn."""
    if not hasattr(dataset, "drawn"):
        return {"shard_clips": dataset.clips}
    return {"shard_clips": dataset.second.clips, "footage_clips": dataset.first.clips,
            "footage_share": dataset.share, "footage_samples": dataset.drawn[0], "procedural_samples": dataset.drawn[1]}


def wait_for_shard(folder: Path, renderer: subprocess.Popen[bytes], timeout: float = 300.0) -> None:
    from .shards import SHARD_GLOB

    deadline = time.time() + timeout
    while not any(folder.glob(SHARD_GLOB)):
        if renderer.poll() is not None:
            raise RuntimeError(f"the shard renderer ended (exit {renderer.returncode}) before writing a shard")
        if time.time() > deadline:
            raise RuntimeError(f"no shard in {folder} after {timeout:.0f} s")
        time.sleep(0.5)


@contextlib.contextmanager
def training_shards(args: argparse.Namespace, work: Path, cfg: Any) -> Iterator[Path]:
    """The folder a device call trains from: ``args.shards``, or ``work/shards`` filled by a background
    renderer (``start_renderer``) that has written its first shard; the renderer is stopped on exit."""
    if args.shards:
        yield Path(args.shards)
        return
    folder = work / "shards"
    renderer = start_renderer(args, folder, cfg)
    try:
        wait_for_shard(folder, renderer)
        yield folder
    finally:
        if renderer.poll() is None:
            renderer.terminate()
            renderer.wait(timeout=30)


def _measure(trainer: Any) -> dict[str, Any]:
    """The device's bf16 matrix rate and one training sample's FLOPs (on two samples of the bank)."""
    from .data.run_data import fetch_batch
    from .throughput import bf16_matmul_rate, flops_per_sample

    rate = bf16_matmul_rate(trainer.device)
    blur, sharp = fetch_batch(trainer.dataset, 2, 12345)
    flops = flops_per_sample(trainer.model, blur.to(trainer.device), sharp.to(trainer.device),
                             trainer.stages_at(trainer.step_index), trainer.cfg.pixel_loss)
    return {"rate": rate, "flops": flops}


def run_segment(args: argparse.Namespace) -> dict[str, Any]:
    """Resume, train to the budget, validate, write ``args.out`` (see the module's docstring)."""
    start = time.time()
    resume = Path(args.resume)
    # Checked before anything is rendered or written.
    cfg = config_from_checkpoint(resume, batch_size=args.batch_size, crop=args.crop, precision=args.precision,
                                 compile=args.compile, amp=True, device=args.device, steps=10**9,
                                 checkpoint_every=10**9, render_workers=0)
    work = Path(tempfile.mkdtemp(prefix="arvo-gpu-segment-", dir=args.work))
    try:
        return _train_and_write(args, cfg, work, start)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _train_and_write(args: argparse.Namespace, cfg: Any, work: Path, start: float) -> dict[str, Any]:
    from .loop import Trainer, log
    from .shards import with_footage
    from .throughput import device_report

    out, resume = Path(args.out), Path(args.resume)
    with training_shards(args, work, cfg) as shard_dir:
        cfg = dataclasses.replace(cfg, out_dir=str(work / "run"), shards=str(shard_dir))
        trainer = Trainer(cfg, command=_command(args))
        trainer.load_checkpoint(resume)
        measured = _measure(trainer)
        if args.carried_shards:
            trainer.dataset = with_footage(trainer.dataset, args.carried_shards, args.footage_share)
        trainer.cfg.time_limit = max(1.0, args.budget - (time.time() - start) - args.reserve)
        log(f"resumed at step {trainer.step_index}; training for {trainer.cfg.time_limit:.0f} s "
            f"(setup took {time.time() - start:.0f} s)")
        trainer.fit()
    from .segments import read_segments

    record = read_segments(trainer.out_dir / "segments.jsonl")[-1]
    record.update(device_report(trainer.device, measured["flops"], record["samples_per_s"], measured["rate"]))
    record.update(data_record(trainer.dataset), setup_s=round(time.time() - start, 1))
    out.mkdir(parents=True, exist_ok=True)
    if args.slim:
        slim_checkpoint(trainer.out_dir / "checkpoint.pt")
    record.update(bundle(trainer.out_dir, out, names=SLIM_BUNDLED if args.slim else BUNDLED))
    if (trainer.out_dir / "curves.png").is_file():
        shutil.copyfile(trainer.out_dir / "curves.png", out / "curves.png")
    write_text_atomic(out / "segment.json", json.dumps(record, indent=1, sort_keys=True))
    return record


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every device training call takes (``gpu_segment run``, ``capacity device``): batch,
    crop, precision, device, the shard sources and the background renderer."""
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--precision", default="bf16")
    parser.add_argument("--device", help="default: the GPU when there is one")
    parser.add_argument("--shards", help="pre-rendered shards to train from (default: rendered during the run)")
    parser.add_argument("--carried-shards", help="footage shards carried with the call, mixed into every batch")
    parser.add_argument("--footage-share", type=float, default=0.6, help="share of each batch from --carried-shards")
    parser.add_argument("--clips", type=int, default=1024, help="clips the background renderer writes")
    parser.add_argument("--render-workers", type=int, default=14)
    parser.add_argument("--per-shard", type=int, default=16)
    parser.add_argument("--work", help="folder for the run's scratch files (default: the system's temp folder)")


def check_data_arguments(args: argparse.Namespace, positive: Sequence[str] = ()) -> None:
    """``add_data_arguments``' values checked (the renderer's counts and ``positive``, further option names,
    above 0; the footage share in [0, 1]; the carried shards a folder); ValueError names the fix."""
    for name in ("clips", "render_workers", "per_shard", *positive):
        if not getattr(args, name) > 0:
            raise ValueError(f"--{name.replace('_', '-')} {getattr(args, name)} is out of range: give a positive value")
    if not 0 <= args.footage_share <= 1:
        raise ValueError(f"--footage-share {args.footage_share} is out of range: give a share in [0, 1]")
    if args.carried_shards and not Path(args.carried_shards).is_dir():
        raise ValueError(f"--carried-shards {args.carried_shards} is not a folder: render it with "
                         "`python -m vsarvo.training.shards footage --out DIR` and carry it")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m vsarvo.training.gpu_segment", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="action", required=True)
    r = sub.add_parser("run", help="train one segment from a checkpoint")
    r.add_argument("--resume", required=True, help="the rolling checkpoint to continue")
    r.add_argument("--out", required=True, help="folder for the (at most 8) files that come back")
    r.add_argument("--budget", type=float, default=500.0, help="seconds from start to the written outputs")
    r.add_argument("--reserve", type=float, default=45.0, help="seconds kept for the last validation and writing")
    r.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True)
    add_data_arguments(r)
    r.add_argument("--slim", action="store_true",
                   help="return the checkpoint without the optimisers' moments (the next segment starts them afresh) "
                        "and no separate weight files: for a model whose full bundle would not fit what a call returns")
    j = sub.add_parser("join", help="re-join a segment's returned files")
    j.add_argument("folder", help="the folder holding segment.json and run.tar.NNN")
    j.add_argument("--into", required=True, help="folder the bundle is unpacked into")
    j.add_argument("--run", help="also install the checkpoint as this run's rolling.pt and append the record")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # A timeout's SIGTERM unwinds like an exception, so the scratch folder and the renderer go with it.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        if args.action == "join":
            join(Path(args.folder), Path(args.into), Path(args.run) if args.run else None)
            return 0
        check_data_arguments(args, positive=("budget",))
        record = run_segment(args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"gpu_segment: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({k: record.get(k) for k in ("start", "end", "samples_per_s", "gpu", "matmul_fraction",
                                                 "best_val", "footage_samples", "procedural_samples")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
