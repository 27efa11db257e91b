"""``arvo deblur IN OUT`` (one file) and ``arvo remaster SRC... --out DIR`` (a batch job).

Each file runs as bestsource → ``core.arvo.Deblur`` → ``vspipe | ffmpeg`` (vsarvo.remaster.transcode),
with its audio, subtitles, chapters and metadata copied from the source. A batch job is resumable: a
manifest in the output folder (vsarvo.remaster.manifest) records each file's settings hash and status,
so a re-run skips finished files and redoes changed ones; outputs appear under their final names only
when complete; a failed file is recorded with its reason and the job goes on; the job ends with a
summary (JSON and a table on stderr) and exits non-zero if any file failed. Files run on worker
threads here (``--jobs``, ``--devices``) or as Ray tasks (``--ray``), see vsarvo.remaster.pools.

Importing this module loads neither torch nor VapourSynth: the work happens in vspipe processes.
"""
from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from vsarvo.filter_options import add_arguments
from vsarvo.remaster.disk import check_writable, describe_os_error
from vsarvo.remaster.driver import EXIT_FAILED, run_job
from vsarvo.remaster.encoder import CONTAINERS, ENCODERS, Encoder
from vsarvo.remaster.interrupts import Interrupts, JobInterrupted
from vsarvo.remaster.job import Cancellation, DeblurOptions, FileTask, UsageError
from vsarvo.remaster.leftovers import remove_stale_partials, remove_stale_work_dirs
from vsarvo.remaster.lock import JobLock, JobLockedError, describe_holder
from vsarvo.remaster.manifest import Manifest
from vsarvo.remaster.planner import plan_job
from vsarvo.remaster.progress import JobProgress
from vsarvo.remaster.transcode import transcode_file

if TYPE_CHECKING:
    from vsarvo.remaster.pools import LocalPool, RayPool

__all__ = ["add_parser", "run_deblur", "run_remaster", "parse_devices", "EXIT_USAGE"]

# Exit code when the job cannot start (bad arguments, unwritable output); EXIT_FAILED (1): some file failed.
EXIT_USAGE = 2


# --- command line --------------------------------------------------------------------------------


