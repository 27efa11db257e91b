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
import hashlib
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from vsarvo.remaster.encoder import CONTAINERS, ENCODERS, Encoder
from vsarvo.remaster.manifest import LOG_DIR, JobLock, JobLockedError, Manifest, format_table, settings_hash, write_summary
from vsarvo.remaster.progress import JobProgress
from vsarvo.remaster.sources import find_sources
from vsarvo.remaster.transcode import PARTIAL_MARK, Cancellation, DeblurOptions, FileResult, FileTask, transcode_file

if TYPE_CHECKING:
    from vsarvo.remaster.pools import LocalPool, RayPool

__all__ = ["add_parser", "run_deblur", "run_remaster", "parse_devices", "BACKEND_CHOICES"]

# vsarvo.backends.BACKENDS, spelled out: importing that package loads torch, which the CLI avoids
# (tests/test_remaster.py checks that the two agree).
BACKEND_CHOICES = ("auto", "torch", "ort", "trt")
# Exit codes: 1 = some file failed; 2 = the job could not start (bad arguments, unwritable output).
EXIT_FAILED, EXIT_USAGE = 1, 2


class UsageError(Exception):
    """The job cannot start; the message says why and what to do."""


# --- command line --------------------------------------------------------------------------------


def _add_common(parser: argparse.ArgumentParser, *, container: bool) -> None:
    model = parser.add_argument_group("deblurring (arguments of core.arvo.Deblur)")
    model.add_argument("--weights", help="a .safetensors weight file (default: the shipped weights)")
    model.add_argument("--backend", choices=BACKEND_CHOICES, default="auto")
    model.add_argument("--device", help="cpu or cuda:N for every file (default: first GPU, else CPU)")
    model.add_argument("--precision", choices=("fp32", "fp16", "bf16"))
    model.add_argument("--tile", type=int, help="tile edge in pixels for the full-resolution convolutions (bounds memory)")
    model.add_argument("--tile-overlap", type=int)
    model.add_argument("--stages", type=int, help="progressive stages (default: the model's)")
    model.add_argument("--no-scene-change", dest="scene_change", action="store_false",
                       help="use neighbours across scene cuts too (default: a cut stops the window)")
    model.add_argument("--sc-threshold", type=float, help="scene-cut threshold in [0, 1]")
    model.add_argument("--streams", type=int, default=1, help="model calls at once per file")
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


def _deblur_options(args: argparse.Namespace) -> DeblurOptions:
    return DeblurOptions(
        weights=str(Path(args.weights).expanduser().resolve()) if args.weights else None,
        backend=args.backend, device=args.device, precision=args.precision, tile=args.tile,
        tile_overlap=args.tile_overlap, stages=args.stages, scene_change=args.scene_change,
        sc_threshold=args.sc_threshold, streams=args.streams,
    )


def _encoder(args: argparse.Namespace, container: str) -> Encoder:
    return Encoder.from_command_line(
        name=args.encoder, crf=args.crf, speed=args.speed, ffmpeg_args=args.ffmpeg_args, container=container,
        audio_codec=args.audio_codec,
    )


def _weights_digest(weights: str | None) -> str:
    """SHA-256 of the weight file the filter will load (the shipped one when ``weights`` is None).

    Raises:
        UsageError: the file is missing.
    """
    if weights is None:
        from vsarvo.weights import default_weights_path  # loads torch: only when no --weights is given

        path = default_weights_path()
    else:
        path = Path(weights)
    if not path.is_file():
        raise UsageError(f"weights not found: {path}; pass --weights <file.safetensors written by 'arvo train'>")
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _error(command: str, message: str) -> int:
    print(f"arvo {command}: {message}", file=sys.stderr)
    return EXIT_USAGE


class _Signals:
    """SIGINT/SIGTERM set a flag (the driver's loop then cancels the running files) instead of
    killing the driver mid-write; the previous handlers come back on exit."""

    def __init__(self, on_signal: Callable[[], None] | None = None) -> None:
        self.received: int | None = None
        self._on_signal = on_signal
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: object) -> None:
        if self.received is None:
            self.received = signum
            if self._on_signal is not None:
                self._on_signal()

    def __enter__(self) -> "_Signals":
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


# --- arvo deblur ---------------------------------------------------------------------------------


