"""`crnn sweep` through the real flow, as a user runs it: a tiny sweep of four trials, two at a
time, killed with SIGKILL mid-way and run again. The study continues (finished trials are kept,
the ones the kill left running are run anew), the deliberately bad enqueued trial is pruned,
every trial is a child run of the parent, the shards are built once, the best trial alone is
evaluated on the test split and registered through the gate; `crnn run --from-sweep` trains
with its values."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from crnn.errors import UserError
from tests.conftest import run_cli, start_cli, tiny_pipelines, user_env, write_config

pytestmark = pytest.mark.integration

BAD_LR = 9.0  # far too large: its first epoch's validation loss is far behind the others'
# two epochs are enough: the pruner may stop a trial after its first (warmup_epochs), so a
# pruned trial with one epoch of two stopped before its last; every epoch more, and every line,
# is paid by each trial, twice over (before the kill and after it)
EPOCHS = 2
LINES = {"train": 96, "val": 32, "test": 32}
SWEEP = {
    "metric": "val_loss",
    "space": {"training.lr": {"type": "float", "low": 1e-3, "high": 10.0, "log": True}},
    "trials": 4,
    "parallel": 2,
    "sampler": "random",
    "pruner": "median",
    "startup_trials": 1,
    "warmup_epochs": 1,
    "seed": 3,
    # after trial 0 (the pipeline as it is): a good one, then the bad one
    "enqueue": [{"training.lr": 0.006}, {"training.lr": BAD_LR}],
}


def _study(ws: Path) -> Any:
    import optuna

    from crnn.sweep.study import open_storage

    storage = open_storage(None, ws)
    [summary] = optuna.get_all_study_summaries(storage)
    return optuna.load_study(study_name=summary.study_name, storage=storage)


def _client(ws: Path) -> Any:
    from mlflow import MlflowClient

    uri = f"sqlite:///{ws / 'mlflow.db'}"
    return MlflowClient(uri, registry_uri=uri)  # whatever MLFLOW_REGISTRY_URI says


def _runs(ws: Path) -> dict[str, Any]:
    client = _client(ws)
    exp = client.get_experiment_by_name("tiny")
    return {r.info.run_id: r for r in client.search_runs([exp.experiment_id])}


@pytest.fixture(scope="module")
def swept(
    tmp_path_factory: pytest.TempPathFactory, prefect_server: dict[str, str]
) -> dict[str, Any]:
    """The sweep killed once it has finished a trial, then run again to the end."""
    from optuna.trial import TrialState

    tmp = tmp_path_factory.mktemp("sweep")
    mapping = tiny_pipelines(tmp / "ws", sweep=SWEEP)
    mapping["pipelines"]["tiny"]["training"]["epochs"] = EPOCHS
    mapping["pipelines"]["tiny"]["data"]["lines"] = LINES
    config = write_config(tmp / "pipelines.yaml", mapping)
    env = user_env(**prefect_server)
    proc = start_cli(["--config", str(config), "sweep"], env)
    ws = tmp / "ws"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:  # one trial finished, another one still training
        time.sleep(0.2)
        if not (ws / "sweeps" / "optuna.journal").is_file() or proc.poll() is not None:
            continue
        states = [t.state for t in _study(ws).trials]
        if states.count(TrialState.COMPLETE) >= 1 and TrialState.RUNNING in states:
            break
    assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
    manifest = next((ws / "shards").glob("*/manifest.json"))
    built = manifest.stat().st_mtime_ns
    trials = psutil.Process(proc.pid).children(recursive=True)
    before = {t.number: (t.state, t.value) for t in _study(ws).trials}
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    _, alive = psutil.wait_procs(trials, timeout=60)
    assert not alive, [" ".join(p.cmdline()) for p in alive]  # the trials died with it

    again = run_cli(["--config", str(config), "sweep", "--json"], env)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    summary = json.loads(again.stdout)
    return {
        "config": config,
        "env": env,
        "ws": ws,
        "summary": summary,
        "before": before,
        "study": _study(ws),
        "runs": _runs(ws),
        "manifest": manifest,
        "built": built,
    }


def test_the_killed_sweep_continues_without_repeating_finished_trials(swept: dict) -> None:
    from optuna.trial import TrialState

    from crnn.sweep.study import LOST, RETRY_OF, finished

    study, before = swept["study"], swept["before"]
    assert len(finished(study.trials)) == SWEEP["trials"]
    for number, (state, value) in before.items():  # what was finished stays as it was
        if state in (TrialState.COMPLETE, TrialState.PRUNED):
            assert (study.trials[number].state, study.trials[number].value) == (state, value)
    lost = [t for t in study.trials if LOST in t.user_attrs]
    assert lost and all(before[t.number][0] == TrialState.RUNNING for t in lost)
    retries = {t.user_attrs[RETRY_OF]: t for t in study.trials if RETRY_OF in t.user_attrs}
    for trial in lost:  # each lost trial ran again with its own values
        assert retries[trial.number].params == trial.params
        assert retries[trial.number].state != TrialState.RUNNING
    trial_runs = [r for r in swept["runs"].values() if "crnn.sweep.trial" in r.data.tags]
    numbers = [int(r.data.tags["crnn.sweep.trial"]) for r in trial_runs]
    assert sorted(numbers) == sorted(set(numbers))  # one run per trial: none trained twice
    assert swept["summary"]["trials_lost_and_rerun"] == len(lost)


def test_trials_ran_two_at_a_time(swept: dict) -> None:
    spans = [
        (t.datetime_start, t.datetime_complete)
        for t in swept["study"].trials
        if t.datetime_complete is not None and LOST_NOT(t)
    ]
    most = max(sum(s <= start < e for s, e in spans) for start, _ in spans)
    assert most == SWEEP["parallel"]


def LOST_NOT(trial: Any) -> bool:
    from crnn.sweep.study import LOST

    return LOST not in trial.user_attrs


def test_the_bad_enqueued_trial_is_pruned_and_its_run_killed(swept: dict) -> None:
    from optuna.trial import TrialState

    [bad] = [t for t in swept["study"].trials if t.params["training.lr"] == BAD_LR and LOST_NOT(t)]
    assert bad.state == TrialState.PRUNED
    run = swept["runs"][bad.user_attrs["crnn.run_id"]]
    assert run.info.status == "KILLED" and run.data.tags["pruned"] == "true"
    assert len(bad.intermediate_values) < EPOCHS  # stopped before its last epoch


def test_every_trial_is_a_child_run_of_the_parent_with_its_values(swept: dict) -> None:
    parent = swept["summary"]["mlflow"]["parent_run_id"]
    runs = swept["runs"]
    assert runs[parent].data.tags["crnn.sweep.role"] == "parent"
    for trial in swept["study"].trials:
        if "crnn.run_id" not in trial.user_attrs:
            continue
        run = runs[trial.user_attrs["crnn.run_id"]]
        assert run.data.tags["mlflow.parentRunId"] == parent
        assert float(run.data.params["training.lr"]) == trial.params["training.lr"]
        assert run.data.params["training.loader.workers"] == "0"  # 2 cores, 2 trials: 1 each


def test_the_parent_holds_the_best_values_table_and_plots(swept: dict) -> None:

    from crnn.sweep.results import TrialRow
    from flows.summaries import SweepSummary

    summary, study = swept["summary"], swept["study"]
    # `crnn sweep --json` prints the keys its typed record declares
    assert set(summary) == set(SweepSummary.__annotations__)
    assert set(summary["best"]) == set(TrialRow.__annotations__)
    parent = swept["runs"][summary["mlflow"]["parent_run_id"]]
    best = study.best_trial
    assert summary["best"]["trial"] == best.number
    assert json.loads(parent.data.params["best.training.lr"]) == best.params["training.lr"]
    assert parent.data.metrics["sweep/best_val_loss"] == pytest.approx(best.value)
    [default] = [t for t in study.trials if t.user_attrs.get("crnn.default") and LOST_NOT(t)]
    assert default.state.name == "COMPLETE"  # never pruned: the gain is measured against it
    assert parent.data.metrics["sweep/default_val_loss"] == pytest.approx(default.value)
    assert summary["gain"] == pytest.approx(default.value - best.value)  # minimized: >= 0
    client = _client(swept["ws"])
    files = {f.path for f in client.list_artifacts(parent.info.run_id, "sweep")}
    assert {"sweep/trials.csv", "sweep/summary.json", "sweep/plots"} <= files
    plots = {f.path for f in client.list_artifacts(parent.info.run_id, "sweep/plots")}
    assert "sweep/plots/optimization_history.png" in plots


def test_only_the_best_trial_sees_the_test_split_and_goes_through_the_gate(swept: dict) -> None:
    summary = swept["summary"]
    parent, best_run = summary["mlflow"]["parent_run_id"], summary["best"]["run_id"]
    with_test = [
        r.info.run_id
        for r in swept["runs"].values()
        if any(k.startswith("test/") for k in r.data.metrics)
    ]
    assert with_test == [best_run]
    reg = summary["registry"]
    client = _client(swept["ws"])
    version = client.get_model_version(reg["model_name"], reg["version"])
    assert version.run_id == best_run and version.tags["crnn.sweep_run"] == parent
    assert version.tags["gate.decision"] in ("promoted", "rejected")
    challenger = client.get_model_version_by_alias(reg["model_name"], "challenger")
    assert challenger.version == version.version


def test_the_shards_are_built_once_and_shared_by_every_trial(swept: dict) -> None:
    ws = swept["ws"]
    assert len(list((ws / "shards").glob("*/manifest.json"))) == 1
    assert swept["manifest"].stat().st_mtime_ns == swept["built"]  # not rebuilt by the rerun
    assert swept["summary"]["shards"]["reused"] is True
    digest = swept["summary"]["shards"]["digest"]
    trial_runs = [r for r in swept["runs"].values() if "crnn.sweep.trial" in r.data.tags]
    # a trial the kill caught as it started may have no dataset inputs yet; every finished has
    assert all(r.inputs.dataset_inputs for r in trial_runs if r.info.status == "FINISHED")
    logged = [r.inputs.dataset_inputs for r in trial_runs if r.inputs.dataset_inputs]
    assert {inputs[0].dataset.digest[:8] for inputs in logged} == {digest[:8]}
    assert all(digest[:8] in r.info.run_name for r in trial_runs)


def test_a_retrain_from_the_sweep_adopts_its_best_values(swept: dict) -> None:
    """What `crnn run --from-sweep` and `schedule.from_sweep` hand the retrain flow."""
    from flows.retrain import adopt_sweep

    parent = swept["summary"]["mlflow"]["parent_run_id"]
    best = swept["study"].best_trial.params["training.lr"]
    for ref in ("latest", parent):
        overrides, tags = adopt_sweep(str(swept["config"]), "tiny", ref, ["training.epochs=1"])
        assert tags == {"crnn.sweep_run": parent}
        assert overrides == [f"training.lr={json.dumps(best)}", "training.epochs=1"]
    with pytest.raises(UserError, match="not a sweep of pipeline"):
        adopt_sweep(str(swept["config"]), "tiny", swept["summary"]["best"]["run_id"], [])