def _add_common(parser: argparse.ArgumentParser, *, container: bool) -> None:
    add_arguments(parser.add_argument_group("deblurring (arguments of core.arvo.Deblur)"))
    encode = parser.add_argument_group("encoding")
    encode.add_argument("--encoder", choices=ENCODERS, default="x264",
                        help="ffv1 = lossless, x264/x265 = CRF, prores = ProRes 422 HQ (default: x264)")
    encode.add_argument("--crf", type=float, help="x264/x265 quality (default 16 / 18; lower is better)")
    encode.add_argument("--speed", help="x264/x265 preset, ultrafast … placebo (default: medium)")
    encode.add_argument("--ffmpeg-args", metavar="ARGS",
                        help="raw ffmpeg video arguments replacing the encoder preset, e.g. '-c:v libsvtav1 -crf 30'")
    if container:
        encode.add_argument("--container", choices=tuple(CONTAINERS), default="mkv", help="default: mkv")
    encode.add_argument("--audio-codec", default="copy", help="ffmpeg codec for the audio (default: copy)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress output")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``arvo deblur`` and ``arvo remaster``."""
    deblur = subparsers.add_parser(
        "deblur", help="deblur one video file",
        description="Deblur one video file; audio, subtitles, chapters and metadata are copied. "
                    "OUT's extension (.mkv, .mp4, .mov) picks the container.",
    )
    deblur.add_argument("input", metavar="IN")
    deblur.add_argument("output", metavar="OUT")
    deblur.add_argument("-y", "--force", action="store_true", help="replace OUT if it exists (default: refuse)")
    _add_common(deblur, container=False)
    deblur.set_defaults(func=run_deblur)

    remaster = subparsers.add_parser(
        "remaster", help="deblur many files: resumable, parallel, on Ray",
        description="Deblur video files, folders (recursive), globs or list files into --out. "
                    "Re-running skips finished files; changed settings redo them.",
    )
    remaster.add_argument("sources", nargs="+", metavar="SRC",
                          help="video file, folder, glob pattern, list file (.txt) or job manifest (.json)")
    remaster.add_argument("--out", required=True, type=Path, help="output folder (holds the job's manifest)")
    remaster.add_argument("--jobs", type=int,
                          help="files at once on this machine (default: 1 per device, else 1); "
                               "with --ray local, the local Ray instance's CPUs")
    remaster.add_argument("--devices", help="GPUs to use, one worker each, e.g. 0,1 (cuda:0, cuda:1)")
    remaster.add_argument("--ray", metavar="ADDRESS", help="run files as Ray tasks on this cluster ('local': start one here)")
    remaster.add_argument("--gpus-per-file", type=float, help="Ray: GPUs per file (default: 1 if the cluster has GPUs)")
    remaster.add_argument("--cpus-per-file", type=float, default=1.0, help="Ray: CPUs per file (default: 1)")
    remaster.add_argument("--retries", type=int, default=0, help="tries again for a failed file (default: 0)")
    remaster.add_argument("--force", action="store_true", help="redo files that are already done")
    _add_common(remaster, container=True)
    remaster.set_defaults(func=run_remaster)


def parse_devices(text: str | None) -> list[str]:
    """``"0,1"`` → ``["cuda:0", "cuda:1"]``; names such as ``cpu`` or ``cuda:2`` stay as they are.

    Raises:
        ValueError: an empty entry.
    """
    if text is None:
        return []
    devices = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            raise ValueError(f"--devices must be a comma-separated list such as 0,1, got {text!r}")
        devices.append(f"cuda:{part}" if part.isdigit() else part)
    return devices


def _encoder(args: argparse.Namespace, container: str) -> Encoder:
    return Encoder.from_command_line(
        name=args.encoder, crf=args.crf, speed=args.speed, ffmpeg_args=args.ffmpeg_args, container=container,
        audio_codec=args.audio_codec,
    )


def _error(command: str, message: str) -> int:
    print(f"arvo {command}: {message}", file=sys.stderr)
    return EXIT_USAGE


# --- arvo deblur ---------------------------------------------------------------------------------


def _deblur_arguments(args: argparse.Namespace) -> FileTask:
    """``arvo deblur``'s arguments checked, as the file's task; OUT's folder is made and checked writable.

    Raises:
        UsageError: what is wrong, and what to do.
    """
    output = Path(args.output).expanduser().resolve()
    source = Path(args.input).expanduser().resolve()
    container = output.suffix.lower().lstrip(".")
    if container not in CONTAINERS:
        raise UsageError(f"OUT must end in {', '.join('.' + c for c in CONTAINERS)}, got {output.name}")
    if not source.is_file():
        raise UsageError(f"{source} is not a file")
    if source == output:
        raise UsageError("OUT must not be IN")
    if output.is_dir():
        raise UsageError(f"OUT {output} is a folder; name the file to write")
    if output.exists() and not args.force:
        raise UsageError(f"{output} exists; pass --force (or -y) to replace it, or choose another OUT")
    try:
        encoder = _encoder(args, container)
        deblur = DeblurOptions.from_values(args)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    if deblur.weights is not None and not Path(deblur.weights).is_file():
        raise UsageError(f"weights not found: {deblur.weights}; pass --weights <file.safetensors written by 'arvo train'>")
    try:
        check_writable(output.parent)
    except OSError as exc:
        raise UsageError(describe_os_error(exc, output.parent, fix="choose another OUT")) from exc
    # On failure the tools' messages go beside the intended output.
    return FileTask(key=output.name, source=str(source), output=str(output), deblur=deblur, encoder=encoder,
                    log=str(output) + ".arvo.log")


def run_deblur(args: argparse.Namespace) -> int:
    """Deblur one file into OUT. Exit code 0 when written, 1 when the file failed, 2 when it cannot
    start (bad arguments, OUT exists without --force, OUT's folder unwritable or full), 128 + signal
    number when interrupted."""
    try:
        task = _deblur_arguments(args)
    except UsageError as exc:
        return _error("deblur", str(exc))
    remove_stale_partials(Path(task.output).parent)
    progress = JobProgress(files=1, quiet=args.quiet)
    cancel = Cancellation()
    with Interrupts() as signals, signals.deferred(cancel.cancel):
        progress.started(task.key)
        result = transcode_file(task, cancel=cancel, progress=lambda f, t: progress.advanced(task.key, f, t))
        progress.finished(task.key, result.status, frames=result.frames, seconds=result.seconds,
                          reason=result.reason, log=result.log)
        progress.close()
    if signals.received is not None:
        return 128 + signals.received
    if result.status != "done" and args.quiet:
        log = f" (log: {result.log})" if result.log else ""
        print(f"arvo deblur: {Path(task.source).name}: {result.reason}{log}", file=sys.stderr)
    return 0 if result.status == "done" else EXIT_FAILED


# --- arvo remaster -------------------------------------------------------------------------------


def _make_pool(args: argparse.Namespace) -> LocalPool | RayPool:
    """The worker pool the arguments ask for (Ray is imported only for --ray)."""
    from vsarvo.remaster.pools import LocalPool, RayPool

    devices = parse_devices(args.devices)
    if args.ray:
        if devices:
            raise UsageError("--devices is for local workers; on Ray each file gets the GPU Ray assigns")
        try:
            return RayPool(args.ray, cpus_per_file=args.cpus_per_file, gpus_per_file=args.gpus_per_file,
                           local_cpus=args.jobs)
        except ImportError as exc:
            raise UsageError(f"--ray needs Ray ({exc}); pip install 'vsarvo[ray]'") from exc
        except Exception as exc:  # ray.init raises ConnectionError, RuntimeError, ValueError, ...
            raise UsageError(f"cannot connect to Ray at {args.ray}: {exc}") from exc
    workers = max(args.jobs or 1, len(devices))
    return LocalPool([devices[i % len(devices)] if devices else None for i in range(workers)])


def run_remaster(args: argparse.Namespace) -> int:
    """Run a batch job. Exit code 0 when every file is done or skipped, 1 if any failed, 2 when the
    job cannot start, 128 + signal number when interrupted."""
    out = args.out.expanduser().resolve()
    if args.retries < 0:
        return _error("remaster", f"--retries must be >= 0, got {args.retries}")
    if args.jobs is not None and args.jobs < 1:
        return _error("remaster", f"--jobs must be at least 1, got {args.jobs}")
    try:
        encoder = _encoder(args, args.container)
        deblur = DeblurOptions.from_values(args)
        parse_devices(args.devices)
    except ValueError as exc:
        return _error("remaster", str(exc))
    with Interrupts() as interrupts:
        try:
            return _lock_and_run(args, out, encoder, deblur, interrupts)
        except JobInterrupted as exc:
            return 128 + exc.signum


def _lock_and_run(
    args: argparse.Namespace, out: Path, encoder: Encoder, deblur: DeblurOptions, interrupts: Interrupts,
) -> int:
    """Lock the output folder, run the job in it, and remove the lock however the job ends."""
    hold = contextlib.ExitStack()
    try:
        check_writable(out)
        lock = hold.enter_context(JobLock(out))
    except JobLockedError as exc:
        return _error("remaster", str(exc))
    except OSError as exc:
        return _error("remaster", describe_os_error(exc, out, what="the output folder ", fix="choose another --out"))
    with hold:
        try:
            return _run_locked(args, lock, encoder, deblur, interrupts)
        except UsageError as exc:
            return _error("remaster", str(exc))
        except OSError as exc:
            # The manifest or summary cannot be written (the disk filled up): the job cannot go on.
            return _error("remaster", describe_os_error(exc, out, what="the output folder ", fix="choose another --out"))


def _run_locked(
    args: argparse.Namespace, lock: JobLock, encoder: Encoder, deblur: DeblurOptions, interrupts: Interrupts,
) -> int:
    """The job, once its output folder is locked: open the manifest, plan, run."""
    out = lock.path.parent
    if lock.stale is not None and not args.quiet:
        holder = describe_holder(lock.stale)
        print(f"arvo: the job that last wrote to {out}{f' ({holder})' if holder else ''} ended without "
              "removing its lock; taking the folder over", file=sys.stderr)
    try:
        manifest = Manifest(out)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    planned = plan_job(args.sources, out, encoder, deblur)
    return run_job(planned, manifest, make_pool=lambda: _make_pool(args), interrupts=interrupts,
                   force=args.force, retries=args.retries, quiet=args.quiet)
