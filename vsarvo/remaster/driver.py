"""Runs a planned job in its locked output folder: skips files already done with the same settings,
submits the rest to a worker pool, turns the pool's events into manifest entries, retries and
progress, and ends with the summary (JSON, and a table on stderr) and the job's exit code.

The driver runs in the main thread and is the only writer of the manifest; workers only report.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from vsarvo.remaster.disk import describe_os_error
from vsarvo.remaster.interrupts import Interrupts
from vsarvo.remaster.job import FileResult, FileTask
from vsarvo.remaster.leftovers import remove_job_temporaries, remove_stale_partials
from vsarvo.remaster.manifest import LOG_DIR, SUMMARY_NAME, Manifest, format_table, write_summary
from vsarvo.remaster.planner import PlannedFile
from vsarvo.remaster.progress import JobProgress

if TYPE_CHECKING:
    from vsarvo.remaster.pools import LocalPool, RayPool

__all__ = ["run_job", "EXIT_FAILED"]

# Exit code when some file failed (the job itself ran to its end).
EXIT_FAILED = 1


def _row(task: FileTask, status: str, **fields: Any) -> dict[str, Any]:
    return {"key": task.key, "source": task.source, "output": task.output, "status": status, **fields}


def run_job(
    planned: list[PlannedFile], manifest: Manifest, *, make_pool: Callable[[], LocalPool | RayPool],
    interrupts: Interrupts, force: bool, retries: int, quiet: bool,
) -> int:
    """Run the planned files that are not done yet; returns 0 when every file is done or skipped,
    EXIT_FAILED if any failed, 128 + signal number when SIGINT/SIGTERM stopped the job."""
    out = manifest.path.parent
    # The lock holder owns every partial and record in its folder: whatever is there was left by a killed run.
    remove_stale_partials(out, recursive=True, every=True)
    remove_job_temporaries(out, (manifest.path.name, SUMMARY_NAME), LOG_DIR)
    rows: dict[str, dict[str, Any]] = {}
    todo = []
    for plan in planned:
        task = plan.task
        if not force and manifest.is_finished(task.key, plan.digest, Path(task.output)):
            entry = manifest.files[task.key]
            rows[task.key] = _row(task, "skipped", frames=entry.get("frames", 0), seconds=entry.get("seconds"))
        else:
            todo.append(plan)
            rows[task.key] = _row(task, "interrupted", frames=0, seconds=None, reason="not started")
    if not quiet and len(todo) < len(planned):
        print(f"arvo: {len(planned) - len(todo)} of {len(planned)} files already done with these settings; "
              "skipping them", file=sys.stderr)
    interrupted_by = _run_files(todo, manifest, rows, make_pool, interrupts, retries=retries, quiet=quiet)
    ordered = [rows[plan.task.key] for plan in planned]
    failed = [row for row in ordered if row["status"] == "failed"]
    try:
        summary: Path | None = write_summary(out, ordered, interrupted=interrupted_by is not None)
    except OSError as exc:
        summary = None
        print(f"arvo remaster: cannot write the summary: {describe_os_error(exc, out)}", file=sys.stderr)
    if not quiet:
        print(format_table(ordered), file=sys.stderr)
        if summary is not None:
            print(f"arvo: summary in {summary}", file=sys.stderr)
    else:
        for row in failed:
            print(f"arvo remaster: {row['key']}: {row['reason']}", file=sys.stderr)
    if interrupted_by is not None:
        return 128 + interrupted_by
    return EXIT_FAILED if failed else 0


def _run_files(
    todo: list[PlannedFile], manifest: Manifest, rows: dict[str, dict[str, Any]],
    make_pool: Callable[[], LocalPool | RayPool], interrupts: Interrupts, *, retries: int, quiet: bool,
) -> int | None:
    """Run ``todo`` on a new pool; returns the signal that interrupted the job, if one did."""
    if not todo:
        return None
    progress = JobProgress(files=len(todo), quiet=quiet)
    try:
        # Deferred from before the pool exists: a signal while Ray starts cancels every file at once.
        with interrupts.deferred():
            pool = make_pool()
            try:
                _Driver(pool, todo, manifest, rows, progress, interrupts, retries=retries).run()
            finally:
                pool.close()
    finally:
        progress.close()
    return interrupts.received


class _Driver:
    """Submits a job's files to a pool and turns the pool's events into manifest entries, summary
    rows, retries and progress."""

    def __init__(self, pool: LocalPool | RayPool, todo: list[PlannedFile], manifest: Manifest,
                 rows: dict[str, dict[str, Any]], progress: JobProgress, interrupts: Interrupts, *,
                 retries: int) -> None:
        self.pool, self.manifest, self.rows, self.progress, self.retries = pool, manifest, rows, progress, retries
        self.interrupts = interrupts
        self.plans = {plan.task.key: plan for plan in todo}
        self.attempts = dict.fromkeys(self.plans, 0)
        self.active: set[str] = set()
        self.started: set[str] = set()
        self.cancelled = False

    def submit(self, key: str) -> None:
        self.attempts[key] += 1
        self.active.add(key)
        self.pool.submit(self.plans[key].task)

    def run(self) -> None:
        """Run until every file has finished (a signal cancels the running ones, which then finish)."""
        for key in self.plans:
            self.submit(key)
        while self.active:
            if self.interrupts.received is not None and not self.cancelled:
                self.cancelled = True
                self.pool.cancel()
            for event in self.pool.events(timeout=0.5):
                self.handle(event)
            self.progress.draw()

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
        if result.status == "failed" and self.interrupts.received is not None:
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
