"""Local, serverless Prefect: settings applied before Prefect is imported.

With no PREFECT_API_URL, flows run against Prefect's in-process ("ephemeral") SQLite server. Two of
its background services print tracebacks on a user's console (PrefectHQ/prefect#18934, #19771):
the telemetry heartbeat ("database is locked" at startup; it also fails offline) and the
server-side task-run recorder (killed mid-write when the server stops at exit). Measured on
a 2-core machine: tracebacks in 29 of 35 runs with them, in 0 of 54 without. Locally both are off;
flow and task states, results and logs are unaffected (only task-run rows in the local Prefect
database are not kept). A cold start of the server took up to ~20 s there, the default startup
timeout, so it gets more room. With analytics off, Prefect's client sends nothing either, and is
told so (DO_NOT_TRACK), or its first import in a terminal prints a notice that it collects usage
data. A real Prefect server (PREFECT_API_URL) is left as configured.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from crnn.errors import as_user_error, says_disk_full
from crnn.lifetime import die_with_parent

EPHEMERAL_SETTINGS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
}


def prepare_local_prefect(workspace: Path) -> None:
    """Keep Prefect's local state in the workspace and its in-process server quiet."""
    if "prefect" in sys.modules or os.environ.get("PREFECT_API_URL"):
        return  # too late to change settings, or a server is configured: leave it alone
    home = Path(os.environ.setdefault("PREFECT_HOME", str(workspace / "prefect")))
    home.mkdir(parents=True, exist_ok=True)  # Prefect makes only the last level
    for key, value in EPHEMERAL_SETTINGS.items():
        os.environ.setdefault(key, value)
    from flows.runtime.server_process import quiet_prefect_sdk

    quiet_prefect_sdk()  # its server's analytics are off (above): no notice that they are on


class UserErrorWithoutTraceback(logging.Filter):
    """Prefect logs a failed task with its traceback; for a user's error one line is enough."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _users(record):
            record.exc_info = None
            record.exc_text = None
        return True


class PoolTeardownCancelled(logging.Filter):
    """Drops SQLAlchemy's report of a pooled connection whose reset was cancelled: the in-process
    Prefect server's database pool, torn down while the process exits after a user error, logs
    that cancellation with a traceback. Nothing is lost, and the user's error stays one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], asyncio.CancelledError))


def quiet_pool_teardown() -> None:
    """Route ``sqlalchemy.pool`` records through a stderr handler that drops the teardown
    cancellation (without a handler they would reach Python's last-resort handler unfiltered)."""
    pool = logging.getLogger("sqlalchemy.pool")
    if not any(isinstance(f, PoolTeardownCancelled) for h in pool.handlers for f in h.filters):
        handler = logging.StreamHandler()
        handler.addFilter(PoolTeardownCancelled())
        pool.addHandler(handler)
        pool.propagate = False


USER_ERRORS = ("UserError", "ConfigError", "DataError", "ServiceError", "NoSpaceError")
USER_ERROR_NAMES = tuple(f"{name}(" for name in (*USER_ERRORS, "Interrupted")) + tuple(
    f"exception {name}:" for name in ("UserError", "DataError", "NoSpaceError", "Interrupted")
)


def _users(record: logging.LogRecord) -> bool:
    """Whether the record's exception is a user's error (:func:`crnn.errors.as_user_error`)."""
    return bool(record.exc_info and record.exc_info[1] and as_user_error(record.exc_info[1]))


class QuietConsole(logging.Filter):
    """What Prefect prints on a user's console: warnings and errors only (``--verbose``: all),
    and nothing about a user's error, which crnn prints once, itself, in one line."""

    def __init__(self, verbose: bool) -> None:
        super().__init__()
        self.verbose = verbose

    def filter(self, record: logging.LogRecord) -> bool:
        if _users(record):
            return False
        message = record.getMessage()
        if any(name in message for name in USER_ERROR_NAMES) or says_disk_full(message):
            return False
        return self.verbose or record.levelno >= logging.WARNING


