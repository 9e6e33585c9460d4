"""A sweep's trials as tasks on a real Dask cluster (`dask scheduler` + two `dask worker`
processes on 127.0.0.1, as in tests/test_cluster.py): each trial's process runs on a worker and
is a child run of the sweep's parent; a worker killed mid-trial loses that trial, which is queued
again and finished on the other worker; a cancelled task stops its process on the worker."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from crnn.errors import LostWork
from tests.conftest import tiny_pipelines, write_config
from tests.test_cluster import cluster  # noqa: F401  (the fixture)

pytestmark = pytest.mark.integration

SWEEP = {
    "metric": "val_loss",
    "space": {"training.lr": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True}},
    "trials": 2,
    "parallel": 2,
    "sampler": "random",
    "pruner": "none",
    "seed": 3,
}
# each trial is a process that imports torch, MLflow and Optuna: two trials (and the lost one's
# second) are what the test can pay for; the lines are few, the epochs two (killed after one)
LINES = {"train": 32, "val": 16, "test": 16}


def _kill_mid_trial(study_of: Any, worker: psutil.Process, stop: threading.Event) -> None:
    """SIGKILL ``worker`` once a trial running on it has reported its first epoch."""
    from optuna.trial import TrialState

    from crnn.sweep.trial import STARTED

    while not stop.wait(0.3):
        for trial in study_of().get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            pid = trial.user_attrs.get(STARTED, {}).get("pid")
            on_it = pid and psutil.pid_exists(pid) and psutil.Process(pid).ppid() == worker.pid
            if on_it and trial.intermediate_values:
                worker.send_signal(signal.SIGKILL)
                return


def test_trials_run_on_the_workers_and_a_dead_worker_loses_nothing(
    cluster,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import optuna
    from mlflow import MlflowClient
    from optuna.trial import TrialState

    from crnn.cluster import ENV
    from crnn.config import load_pipeline
    from crnn.sweep.study import LOST, RETRY_OF, finished, open_storage
    from crnn.workspace import resolve_workspace
    from flows.sweep import open_sweep_task, trials_task
    from flows.tasks import preprocess_task

    address, workers = cluster
    mapping = tiny_pipelines(tmp_path / "ws", sweep=SWEEP)
    mapping["pipelines"]["tiny"]["data"]["lines"] = LINES
    config = write_config(tmp_path / "pipelines.yaml", mapping)
    config_file, cfg = load_pipeline(config)
    workspace = resolve_workspace(config_file.workspace, config)
    shards = preprocess_task.fn(cfg, workspace)  # here: CRNN_CLUSTER is not set yet
    ref = open_sweep_task.fn(cfg, workspace, shards, ())
    monkeypatch.setenv(ENV, address)  # as `crnn sweep --cluster ADDRESS` sets it

    def study() -> Any:
        storage = open_storage(None, workspace.root)
        return optuna.load_study(study_name=ref.study, storage=storage)

    stop = threading.Event()
    killer = threading.Thread(
        target=_kill_mid_trial, args=(study, psutil.Process(workers[0].pid), stop), daemon=True
    )
    killer.start()
    try:
        trials_task.fn(cfg, str(config), workspace, shards, ref, (), False)
    finally:
        stop.set()
        killer.join()
    assert workers[0].wait(timeout=10) == -signal.SIGKILL

    trials = study().trials
    done = finished(trials)
    assert len(done) == SWEEP["trials"]
    assert {t.state for t in done} == {TrialState.COMPLETE}  # each planned trial finished
    [lost] = [t for t in trials if LOST in t.user_attrs]
    [retry] = [t for t in trials if t.user_attrs.get(RETRY_OF) == lost.number]
    assert retry in done and retry.params == lost.params
    assert retry.user_attrs["crnn.worker"]["pid"] == workers[1].pid  # the one still alive

    pids = {w.pid for w in workers}
    client = MlflowClient(f"sqlite:///{workspace.root / 'mlflow.db'}")
    for trial in done:  # ran on a worker, in a process of its own, a child run of the parent
        where = trial.user_attrs["crnn.worker"]
        assert where["pid"] in pids and where["pid"] != os.getpid()
        assert trial.user_attrs["crnn.started"]["pid"] not in pids | {os.getpid()}
        run = client.get_run(trial.user_attrs["crnn.run_id"])
        assert run.data.tags["mlflow.parentRunId"] == ref.parent.run_id
        assert run.info.status == "FINISHED"


class Sleeper:
    """A job that sleeps in its process until stopped, writing its pid first."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def command(self, cores: int, attempt: str) -> tuple[list[str], dict[str, str], Path]:
        code = f"import os,time; open({str(self.folder / 'pid')!r},'w').write(str(os.getpid()))"
        argv = [sys.executable, "-c", f"{code}; time.sleep(120)"]
        return argv, dict(os.environ), self.folder / "sleeper.log"

    def outcome(self, code: int) -> dict[str, Any]:
        return {"code": code}


def test_a_cancelled_task_stops_its_process_on_the_worker(cluster, tmp_path: Path) -> None:  # noqa: F811
    from crnn.cluster.processes import tasks

    address, _ = cluster
    with tasks(address) as pool:
        assert pool.unseen([tmp_path]) == {}
        missing = pool.unseen([tmp_path / "nowhere"])
        assert missing and all(m == [str(tmp_path / "nowhere")] for m in missing.values())
        task = pool.run_process(Sleeper(tmp_path))
        deadline = time.monotonic() + 30
        while not (tmp_path / "pid").is_file() and time.monotonic() < deadline:
            time.sleep(0.1)
        pid = int((tmp_path / "pid").read_text())
        assert psutil.pid_exists(pid) and not task.done()
        task.cancel()
        psutil.Process(pid).wait(timeout=15)  # stopped by the worker, not left running
        with pytest.raises(LostWork, match="cancelled"):
            task.result()
