"""The one retry policy: transient failures are retried within the budget, then the command fails
in one line naming the (redacted) URL; a service that answers 503 a few times then recovers is
retried and succeeds."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from crnn.errors import ServiceError
from crnn.retry import ATTEMPTS, BUDGET_S, is_transient, with_retries
from flows.runtime.server_process import free_port, require_api
from tests.conftest import run_cli, tiny_pipelines, write_config


class Flaky(BaseHTTPRequestHandler):
    """503 for the first ``failures`` requests, then an MLflow experiment or Prefect health."""

    failures = 3
    seen: list[str] = []  # noqa: RUF012  (shared by the handler threads of one server)

    def do_GET(self) -> None:
        self.seen.append(self.path)
        if len(self.seen) <= self.failures:
            self.send_response(503)
            self.end_headers()
            return
        body = {"experiment": {"experiment_id": "7", "name": "x", "lifecycle_stage": "active"}}
        payload = json.dumps(body if "mlflow" in self.path else True).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def flaky() -> Iterator[str]:
    Flaky.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Flaky)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_mlflow_client_retries_503_then_succeeds(flaky: str) -> None:
    from mlflow import MlflowClient

    import crnn.tracking.runs  # noqa: F401  (puts the policy into MLflow's settings)

    experiment = MlflowClient(flaky).get_experiment_by_name("x")
    assert experiment is not None and experiment.experiment_id == "7"
    assert len(Flaky.seen) == 4  # three 503s, then the answer


def test_prefect_health_probe_retries_503_then_succeeds(flaky: str) -> None:
    require_api(f"{flaky}/api")
    assert Flaky.seen == ["/api/health"] * 4


def test_too_many_503_fail_in_one_line(flaky: str) -> None:
    Flaky.failures = ATTEMPTS
    try:
        with pytest.raises(ServiceError) as info:
            require_api(f"{flaky}/api")
    finally:
        Flaky.failures = 3
    assert len(Flaky.seen) == ATTEMPTS
    assert "Prefect API at " in str(info.value) and "HTTP 503" in str(info.value)


def test_user_errors_are_never_retried() -> None:
    calls = []

    def bad() -> None:
        calls.append(1)
        raise ValueError("bad input")

    with pytest.raises(ValueError):
        with_retries(bad)
    assert calls == [1]
    assert is_transient(ConnectionRefusedError()) and not is_transient(KeyError("x"))


def crnn_run(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`crnn run` of a tiny pipeline in a fresh process, with only ``env`` pointing anywhere."""
    config = write_config(tmp_path / "pipelines.yaml", tiny_pipelines(tmp_path / "ws"))
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PREFECT_"))}
    return run_cli(["--config", str(config), "run"], {**clean, **env}, timeout=120)


@pytest.mark.integration
def test_dead_tracking_server_fails_the_run_in_one_line(tmp_path: Path) -> None:
    dead = free_port()  # nothing listens there
    started = time.monotonic()
    done = crnn_run(tmp_path, MLFLOW_TRACKING_URI=f"http://someone:hunter2-secret@127.0.0.1:{dead}")
    seconds = time.monotonic() - started
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr  # before any work: no Prefect, no traceback
    assert lines[0].startswith(
        f"crnn: error: MLflow tracking server at http://127.0.0.1:{dead} is not reachable "
        f"(connection refused; {ATTEMPTS} tries in "
    )
    assert "hunter2" not in done.stdout + done.stderr
    print(f"dead tracking server: failed in {seconds:.1f} s (budget {BUDGET_S:.0f} s)")


@pytest.mark.integration
def test_dead_prefect_api_fails_the_run_in_one_line(tmp_path: Path) -> None:
    dead = free_port()
    done = crnn_run(tmp_path, PREFECT_API_URL=f"http://127.0.0.1:{dead}/api")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"crnn: error: Prefect API at http://127.0.0.1:{dead}/api is not")
    assert "PREFECT_API_URL" in lines[0]
