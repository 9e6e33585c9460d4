"""A Prefect server on 127.0.0.1 for a machine that has none (`crnn serve`), and the tests.

It runs as ``prefect server start`` in its own process group, with its SQLite database in the
given home folder; it is up once ``/api/health`` answers, and is stopped with SIGTERM to the
group (SIGKILL after a grace period), so nothing it started outlives it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from crnn.errors import ServiceError, UserError
from crnn.retry import TIMEOUT_S, service_error, with_retries

STARTUP_SECONDS = 120.0  # a cold start (migrations, UI assets) on a 2-core machine
QUIET = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_TELEMETRY_ENABLED": "false",
}


def quiet_prefect_sdk() -> None:
    """Tell Prefect's client (before it is imported) that it collects nothing here: call where
    this process uses a Prefect server crnn started, whose analytics are off (:data:`QUIET`,
    the temporary one's settings). Its client then sends no usage events already, yet at its
    first import in a terminal it printed a notice that it collects them; DO_NOT_TRACK is the
    client's own opt-out (a value the user set is kept)."""
    os.environ.setdefault("DO_NOT_TRACK", "1")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int) -> bool:
    """Whether a server could not bind 127.0.0.1:``port`` now: something listens there, or holds
    it bound without listening (which a connect would miss). A port left in TIME_WAIT is free,
    as for the servers (they set SO_REUSEADDR too)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
        return False


def healthy(api_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def server_command(host: str, port: int) -> list[str]:
    """How a Prefect server is started, here and in infra/compose.yaml."""
    return ["prefect", "server", "start", "--host", host, "--port", str(port)]


def require_api(api_url: str) -> None:
    """Raise ServiceError (one line) unless the Prefect API answers its health check, tried by
    the one retry policy."""

    def probe() -> int:
        with urllib.request.urlopen(f"{api_url.rstrip('/')}/health", timeout=TIMEOUT_S) as answer:
            return int(answer.status)

    started = time.monotonic()
    try:
        with_retries(probe)
    except (OSError, ValueError) as exc:
        setting = "PREFECT_API_URL (unset it to run on this machine alone)"
        raise ServiceError(
            service_error("Prefect API", api_url, exc, setting, time.monotonic() - started)
        ) from None


@contextlib.contextmanager
def local_server(
    home: Path, port: int, log: Path, env: dict[str, str] | None = None
) -> Iterator[str]:
    """Start a Prefect server on 127.0.0.1:``port``; yields its API URL; stops it after."""
    if port_in_use(port):
        raise UserError(f"port {port} on 127.0.0.1 is in use; pass --port with a free one")
    home.mkdir(parents=True, exist_ok=True)
    api_url = f"http://127.0.0.1:{port}/api"
    child_env = {
        **os.environ,
        **QUIET,
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": api_url,
        **(env or {}),
    }
    command = [sys.executable, "-m", *server_command("127.0.0.1", port)]
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            command, env=child_env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_until_healthy(proc, api_url, log)
        yield api_url
    finally:
        stop_group(proc)


def wait_until_healthy(proc: subprocess.Popen[bytes], api_url: str, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while not healthy(api_url):
        if proc.poll() is not None:
            raise UserError(
                f"the Prefect server exited at start (code {proc.returncode}); see {log}"
            )
        if time.monotonic() > deadline:
            raise UserError(
                f"the Prefect server did not answer in {STARTUP_SECONDS:.0f} s; see {log}"
            )
        time.sleep(0.5)


def stop_group(proc: subprocess.Popen[bytes], grace: float = 20.0) -> None:
    """SIGTERM to the process group of ``proc`` (started with start_new_session), then SIGKILL."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
