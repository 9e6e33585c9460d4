"""`kill -9` of `crnn run`: nothing it started outlives it (the local Prefect server, the loader
workers), and the next run (or `crnn doctor --fix`) marks the run it left RUNNING as FAILED, with
the reason, and its Prefect flow run as Crashed; a live run is never touched."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import run_cli, start_cli, tiny_pipelines, write_config

pytestmark = pytest.mark.integration


def _statuses(workspace: Path) -> dict[str, tuple[str, dict[str, str]]]:
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{workspace / 'mlflow.db'}")
    exp = client.get_experiment_by_name("tiny")
    return {
        r.info.run_id: (r.info.status, r.data.tags) for r in client.search_runs([exp.experiment_id])
    }


def _cmdline(process: psutil.Process) -> str:
    try:
        return " ".join(process.cmdline())
    except psutil.Error:  # gone since it was listed
        return ""


def test_a_killed_run_leaves_no_process_and_is_marked_failed_next_time(tmp_path: Path) -> None:
    mapping = tiny_pipelines(tmp_path / "ws")
    tiny = mapping["pipelines"]["tiny"]
    tiny["data"]["lines"]["train"] = 320  # epochs long enough to be killed in one
    tiny["training"].update({"epochs": 30, "loader": {"workers": 2}, "log_every_steps": 5})
    config = write_config(tmp_path / "pipelines.yaml", mapping)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PREFECT_"))}
    proc = start_cli(["--config", str(config), "run"], env)
    assert proc.stdout is not None
    for line in proc.stdout:
        if "epoch 1/30" in line:  # the first epoch's line: the second is under way
            break
    deadline = time.monotonic() + 30
    while True:  # training under way: the Prefect server and the (persistent) loader workers
        children = psutil.Process(proc.pid).children(recursive=True)
        cmdlines = [_cmdline(c) for c in children]
        server = any("uvicorn" in c for c in cmdlines)
        forked = sum("forkserver" in c for c in cmdlines)  # the forkserver, then its 2 workers
        if (server and forked > 2) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    names = " ".join(cmdlines)
    assert "uvicorn" in names and "forkserver" in names, names  # the server, the workers
    listening = [
        c.laddr.ip
        for p in [psutil.Process(proc.pid), *children]
        for c in p.net_connections("inet")
        if c.status == psutil.CONN_LISTEN
    ]
    assert listening and set(listening) == {"127.0.0.1"}, listening  # nothing beyond this host
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    _, alive = psutil.wait_procs(children, timeout=30)
    assert not alive, [" ".join(p.cmdline()) for p in alive]

    [(run_id, (status, _))] = _statuses(tmp_path / "ws").items()
    assert status == "RUNNING"  # what a killed process leaves
    doctor = run_cli(["--config", str(config), "doctor", "--json"], env)  # says, fixes nothing
    assert run_id in doctor.stdout and "crnn doctor --fix" in doctor.stdout
    assert _statuses(tmp_path / "ws")[run_id][0] == "RUNNING"

    # the run after it: one epoch, no loader workers to start (what it must do comes first)
    rerun = ["--set", "training.epochs=1", "--set", "training.loader.workers=0"]
    again = run_cli(["--config", str(config), "run", *rerun], env)
    assert again.returncode == 0, again.stdout[-1500:] + again.stderr[-1500:]
    assert f"marked run {run_id} FAILED: its process {proc.pid} on" in again.stderr
    runs = _statuses(tmp_path / "ws")
    status, tags = runs[run_id]
    assert status == "FAILED" and f"its process {proc.pid}" in tags["crnn.failure"]
    assert sorted(s for s, _ in runs.values()) == ["FAILED", "FINISHED"]
    with sqlite3.connect(tmp_path / "ws" / "prefect" / "prefect.db") as db:
        states = sorted(row[0] for row in db.execute("SELECT state_type FROM flow_run"))
    assert states == ["COMPLETED", "CRASHED"], states


def test_doctor_fix_marks_only_dead_runs_of_this_host(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    from crnn.tracking.liveness import HOST_TAG, PID_TAG, STARTED_TAG, this_process

    config = write_config(tmp_path / "pipelines.yaml", tiny_pipelines(tmp_path / "ws"))
    client = MlflowClient(f"sqlite:///{tmp_path / 'ws' / 'mlflow.db'}")
    exp = client.create_experiment("tiny")
    me = this_process()
    dead = {**me, PID_TAG: str(2**22 + 7)}  # no such process
    elsewhere = {**dead, HOST_TAG: "another-host"}
    reused = {**me, STARTED_TAG: "1000.00"}  # this pid, but not the process that started
    runs = {k: client.create_run(exp, tags=t).info.run_id for k, t in [
        ("dead", dead), ("live", me), ("elsewhere", elsewhere), ("reused", reused)
    ]}  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PREFECT_"))}
    fixed = run_cli(["--config", str(config), "doctor", "--fix", "--json"], env)
    assert "marked 2 run(s) FAILED" in fixed.stdout, fixed.stdout
    status = {k: client.get_run(r).info.status for k, r in runs.items()}
    assert status == {
        "dead": "FAILED", "live": "RUNNING", "elsewhere": "RUNNING", "reused": "FAILED"
    }  # fmt: skip