def quiet_user_errors(verbose: bool = False) -> None:
    """Attach the filters to every handler of Prefect's loggers (call after importing Prefect):
    no traceback for a user's error anywhere; on the console (not in the logs Prefect keeps),
    only warnings and errors unless ``verbose``, and a user's error not at all."""
    from prefect.logging.handlers import APILogHandler, PrefectConsoleHandler

    names = ["prefect", *[n for n in logging.root.manager.loggerDict if n.startswith("prefect")]]
    prefects = [h for name in names for h in logging.getLogger(name).handlers]
    consoles = [h for h in logging.root.handlers if isinstance(h, PrefectConsoleHandler)]
    for handler in [*prefects, *consoles]:
        if not any(isinstance(f, UserErrorWithoutTraceback) for f in handler.filters):
            handler.addFilter(UserErrorWithoutTraceback())
        console = isinstance(handler, logging.StreamHandler) and not isinstance(
            handler, APILogHandler
        )
        if console and not any(isinstance(f, QuietConsole) for f in handler.filters):
            handler.addFilter(QuietConsole(verbose))
    quiet_pool_teardown()
    from crnn.secrets import install

    install()  # Prefect's own handlers (console, and the one shipping logs to its API) mask too


@contextmanager
def local_flow_runs() -> Iterator[None]:
    """Flow runs against the temporary local server send no heartbeats (call after importing
    Prefect). Heartbeats let a server mark a crashed run; this server starts and stops with the
    process, so nothing would read them, and stopping their thread, which sleeps in 1 s steps,
    added up to 1 s to every flow run. With a configured server (PREFECT_API_URL) they stay on."""
    from prefect.settings import (
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        get_current_settings,
        temporary_settings,
    )

    if get_current_settings().api.url:
        yield
        return
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


def start_temporary_server() -> Starting | None:
    """Start Prefect's temporary local server now, in the background, in a session of its own.

    Started here, its start-up (several seconds) overlaps the checks and imports that come
    before the first task. In its own session, a Ctrl-C at the terminal reaches crnn, which stops
    at a safe point and then stops the server, instead of killing the server under a running
    flow (every later state update would then fail and be retried). Prefect keeps one temporary
    server per process and reuses this one. None when a server is configured.
    """
    if os.environ.get("PREFECT_API_URL"):
        return None
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    if server.running:
        return None
    launch = server._run_uvicorn_command  # Prefect's own command line and environment

    def in_own_session() -> Any:
        real: Any = subprocess.Popen
        subprocess.Popen = _own_session(real)  # type: ignore[misc]
        try:
            return launch()
        finally:
            subprocess.Popen = real  # type: ignore[misc]

    server._run_uvicorn_command = in_own_session  # type: ignore[method-assign]
    starting = Starting(threading.Event())

    def run() -> None:
        try:
            server.start()
        except BaseException as exc:  # for join() to raise; the command may be ending anyway
            starting.error = exc
            return
        finally:
            starting.started.set()
        # the server dies with the thread that started it (below): this one stays, until exit
        threading.Event().wait()

    threading.Thread(target=run, name="crnn-prefect-server", daemon=True).start()
    return starting


class Starting:
    """The temporary server starting in the background: :meth:`join` waits until it answers
    (and raises what stopped it from starting). A command that fails before it joins says
    its own error alone: the thread prints nothing."""

    def __init__(self, started: threading.Event) -> None:
        self.started = started
        self.error: BaseException | None = None

    def join(self) -> None:
        self.started.wait()
        if self.error is not None:
            raise self.error


def _own_session(popen: Any) -> Any:
    """Popen in a session of its own (a terminal's Ctrl-C does not reach it), and killed by the
    kernel when the thread that started it ends: a ``kill -9`` of crnn leaves no server."""
    parent = os.getpid()

    class OwnSession(popen):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("start_new_session", True)
            kwargs.setdefault("preexec_fn", lambda: die_with_parent(signal.SIGTERM, parent))
            super().__init__(*args, **kwargs)

    return OwnSession


def current_flow_run_id() -> str:
    """The id of the Prefect flow run this code runs in ('' outside one)."""
    from prefect.runtime import flow_run

    return str(flow_run.id or "")


def crash_flow_runs(runs: list[Any]) -> None:
    """Mark the Prefect flow runs of dead pipeline runs (:mod:`crnn.tracking.liveness`) Crashed,
    with the reason; one that this Prefect API does not hold is left to it."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound
    from prefect.states import Crashed, State

    with get_client(sync_client=True) as client:
        for run in runs:
            if run.flow_run_id:
                with contextlib.suppress(ObjectNotFound, ValueError):
                    crashed: State[Any] = Crashed(message=run.reason)
                    client.set_flow_run_state(run.flow_run_id, crashed, force=True)
