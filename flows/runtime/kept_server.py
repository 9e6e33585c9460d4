"""`crnn server start|stop|status`: a local Prefect server kept between commands, on purpose.

Without one, every `crnn run` and `crnn score` starts Prefect's temporary server in the
background and stops it at exit (several seconds each time). Started as a service, a server on
127.0.0.1 runs in a session of its own, with its database in the workspace (the one `crnn serve`
uses), until `crnn server stop`; its pid, port and start time are in ``service.json`` beside it.
While it answers, commands of this workspace with no PREFECT_API_URL use it (:func:`use_service`)
and say so in one line; a record whose process is gone is removed, never trusted.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from crnn.atomic import atomic_write_text
from crnn.errors import UserError
from crnn.lifetime import running
from flows.runtime.server_process import (
    QUIET,
    healthy,
    port_in_use,
    quiet_prefect_sdk,
    server_command,
    wait_until_healthy,
)

SERVER_HOME = "prefect-server"  # under the workspace: the service's and `crnn serve`'s state
SERVICE_FILE = "service.json"
LOG_FILE = "server.log"


@dataclass(frozen=True)
class Service:
    pid: int
    port: int
    started: str  # UTC, ISO 8601

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def home_of(workspace: Path) -> Path:
    return workspace / SERVER_HOME


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a running Prefect server (a reused pid of another program is not)."""
    if not running(pid):
        return False
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists():
        with contextlib.suppress(OSError):
            return b"prefect" in cmdline.read_bytes()
    return True


def read_service(workspace: Path) -> Service | None:
    """The service of this workspace when its process runs; a stale record is removed."""
    path = home_of(workspace) / SERVICE_FILE
    try:
        service = Service(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None
    if _alive(service.pid):
        return service
    path.unlink(missing_ok=True)
    return None


def start_service(workspace: Path, port: int) -> tuple[Service, bool]:
    """Start the service (or find it running): the service and whether it was started now."""
    running = read_service(workspace)
    if running is not None:
        return running, False
    if port_in_use(port):
        raise UserError(f"port {port} on 127.0.0.1 is in use; pass --port with a free one")
    home = home_of(workspace)
    home.mkdir(parents=True, exist_ok=True)
    api_url = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, **QUIET, "PREFECT_HOME": str(home), "PREFECT_API_URL": api_url}
    log = home / LOG_FILE
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", *server_command("127.0.0.1", port)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives this command: that is what a service is for
        )
    try:
        wait_until_healthy(proc, api_url, log)
    except BaseException:
        _stop_group(proc.pid)
        raise
    service = Service(proc.pid, port, datetime.now(UTC).isoformat(timespec="seconds"))
    atomic_write_text(home / SERVICE_FILE, json.dumps(asdict(service)) + "\n")
    return service, True


def stop_service(workspace: Path, grace: float = 20.0) -> Service | None:
    """Stop the service of this workspace (SIGTERM to its group, SIGKILL after ``grace``);
    the service stopped, or None when none ran."""
    service = read_service(workspace)
    if service is None:
        return None
    _stop_group(service.pid, grace)
    (home_of(workspace) / SERVICE_FILE).unlink(missing_ok=True)
    return service


def _stop_group(pid: int, grace: float = 20.0) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)  # reap it when this process started it
            # running, not _alive: an exiting process's cmdline reads empty before it is gone
            if not running(pid):
                return
            time.sleep(0.1)


def use_service(workspace: Path) -> Service | None:
    """Point this process's Prefect at the workspace's service when one answers and no
    PREFECT_API_URL is set (call before Prefect is imported); the service used, or None."""
    if os.environ.get("PREFECT_API_URL"):
        return None
    service = read_service(workspace)  # a stale record is removed here
    if service is None or "prefect" in sys.modules or not healthy(service.api_url):
        return None  # (Prefect imported already reads its settings no more)
    os.environ["PREFECT_API_URL"] = service.api_url
    os.environ.setdefault("PREFECT_HOME", str(home_of(workspace)))
    quiet_prefect_sdk()
    return service
