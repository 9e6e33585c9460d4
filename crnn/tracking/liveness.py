"""Honest crash states: a run whose process was killed (``kill -9``, a power cut, the OOM killer)
cannot mark itself; the next command on the same host finds it and says what happened.

Each pipeline run records who runs it: the host, the pid and the process's start time as MLflow
tags, and a liveness record of its own in its run folder (``alive.json``: those, the Prefect flow
run, and the time of its last update, refreshed every :data:`HEARTBEAT_S` seconds while it runs;
Prefect's own heartbeats are off locally). :func:`reap_dead_runs` marks FAILED, with the reason,
each run left RUNNING whose process is gone from this host (a pid reused by another process does
not count as alive: the start time must match), and the Prefect flow run it belonged to as
Crashed (:mod:`flows.runtime.local_prefect`). Runs of live processes and of other hosts are
never touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from crnn.atomic import atomic_write_text
from crnn.interrupt import Interrupted
from crnn.tracking.runs import TrackingContext, finish_run

HOST_TAG, PID_TAG, STARTED_TAG = "crnn.host", "crnn.pid", "crnn.process_started"
FLOW_RUN_TAG = "crnn.flow_run"  # the Prefect flow run a run is part of (none outside one)
FAILURE_TAG = "crnn.failure"
ALIVE_FILE = "alive.json"
HEARTBEAT_S = 30.0


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def this_process() -> dict[str, str]:
    """Who runs this: host, pid and the process's start time (seconds since the epoch)."""
    return {
        HOST_TAG: socket.gethostname(),
        PID_TAG: str(os.getpid()),
        STARTED_TAG: f"{psutil.Process().create_time():.2f}",
    }


def alive(pid: int, started: float) -> bool:
    """Whether process ``pid`` runs and is the one that started at ``started``."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return abs(proc.create_time() - started) < 1.0
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True  # another user's live process: not ours to judge


@contextlib.contextmanager
def liveness(
    ctx: TrackingContext, run_id: str, run_dir: Path, flow_run_id: str = ""
) -> Iterator[None]:
    """While the block runs: the run's tags say who runs it, and ``alive.json`` (with the
    Prefect flow run it is part of) is refreshed."""
    me = this_process()
    ctx.client().set_tag(run_id, FAILURE_TAG, "")  # a resumed run is no longer a failed one
    for key, value in {**me, **({FLOW_RUN_TAG: flow_run_id} if flow_run_id else {})}.items():
        ctx.client().set_tag(run_id, key, value)
    record = {**me, "run_id": run_id, "flow_run_id": flow_run_id, "since": _now()}
    path = run_dir / ALIVE_FILE
    stop = threading.Event()

    def beat() -> None:
        while True:
            with contextlib.suppress(OSError):
                atomic_write_text(path, json.dumps({**record, "updated": _now()}, indent=1))
            if stop.wait(HEARTBEAT_S):
                return

    thread = threading.Thread(target=beat, name="crnn-liveness", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


@contextlib.contextmanager
def run_lifetime(
    ctx: TrackingContext,
    run_id: str,
    run_dir: Path,
    flow_run_id: str = "",
    stopped_by: tuple[type[BaseException], ...] = (Interrupted,),
) -> Iterator[None]:
    """A run from its start to its end, the one way every run lives (a pipeline run, a sweep's
    parent run, a trial): while the block runs, who runs it (:func:`liveness`); at its end the
    run FINISHED, KILLED (an exception of ``stopped_by``: Ctrl-C or SIGTERM, a pruned trial; the
    next command continues it) or FAILED. The exception goes on to the caller."""
    ok, killed = False, False
    try:
        with liveness(ctx, run_id, run_dir, flow_run_id):
            yield
        ok = True
    except stopped_by:
        killed = True
        raise
    finally:
        finish_run(ctx, run_id, ok, killed)


@dataclass(frozen=True)
class DeadRun:
    run_id: str
    experiment_id: str
    reason: str
    flow_run_id: str


def dead_runs(ctx: TrackingContext, experiment_ids: list[str], runs_root: Path) -> list[DeadRun]:
    """Runs left RUNNING by a process that is gone from this host."""
    host = socket.gethostname()
    found = ctx.client().search_runs(
        experiment_ids,
        filter_string=f"attributes.status = 'RUNNING' and tags.`{HOST_TAG}` = '{host}'",
        max_results=1000,
    )
    dead = []
    for run in found:
        tags = run.data.tags
        try:
            pid, started = int(tags[PID_TAG]), float(tags[STARTED_TAG])
        except (KeyError, ValueError):
            continue  # not a run this tool started: nothing to go by
        if alive(pid, started):
            continue
        record = _record(runs_root / run.info.run_id / ALIVE_FILE)
        seen = record.get("updated") or "never"
        reason = f"its process {pid} on {host} died without finishing it (last seen {seen})"
        dead.append(DeadRun(run.info.run_id, run.info.experiment_id, reason, _flow(record)))
    return dead


def _record(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return {}


def _flow(record: dict[str, Any]) -> str:
    return str(record.get("flow_run_id") or "")


def reap_dead_runs(
    ctx: TrackingContext, experiment_ids: list[str], runs_root: Path
) -> list[DeadRun]:
    """Mark each of :func:`dead_runs` FAILED, with its reason (tag ``crnn.failure``); the
    flows mark the Prefect flow run each belonged to (``flow_run_id``) Crashed."""
    dead = dead_runs(ctx, experiment_ids, runs_root)
    for run in dead:
        ctx.client().set_tag(run.run_id, FAILURE_TAG, run.reason)
        ctx.client().set_terminated(run.run_id, "FAILED")
    return dead


def fail_runs_of_flow_run(ctx: TrackingContext, flow_run_id: str, reason: str) -> list[str]:
    """The runs of ``ctx``'s experiment still RUNNING that Prefect flow run ``flow_run_id``
    (a lost one: :mod:`flows.runtime.lost_runs`) started: FAILED, with ``reason``; their ids."""
    found = ctx.client().search_runs(
        [ctx.experiment_id],
        filter_string=f"attributes.status = 'RUNNING' and tags.`{FLOW_RUN_TAG}` = '{flow_run_id}'",
        max_results=1000,
    )
    for run in found:
        ctx.client().set_tag(run.info.run_id, FAILURE_TAG, reason)
        ctx.client().set_terminated(run.info.run_id, "FAILED")
    return [run.info.run_id for run in found]
