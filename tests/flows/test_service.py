"""`crnn server start|stop|status`: a local Prefect server kept between commands, used by
`crnn run` while it answers, stopped with nothing left behind; a stale record is not trusted."""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

import psutil
import pytest

from flows.runtime.kept_server import SERVICE_FILE, home_of, read_service
from flows.runtime.server_process import free_port
from tests.conftest import run_cli, tiny_pipelines, write_config

pytestmark = pytest.mark.integration


def running(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie left for a parent that does not reap it does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def flow_runs_on(api_url: str) -> int:
    request = urllib.request.Request(
        f"{api_url}/flow_runs/count", data=b"{}", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return int(json.loads(answer.read()))


def test_a_run_uses_the_service_which_stops_with_nothing_left(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    config = write_config(
        tmp_path / "pipelines.yaml",
        tiny_pipelines(workspace, training={"epochs": 1, "batch_size": 32, "device": "cpu"}),
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}
    env["CRNN_WORKSPACE"] = str(workspace)
    port = free_port()
    cli = ["--config", str(config)]
    try:
        started = run_cli([*cli, "server", "start", "--port", str(port)], env, timeout=180)
        assert started.returncode == 0, started.stdout + started.stderr
        assert f"started: Prefect at http://127.0.0.1:{port}" in started.stdout
        service = read_service(workspace)
        assert service is not None and service.port == port

        again = run_cli([*cli, "server", "start", "--port", str(port)], env)
        assert "already running" in again.stdout and read_service(workspace) == service

        ran = run_cli([*cli, "run"], env)
        assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
        assert f"Prefect: the local server at http://127.0.0.1:{port}" in ran.stdout
        assert flow_runs_on(service.api_url) >= 1  # the flow ran on the service, not in-process

        status = json.loads(run_cli([*cli, "server", "status", "--json"], env).stdout)
        assert status["state"] == "running" and status["pid"] == service.pid
        server = psutil.Process(service.pid)
        listening = {
            c.laddr.ip
            for p in [server, *server.children(recursive=True)]
            for c in p.net_connections("inet")
            if c.status == psutil.CONN_LISTEN
        }
        assert listening == {"127.0.0.1"}  # bound to this host only
    finally:
        stopped = run_cli([*cli, "server", "stop"], env, timeout=120)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert not (home_of(workspace) / SERVICE_FILE).exists()
    assert not running(service.pid)  # the server and its group are gone
    assert "not running" in run_cli([*cli, "server", "status"], env).stdout


def test_a_record_of_a_dead_server_is_removed_not_used(tmp_path: Path) -> None:
    """A server killed without `crnn server stop` leaves its record: the next command finds its
    process gone, removes the record and runs on Prefect's temporary server."""
    from flows.runtime.kept_server import use_service

    home = home_of(tmp_path)
    home.mkdir(parents=True)
    dead = 2**22 + 12345  # above the default pid_max: no process has it
    (home / SERVICE_FILE).write_text(json.dumps({"pid": dead, "port": 9, "started": "x"}))
    assert use_service(tmp_path) is None
    assert not (home / SERVICE_FILE).exists()