def run_deblur(args: argparse.Namespace) -> int:
    """Deblur one file into OUT. Exit code 0 when written, 1 when the file failed, 2 on bad arguments."""
    output = Path(args.output).expanduser().resolve()
    source = Path(args.input).expanduser().resolve()
    container = output.suffix.lower().lstrip(".")
    try:
        if container not in CONTAINERS:
            raise UsageError(f"OUT must end in {', '.join('.' + c for c in CONTAINERS)}, got {output.name}")
        if not source.is_file():
            raise UsageError(f"{source} is not a file")
        if source == output:
            raise UsageError("OUT must not be IN")
        encoder = _encoder(args, container)
        deblur = _deblur_options(args)
        output.parent.mkdir(parents=True, exist_ok=True)
    except (UsageError, ValueError) as exc:
        return _error("deblur", str(exc))
    except OSError as exc:
        return _error("deblur", f"cannot create {output.parent}: {exc.strerror or exc}")
    # On failure the tools' messages go beside the intended output.
    task = FileTask(key=output.name, source=str(source), output=str(output), deblur=deblur, encoder=encoder,
                    log=str(output) + ".arvo.log")
    progress = JobProgress(files=1, quiet=args.quiet)
    cancel = Cancellation()
    with _Signals(cancel.cancel) as signals:
        progress.started(task.key)
        result = transcode_file(task, cancel=cancel, progress=lambda f, t: progress.advanced(task.key, f, t))
        progress.finished(task.key, result.status, frames=result.frames, seconds=result.seconds,
                          reason=result.reason, log=result.log)
        progress.close()
    if signals.received is not None:
        return 128 + signals.received
    if result.status != "done" and args.quiet:
        print(f"arvo deblur: {source.name}: {result.reason} (log: {result.log})", file=sys.stderr)
    return 0 if result.status == "done" else EXIT_FAILED


# --- arvo remaster -------------------------------------------------------------------------------


