"""Where a remaster job's files run: worker threads on this machine (one per device, or N on one),
or tasks on a Ray cluster. Both pools have one interface, so the driver's loop (manifest, retries,
progress, summary) is the same for either.

A pool takes FileTasks and reports events, each a tuple:

- ``("started", key, where)``: a worker took the file (``where``: device or node);
- ``("progress", key, frames, total)``: frames done so far;
- ``("finished", FileResult)``: exactly once per submitted task, also when cancelled.

Workers never touch the job's manifest; the driver writes it from the events.
"""
from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
from typing import Any

from vsarvo.remaster.job import Cancellation, FileResult, FileTask
from vsarvo.remaster.transcode import transcode_file

__all__ = ["LocalPool", "RayPool", "Event"]

Event = tuple[Any, ...]

_LOCAL_OBJECT_STORE = 256 * 1024**2

# Ray workers report progress at most this often (each report is a call to the queue actor).
_RAY_PROGRESS_INTERVAL = 0.5


def _run_guarded(task: FileTask, **kwargs: Any) -> FileResult:
    """transcode_file, with an unexpected error turned into a failed result so the job goes on."""
    try:
        return transcode_file(task, **kwargs)
    except Exception as exc:  # a bug must fail one file, not hang the driver waiting for it
        return FileResult(key=task.key, status="failed", reason=f"internal error: {type(exc).__name__}: {exc}")


class LocalPool:
    """Worker threads on this machine, one per entry of ``devices`` (None: the filter's default).

    Threads suffice: a worker only waits on its vspipe and ffmpeg processes and moves bytes between
    them, which releases the GIL.
    """

    def __init__(self, devices: list[str | None]) -> None:
        if not devices:
            raise ValueError("a LocalPool needs at least one worker")
        self._tasks: queue.Queue[FileTask | None] = queue.Queue()
        self._events: queue.Queue[Event] = queue.Queue()
        self._cancel = Cancellation()
        self._threads = [
            threading.Thread(target=self._work, args=(device,), name=f"arvo-worker-{i}", daemon=True)
            for i, device in enumerate(devices)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, task: FileTask) -> None:
        self._tasks.put(task)

    def _work(self, device: str | None) -> None:
        while (task := self._tasks.get()) is not None:
            if self._cancel.cancelled:
                self._events.put(("finished", FileResult(key=task.key, status="interrupted", reason="not started")))
                continue
            self._events.put(("started", task.key, device))
            result = _run_guarded(
                task, device=device, cancel=self._cancel,
                progress=lambda frames, total, key=task.key: self._events.put(("progress", key, frames, total)),
            )
            self._events.put(("finished", result))

    def events(self, timeout: float) -> list[Event]:
        """Events since the last call, waiting up to ``timeout`` seconds for the first."""
        try:
            found = [self._events.get(timeout=timeout)]
        except queue.Empty:
            return []
        while True:
            try:
                found.append(self._events.get_nowait())
            except queue.Empty:
                return found

    def cancel(self) -> None:
        """Stop running files (their processes are killed) and start no more."""
        self._cancel.cancel()

    def close(self) -> None:
        for _ in self._threads:
            self._tasks.put(None)
        for thread in self._threads:
            thread.join()


def _ray_transcode(task: FileTask, events: Any) -> dict[str, Any]:
    """A Ray task: deblur one file on whichever node Ray chose; events go to the driver's queue actor.

    The device is the task's own, or (unset) the filter's default, which is the GPU Ray assigned
    (Ray sets CUDA_VISIBLE_DEVICES for the task, and vspipe inherits it).
    """
    import ray

    gpus = ray.get_gpu_ids()
    where = socket.gethostname() + (f" gpu {','.join(str(g) for g in gpus)}" if gpus else " cpu")
    events.put(("started", task.key, where))
    last = [0.0]

    def report(frames: int, total: int | None) -> None:
        now = time.monotonic()
        if now - last[0] >= _RAY_PROGRESS_INTERVAL or frames == total:
            last[0] = now
            events.put(("progress", task.key, frames, total))

    return _run_guarded(task, progress=report).as_dict()


class RayPool:
    """Files as Ray tasks, on a running cluster (``address``) or a local instance (``"local"``).

    Args:
        address: a Ray cluster address (``ray://host:10001``, ``host:6379``, ``auto``) or "local" to
            start a Ray instance on this machine with ``local_cpus`` CPUs.
        cpus_per_file, gpus_per_file: the resources one file's task asks Ray for; ``gpus_per_file``
            None means 1 if the cluster has GPUs, else 0.
        local_cpus: CPUs of a local instance, so at most this many files run at once.

    Ray retries a task whose worker or node died (up to 3 times); a file that fails by itself
    comes back failed, and the driver's own retries apply.
    """

    def __init__(self, address: str, *, cpus_per_file: float = 1.0, gpus_per_file: float | None = None,
                 local_cpus: int | None = None) -> None:
        import ray
        from ray.util.queue import Queue

        self._ray = ray
        options: dict[str, Any] = dict(
            include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR, ignore_reinit_error=True,
        )
        if address == "local":
            # Tasks exchange only small results: a small object store, not Ray's 30% of memory.
            ray.init(num_cpus=local_cpus or os.cpu_count() or 1, object_store_memory=_LOCAL_OBJECT_STORE, **options)
        else:
            ray.init(address=address, **options)
        if gpus_per_file is None:
            gpus_per_file = 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0
        self._remote = ray.remote(_ray_transcode).options(
            num_cpus=cpus_per_file, num_gpus=gpus_per_file, max_retries=3, retry_exceptions=False,
        )
        self._queue = Queue(actor_options={"num_cpus": 0})
        self._refs: dict[Any, str] = {}
        self._cancelled = False

    def submit(self, task: FileTask) -> None:
        self._refs[self._remote.remote(task, self._queue)] = task.key

    def events(self, timeout: float) -> list[Event]:
        """Progress reports since the last call, then the tasks that ended within ``timeout`` seconds."""
        if not self._refs:
            return self._drain()
        ready, _ = self._ray.wait(list(self._refs), num_returns=len(self._refs), timeout=timeout)
        # Progress first: a file's last reports were sent before its task returned.
        found = self._drain()
        for ref in ready:
            found.append(("finished", self._result(ref, self._refs.pop(ref))))
        return found

    def _drain(self) -> list[Event]:
        size = self._queue.qsize()
        return list(self._queue.get_nowait_batch(size)) if size else []

    def _result(self, ref: Any, key: str) -> FileResult:
        ray = self._ray
        try:
            return FileResult(**ray.get(ref))
        except ray.exceptions.TaskCancelledError:
            return FileResult(key=key, status="interrupted", reason="interrupted")
        except ray.exceptions.RayError as exc:
            if self._cancelled:
                return FileResult(key=key, status="interrupted", reason="interrupted")
            message = str(exc).strip().splitlines()
            return FileResult(key=key, status="failed", reason=f"ray: {message[-1] if message else type(exc).__name__}")

    def cancel(self) -> None:
        """Cancel every unfinished task (a running one gets KeyboardInterrupt and cleans up)."""
        self._cancelled = True
        for ref in list(self._refs):
            self._ray.cancel(ref)

    def close(self) -> None:
        self._ray.shutdown()
