"""Jobs run as cluster tasks, each in a process of its own on the worker (a sweep's trials).

:func:`tasks` yields a :class:`ClusterTasks`: ``run_process(job)`` submits a task that starts the
job's command on a worker, waits for it and returns ``job.outcome(exit code)`` with where it ran.
The process, not the worker, does the work: a job that dies takes only itself; a worker that dies
takes its jobs' processes with it (they get SIGTERM). Dask then runs the task again on another
worker; a job that must run once tells a second start by itself (a sweep trial does, through its
study). Its share of the worker is the worker's cores over the tasks it runs at once
(``--nthreads``), whatever the client's machine has.

A cancelled task (a stopped sweep, a client gone) stops its process with SIGTERM at once, SIGKILL
after :data:`STOP_WAIT_S`. The job's files (its log, what it writes) are written on the worker:
where they must be read here, they are on a shared file system.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from crnn.errors import LostWork
from crnn.lifetime import start_logged

POLL_S = 0.2
STOP_WAIT_S = 60.0


class ProcessJob(Protocol):
    """What a task runs: a command sized to ``cores``, and what its exit code means."""

    def command(self, cores: int, attempt: str) -> tuple[list[str], dict[str, str], Path]:
        """argv, environment and log file of this attempt (unique to the worker process)."""
        ...

    def outcome(self, code: int) -> dict[str, Any]: ...


@contextmanager
def tasks(address: str) -> Iterator[ClusterTasks]:
    """Jobs run in processes on the workers of the cluster at ``address`` (as :func:`connect`)."""
    from crnn.cluster import session

    with session(address) as client:
        yield ClusterTasks(client)


class ClusterTasks:
    def __init__(self, client: Any) -> None:
        self.client = client

    def run_process(self, job: ProcessJob) -> Task:
        return Task(self.client.submit(run_isolated, job, pure=False))

    def unseen(self, paths: Sequence[Path]) -> dict[str, list[str]]:
        """The workers that do not see every one of ``paths``: worker -> the paths missing."""
        found: dict[str, list[str]] = self.client.run(_missing, [str(p) for p in paths])
        return {worker: missing for worker, missing in found.items() if missing}


def _missing(paths: list[str]) -> list[str]:
    return [p for p in paths if not os.path.exists(p)]


class Task:
    """A job running on the cluster: ``done()``, ``result()`` (:class:`LostWork` when its
    worker died too often or the task was cancelled), ``cancel()``."""

    def __init__(self, future: Any) -> None:
        self.future = future

    def done(self) -> bool:
        return bool(self.future.done())

    def result(self) -> dict[str, Any]:
        try:
            return dict(self.future.result())
        except Exception as exc:  # KilledWorker, CancelledError, a scheduler gone
            from distributed import KilledWorker

            if isinstance(exc, KilledWorker):
                raise LostWork("its cluster worker died, more than once") from None
            if self.future.status == "cancelled":
                raise LostWork("its cluster task was cancelled") from None
            raise LostWork(f"its cluster task ended: {type(exc).__name__}: {exc}"[:300]) from None

    def cancel(self) -> None:
        self.future.cancel()


def run_isolated(job: ProcessJob) -> dict[str, Any]:
    """On a worker: ``job``'s command in a process of its own, stopped when the task is
    cancelled; its outcome, with the worker it ran on."""
    from distributed import get_worker
    from distributed.worker import thread_state

    worker, key = get_worker(), thread_state.key
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    share = max(1, (cores or 1) // max(1, worker.state.nthreads))
    argv, env, log = job.command(share, f"{socket.gethostname()}-{os.getpid()}")
    log.parent.mkdir(parents=True, exist_ok=True)
    proc = start_logged(argv, env, log, "ab")
    while proc.poll() is None:
        task = worker.state.tasks.get(key)
        if task is None or task.state in ("cancelled", "released", "forgotten"):
            _stop(proc)
        time.sleep(POLL_S)
    where = {"host": socket.gethostname(), "pid": os.getpid(), "address": worker.address}
    return {**job.outcome(proc.returncode), "worker": where}


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=STOP_WAIT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