def _plan(args: argparse.Namespace, out: Path, encoder: Encoder, deblur: DeblurOptions) -> list[tuple[FileTask, str, dict]]:
    """The job's files as (task, settings hash, settings), in source order.

    Raises:
        UsageError: no sources, a source that would be overwritten, or two sources with one output.
    """
    try:
        sources = find_sources(args.sources, exclude=out)
    except (ValueError, OSError) as exc:
        raise UsageError(str(exc)) from exc
    if not sources:
        raise UsageError(f"no video files in {' '.join(args.sources)}")
    digest = _weights_digest(deblur.weights)
    planned = []
    owners: dict[Path, Path] = {}
    for source in sources:
        output = out / source.relative.with_suffix(encoder.extension)
        if output in owners:
            raise UsageError(
                f"{source.path} and {owners[output]} would both be written to {output}; "
                "remaster them into different --out folders"
            )
        if output.resolve() == source.path:
            raise UsageError(f"{source.path} would be overwritten by its own output; choose another --out")
        owners[output] = source.path
        stat = source.path.stat()
        key = output.relative_to(out).as_posix()
        settings = {
            "source": {"path": str(source.path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns},
            "deblur": deblur.settings(digest),
            "encode": encoder.settings(),
        }
        task = FileTask(
            key=key, source=str(source.path), output=str(output), deblur=deblur, encoder=encoder,
            log=str(out / LOG_DIR / f"{key}.log"),
        )
        planned.append((task, settings_hash(settings), settings))
    return planned


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


def _remove_partials(out: Path) -> None:
    """Delete partial outputs that an interrupted run left (only the lock holder may)."""
    for partial in out.rglob(f".*{PARTIAL_MARK}.*"):
        if partial.is_file():
            partial.unlink(missing_ok=True)


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
        deblur = _deblur_options(args)
        parse_devices(args.devices)
    except ValueError as exc:
        return _error("remaster", str(exc))
    hold = contextlib.ExitStack()
    try:
        out.mkdir(parents=True, exist_ok=True)
        hold.enter_context(JobLock(out))
    except JobLockedError as exc:
        return _error("remaster", str(exc))
    except OSError as exc:
        return _error(
            "remaster",
            f"cannot write to the output folder {out}: {exc.strerror or exc}; "
            "fix its permissions or choose another --out",
        )
    with hold:
        try:
            return _run_job(args, out, encoder, deblur)
        except UsageError as exc:
            return _error("remaster", str(exc))


def _row(task: FileTask, status: str, **fields: Any) -> dict[str, Any]:
    return {"key": task.key, "source": task.source, "output": task.output, "status": status, **fields}


def _run_job(args: argparse.Namespace, out: Path, encoder: Encoder, deblur: DeblurOptions) -> int:
    try:
        manifest = Manifest(out)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    planned = _plan(args, out, encoder, deblur)
    _remove_partials(out)
    rows: dict[str, dict[str, Any]] = {}
    todo = []
    for task, digest, settings in planned:
        if not args.force and manifest.is_finished(task.key, digest, Path(task.output)):
            entry = manifest.files[task.key]
            rows[task.key] = _row(task, "skipped", frames=entry.get("frames", 0), seconds=entry.get("seconds"))
        else:
            todo.append((task, digest, settings))
            rows[task.key] = _row(task, "interrupted", frames=0, seconds=None, reason="not started")
    if not args.quiet and len(todo) < len(planned):
        print(f"arvo: {len(planned) - len(todo)} of {len(planned)} files already done with these settings; "
              "skipping them", file=sys.stderr)
    interrupted_by = None
    if todo:
        progress = JobProgress(files=len(todo), quiet=args.quiet)
        pool = _make_pool(args)
        try:
            interrupted_by = _Driver(pool, todo, manifest, rows, progress, retries=args.retries).run()
        finally:
            pool.close()
            progress.close()
    ordered = [rows[task.key] for task, _, _ in planned]
    summary = write_summary(out, ordered, interrupted=interrupted_by is not None)
    failed = [row for row in ordered if row["status"] == "failed"]
    if not args.quiet:
        print(format_table(ordered), file=sys.stderr)
        print(f"arvo: summary in {summary}", file=sys.stderr)
    else:
        for row in failed:
            print(f"arvo remaster: {row['key']}: {row['reason']}", file=sys.stderr)
    if interrupted_by is not None:
        return 128 + interrupted_by
    return EXIT_FAILED if failed else 0


class _Driver:
    """Submits a job's files to a pool and turns the pool's events into manifest entries, summary
    rows, retries and progress. Runs in the driver's main thread, the only writer of the manifest."""

    def __init__(self, pool: LocalPool | RayPool, todo: list[tuple[FileTask, str, dict[str, Any]]], manifest: Manifest,
                 rows: dict[str, dict[str, Any]], progress: JobProgress, *, retries: int) -> None:
        self.pool, self.manifest, self.rows, self.progress, self.retries = pool, manifest, rows, progress, retries
        self.plans = {task.key: (task, digest, settings) for task, digest, settings in todo}
        self.attempts = dict.fromkeys(self.plans, 0)
        self.active: set[str] = set()
        self.started: set[str] = set()
        self.signals = _Signals()
        self.cancelled = False

    def submit(self, key: str) -> None:
        self.attempts[key] += 1
        self.active.add(key)
        self.pool.submit(self.plans[key][0])

    def run(self) -> int | None:
        """Run until every file has finished; returns the signal that interrupted the job, if one did."""
        for key in self.plans:
            self.submit(key)
        with self.signals:
            while self.active:
                if self.signals.received is not None and not self.cancelled:
                    self.cancelled = True
                    self.pool.cancel()
                for event in self.pool.events(timeout=0.5):
                    self.handle(event)
                self.progress.draw()
        return self.signals.received

    def handle(self, event: tuple[Any, ...]) -> None:
        kind = event[0]
        if kind == "finished":
            self.finished(event[1])
            return
        key = event[1]
        if key not in self.active:
            return  # a late report from a file that has already finished
        if kind == "started":
            task, digest, settings = self.plans[key]
            self.started.add(key)
            self.manifest.record(key, source=task.source, output=task.output, status="running", settings_hash=digest,
                                 settings=settings, attempts=self.attempts[key], reason=None)
            self.progress.started(key, event[2])
        elif kind == "progress":
            self.progress.advanced(key, event[2], event[3])

    def finished(self, result: FileResult) -> None:
        key = result.key
        self.active.discard(key)
        if result.status == "failed" and self.signals.received is not None:
            # Ctrl-C reaches vspipe and ffmpeg too (one process group): their failure is the signal's.
            result.status, result.reason = "interrupted", "interrupted"
        if result.status == "failed" and self.attempts[key] <= self.retries:
            self.progress.finished(key, result.status, reason=result.reason, retry=True)
            self.submit(key)
            return
        task, digest, settings = self.plans[key]
        self.rows[key].update(status=result.status, frames=result.frames, seconds=result.seconds,
                              reason=result.reason, attempts=self.attempts[key], log=result.log, vfr=result.vfr)
        if key in self.started:
            # A file interrupted before it started keeps whatever an earlier run recorded.
            self.manifest.record(
                key, source=task.source, output=task.output, status=result.status, settings_hash=digest,
                settings=settings, frames=result.frames, seconds=round(result.seconds, 3), reason=result.reason,
                log=result.log, attempts=self.attempts[key], vfr=result.vfr,
            )
        self.progress.finished(key, result.status, frames=result.frames, seconds=result.seconds,
                               reason=result.reason, log=result.log)
