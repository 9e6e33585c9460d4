"""`crnn serve` on a machine without a Prefect server: it starts its own on 127.0.0.1, fires the
schedule of pipelines.yaml, and stops cleanly on SIGTERM with the schedules paused; then
`crnn run --if-changed` on the same workspace sees nothing new."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from flows.runtime.server_process import free_port, port_in_use
from tests.conftest import start_cli
from tests.flows.schedule_helpers import child_env, client, crnn, write_project

pytestmark = pytest.mark.integration


def registered_versions(project: Path) -> int:
    db = project / "ws" / "mlflow.db"
    if not db.is_file():
        return 0
    uri = f"sqlite:///{db}"
    try:
        return len(MlflowClient(uri, uri).search_model_versions("name = 'crnn-shapes'"))
    except Exception:  # the store is being created by the run
        return 0


def completed_runs(api_url: str) -> list[object]:
    """Completed flow runs on the server `crnn serve` started (none while it is starting)."""
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    only = FlowRunFilter(
        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.COMPLETED]))
    )
    try:
        with client(api_url) as c:
            return list(c.read_flow_runs(flow_run_filter=only))
    except Exception:
        return []


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    project = tmp_path_factory.mktemp("served")
    write_project(project, schedule={"interval": 10})
    port = free_port()
    env = child_env(None, project / "home")  # no PREFECT_API_URL: serve starts its own server
    proc = start_cli(["serve", "--port", str(port)], env, cwd=project)
    try:
        deadline = time.monotonic() + 180
        while not completed_runs(f"http://127.0.0.1:{port}/api"):  # the schedule fired
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "no scheduled run completed"
            time.sleep(1)
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:  # a failed wait: stop it as a user would, so its server stops
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
    return {"project": project, "port": port, "rc": proc.returncode, "output": output}


def test_serve_fires_the_schedule_and_stops_cleanly(served: dict[str, object]) -> None:
    output = str(served["output"])
    assert served["rc"] == 0, output
    assert "serving 1 deployment(s)" in output and "retrain/shapes: every 10 s (UTC)" in output
    assert "Traceback" not in output, output
    assert registered_versions(Path(str(served["project"]))) == 1  # the fired run registered
    assert "the schedules of 1 deployment(s) are paused" in output
    assert not port_in_use(int(str(served["port"])))  # its server stopped with it
    db = Path(str(served["project"])) / "ws" / "prefect-server" / "prefect.db"
    with sqlite3.connect(db) as con:
        paused = con.execute("select paused from deployment where name = 'shapes'").fetchall()
    assert paused == [(1,)]


def test_run_if_changed_sees_nothing_new(served: dict[str, object]) -> None:
    project = Path(str(served["project"]))
    before = registered_versions(project)
    done = crnn(["run", "--if-changed"], project, child_env(None, project / "home"))
    assert done.returncode == 0, done.stderr
    assert "no new data" in done.stdout
    assert registered_versions(project) == before
