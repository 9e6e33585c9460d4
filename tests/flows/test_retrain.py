"""End to end: the real `retrain` Prefect flow on a tiny config, a real SQLite MLflow store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crnn.config import load_pipeline
from crnn.data.catalog import open_source
from tests.conftest import REPO, tiny_pipelines, write_config

pytestmark = pytest.mark.integration

GATE = {"model_name": "crnn-tiny", "metric": "test_cer", "direction": "minimize", "min_delta": 0.0}


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    mapping = tiny_pipelines(tmp_path / "ws", registry=dict(GATE))
    tiny = mapping["pipelines"]["tiny"]
    # enough steps (~200) to leave CTC's all-blank plateau, so the champion is a real model
    tiny["data"]["lines"]["train"] = 400
    tiny["training"].update(epochs=4, batch_size=16, schedule="constant", log_every_steps=10)
    tiny["tracking"] = {"system_metrics_interval": 0.5}
    return write_config(tmp_path / "pipelines.yaml", mapping)


def clean_env(tmp_path: Path) -> dict[str, str]:
    """The environment a user's fresh shell would have: in-process tests export server URIs."""
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect-home")}
    for leaked in ("PREFECT_API_URL", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        env.pop(leaked, None)
    return env


def run_cli(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`crnn ARGS` in a fresh process, as a user would run it (with ``env`` added)."""
    return subprocess.run(
        [sys.executable, "-m", "crnn.cli", *args],
        capture_output=True,
        text=True,
        env={**clean_env(tmp_path), **(env or {})},
        cwd=tmp_path,
        timeout=300,
        check=False,
    )


def _mlflow_client(summary: dict):
    from mlflow import MlflowClient

    uri = summary["mlflow"]["tracking_uri"]
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _keys_as_typed(summary: dict) -> None:
    """The summary a run returns (and `crnn run --json` prints) has the keys its typed record
    declares, down to the registration and the shard set."""
    from crnn.tracking.registry import RegistrationSummary
    from flows.summaries import RunSummary, ShardsSummary, TrainingSummary

    # the baseline's row is there only where the kind has one (NotRequired, which the postponed
    # annotations hide from __required_keys__)
    optional = {"baseline"}
    assert set(summary) - optional == set(RunSummary.__annotations__) - optional
    assert set(summary["registry"]) == set(RegistrationSummary.__annotations__)
    assert set(summary["shards"]) == set(ShardsSummary.__annotations__)
    assert set(summary["training"]) == set(TrainingSummary.__annotations__)


def test_retrain_flow_registers_gates_and_reuses_shards(prefect_harness, config_path: Path) -> None:
    from crnn.data.loader import load_manifest
    from flows.retrain import retrain

    first = retrain(config_path=str(config_path), progress=False)
    _keys_as_typed(first)
    assert not first["shards"]["reused"]
    reg1 = first["registry"]
    assert (reg1["version"], reg1["promoted"], reg1["champion_version"]) == ("1", True, "1")

    client = _mlflow_client(first)
    run = client.get_run(first["mlflow"]["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["training.epochs"] == "4"
    assert run.data.tags["crnn.shard_digest"] == first["shards"]["digest"]
    assert len(client.get_metric_history(run.info.run_id, "val/loss")) == 4  # one point per epoch
    # step losses: one point per 10-step read-back and at each epoch's end, sent once per epoch
    rows = load_manifest(first["shards"]["manifest"]).splits["train"]["rows"]
    per_epoch = -(-rows // 16)
    points = [*range(10, per_epoch, 10), per_epoch]
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "train/loss_step")]
    assert sorted(steps) == [per_epoch * e + s for e in range(4) for s in points]
    assert any(k.startswith("system/cpu_utilization") for k in run.data.metrics)  # psutil sampled
    assert run.data.tags["crnn.train.device"] == "cpu"
    assert run.data.tags["crnn.train.autocast"] == "off"
    assert first["metrics"]["test_cer"] < 0.6  # learned something: blank output scores 1.0
    assert run.data.metrics["test/cer"] == pytest.approx(first["metrics"]["test_cer"])
    contexts = {
        t.value for d in run.inputs.dataset_inputs for t in d.tags if t.key == "mlflow.data.context"
    }
    assert contexts == {"train", "val", "test"}
    assert {d.dataset.digest for d in run.inputs.dataset_inputs} == {first["shards"]["digest"][:16]}
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "evaluation")}
    for name in (
        "classification_report.txt",
        "test_predictions.parquet",
        "sample_predictions.json",
    ):
        assert f"evaluation/{name}" in artifacts
    # the figures at the top, where the compare view shows two runs' side by side
    top = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"confusion_matrix.png", "learning_curves.png", "sample_predictions.png"} <= top
    assert {a.path for a in client.list_artifacts(run.info.run_id, "data")} == {
        "data/manifest.json",
        "data/quarantine.parquet",
    }
    assert run.data.tags["crnn.data.quarantined"] == "0"
    view = json.loads(
        client.get_experiment(run.info.experiment_id).tags["mlflow.sharedViewState.crnn"]
    )
    gate = client.get_model_version(reg1["model_name"], "1").tags["gate.metric"]
    monitored = ["metrics.`val/cer`", f"metrics.`{gate.replace('_', '/', 1)}`"]
    assert view["selectedColumns"][:2] == monitored  # the monitored metric, the gate's, first
    # every metric in a group of its own: a section each in the UI (counts of the data: tags)
    assert {k.split("/")[0] for k in run.data.metrics} == {"train", "val", "test", "system"}
    assert {a.path for a in client.list_artifacts(run.info.run_id, "config")} == {
        "config/pipeline.yaml"
    }
    table = client.load_table(
        run.info.experiment_id, "evaluation/sample_predictions.json", run_ids=[run.info.run_id]
    )
    assert len(table) == 4 and {"image", "truth", "prediction", "confidence"} <= set(table.columns)

    # same inputs again: shards reused, version 2 registered, the gate decides and says why
    second = retrain(config_path=str(config_path), progress=False)
    assert second["shards"]["reused"] and second["shards"]["digest"] == first["shards"]["digest"]
    reg2 = second["registry"]
    assert reg2["version"] == "2" and reg2["previous_champion"] == "1"
    better = reg2["challenger_score"] < reg2["champion_score"]  # test_cer: lower is better
    assert reg2["promoted"] is better
    tags = client.get_model_version("crnn-tiny", "2").tags
    assert tags["gate.decision"] == ("promoted" if better else "rejected")
    assert float(tags["gate.champion_score"]) == pytest.approx(reg1["challenger_score"], abs=1e-6)
    assert str(client.get_model_version_by_alias("crnn-tiny", "challenger").version) == "2"
    champion = str(client.get_model_version_by_alias("crnn-tiny", "champion").version)

    # a deliberately weaker config never takes champion
    weak = retrain(
        config_path=str(config_path),
        overrides=["training.epochs=1", "training.lr=0.00001"],
        progress=False,
    )
    reg3 = weak["registry"]
    assert reg3["version"] == "3" and not reg3["promoted"]
    assert reg3["challenger_score"] > reg3["champion_score"]
    assert str(client.get_model_version_by_alias("crnn-tiny", "champion").version) == champion
    assert client.get_model_version("crnn-tiny", "3").tags["gate.decision"] == "rejected"


def test_cli_json_run_and_champion_pyfunc_in_a_fresh_process(
    tmp_path: Path, config_path: Path
) -> None:
    env = clean_env(tmp_path)
    proc = run_cli(tmp_path, "--config", str(config_path), "run", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "database is locked" not in proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["registry"]["decision"] == "promoted to champion"
    assert summary["mlflow"]["tracking_uri"] == f"sqlite:///{tmp_path / 'ws' / 'mlflow.db'}"
    assert Path(summary["workspace"]) == tmp_path / "ws"
    assert not (tmp_path / "mlruns").exists() and not (tmp_path / "mlartifacts").exists()

    # raw test images from the source, scored by models:/crnn-tiny@champion in another process
    _, cfg = load_pipeline(config_path)
    chunk = next(open_source(cfg.data).chunks("test", 10_000))
    np.save(tmp_path / "raw.npy", chunk.inputs)
    script = (
        "import json, sys, numpy as np, mlflow\n"
        f"mlflow.set_tracking_uri({summary['mlflow']['tracking_uri']!r})\n"
        "m = mlflow.pyfunc.load_model('models:/crnn-tiny@champion')\n"
        f"print(json.dumps(list(m.predict(np.load({str(tmp_path / 'raw.npy')!r})))))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    served = json.loads(proc.stdout.strip().splitlines()[-1])
    evaluated = pd.read_parquet(
        Path(summary["workspace"])
        / "runs"
        / summary["mlflow"]["run_id"]
        / "evaluation"
        / "test_predictions.parquet"
    )
    assert list(evaluated["sample_id"]) == chunk.sample_ids
    assert served == list(evaluated["prediction"])
    assert any(p != "" for p in served)


def test_repo_default_pipeline_is_the_one_make_run_uses() -> None:
    _, cfg = load_pipeline(REPO / "pipelines.yaml")
    assert cfg.name == "digit-strings" and cfg.model.head == "ctc"


def test_user_error_inside_a_task_is_one_line_without_traceback(
    tmp_path: Path, config_path: Path, prefect_server: dict[str, str]
) -> None:
    """On a Prefect server (the test server: a temporary one is the subject of the CLI test
    above), a task's user error is one line, and the run is marked failed."""
    import torch

    if torch.backends.mps.is_available():
        pytest.skip("this machine has MPS, so device=mps is not an error here")
    args = ["--config", str(config_path), "run", "--set", "training.device=mps"]
    proc = run_cli(tmp_path, *args, env=prefect_server)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("crnn: error:")]
    assert errors == [
        "crnn: error: training.device is 'mps' but MPS is not available; use auto or cpu"
    ]
    # the MLflow run of the failed pipeline is marked failed, not left running
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'ws' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    assert [r.info.status for r in runs] == ["FAILED"]


def test_pool_teardown_cancellation_is_dropped_and_other_pool_errors_kept() -> None:
    import asyncio
    import io
    import logging

    from flows.runtime.local_prefect import PoolTeardownCancelled, quiet_pool_teardown

    quiet_pool_teardown()
    quiet_pool_teardown()  # idempotent: one handler
    pool = logging.getLogger("sqlalchemy.pool")
    (handler,) = [
        h for h in pool.handlers if any(isinstance(f, PoolTeardownCancelled) for f in h.filters)
    ]
    stream = io.StringIO()
    old = handler.setStream(stream)
    try:
        child = logging.getLogger("sqlalchemy.pool.impl.AsyncAdaptedQueuePool")
        for error in (asyncio.CancelledError(), OSError("database is locked")):
            try:
                raise error
            except BaseException:
                child.error("Exception during reset or similar", exc_info=True)
    finally:
        handler.setStream(old)
    printed = stream.getvalue()
    assert "CancelledError" not in printed
    assert printed.count("Traceback") == 1 and "database is locked" in printed


def test_interrupted_pipeline_resumes_in_the_same_mlflow_run(
    prefect_harness, config_path: Path, monkeypatch
) -> None:
    import flows.retrain as retrain_module
    from crnn.engine.train import train_on_shards
    from crnn.errors import UserError
    from flows.retrain import retrain
    from tests.engine.test_train import Interrupted, KillAt

    overrides = ["training.checkpoint_every_steps=10", "training.log_every_steps=5"]
    with pytest.raises(UserError, match="no interrupted run with a checkpoint to resume"):
        retrain(config_path=str(config_path), overrides=overrides, progress=False, resume=True)

    def killed_in_epoch_2(manifest, model_cfg, cfg, checkpoint_dir, callbacks=(), resume=False):
        return train_on_shards(
            manifest, model_cfg, cfg, checkpoint_dir, [*callbacks, KillAt(2, 25)], resume
        )

    monkeypatch.setattr(retrain_module, "train_on_shards", killed_in_epoch_2)
    with pytest.raises(Interrupted):
        retrain(config_path=str(config_path), overrides=overrides, progress=False)
    monkeypatch.undo()

    resumed = retrain(
        config_path=str(config_path), overrides=overrides, progress=False, resume=True
    )
    client = _mlflow_client(resumed)
    runs = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    assert len(runs) == 1  # the refused resume created none; the crashed run was reused
    run = client.get_run(resumed["mlflow"]["run_id"])
    assert resumed["mlflow"]["resumed"] and run.info.status == "FINISHED"
    history = client.get_metric_history(run.info.run_id, "val/loss")
    assert sorted(m.step for m in history) == [1, 2, 3, 4]  # each epoch logged once
    assert resumed["training"]["epochs_run"] == 4
    assert len(run.inputs.dataset_inputs) == 3  # logged once, by the first attempt


def test_two_training_processes_from_the_flow_log_into_its_run(
    prefect_harness, config_path: Path
) -> None:
    """training.devices=2: the train task launches torchrun (2 gloo processes); rank 0 logs into
    the flow's MLflow run, and the pipeline registers the result as usual."""
    from flows.retrain import retrain

    summary = retrain(
        config_path=str(config_path),
        overrides=["training.devices=2", "training.epochs=2"],
        progress=False,
    )
    assert summary["training"]["setup"]["world_size"] == "2"
    assert summary["training"]["setup"]["ranks_in_sync"] == "true"
    client = _mlflow_client(summary)
    run = client.get_run(summary["mlflow"]["run_id"])
    assert run.data.tags["crnn.train.world_size"] == "2"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val/loss")] == [1, 2]
    assert summary["registry"]["version"] == "1" and "test_cer" in summary["metrics"]


def test_local_flow_runs_send_no_heartbeats_and_a_configured_server_keeps_them() -> None:
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        get_current_settings,
        temporary_settings,
    )

    from flows.runtime.local_prefect import local_flow_runs

    with temporary_settings(restore_defaults={PREFECT_API_URL}):  # the temporary local server
        before = get_current_settings().flows.heartbeat_frequency
        with local_flow_runs():
            assert get_current_settings().flows.heartbeat_frequency is None
        assert get_current_settings().flows.heartbeat_frequency == before is not None
    with (
        temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:4200/api"}),
        temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: 45}),
        local_flow_runs(),
    ):
        assert get_current_settings().flows.heartbeat_frequency == 45


def test_a_failed_evaluation_waits_for_the_model_logging_beside_it(
    prefect_harness, tmp_path: Path, monkeypatch
) -> None:
    """The model is logged while evaluation runs; when evaluation fails, the run is marked
    failed only after the logging finished (else its last step would set the run RUNNING
    again), and nothing is registered."""
    import flows.retrain as retrain_module
    import flows.tasks

    def broken(*args, **kwargs):
        raise RuntimeError("injected: evaluation failed")

    monkeypatch.setattr(flows.tasks, "evaluate_checkpoint", broken)
    config = write_config(
        tmp_path / "pipelines.yaml", tiny_pipelines(tmp_path / "ws", registry=dict(GATE))
    )
    with pytest.raises(RuntimeError, match="injected"):
        retrain_module.retrain(config_path=str(config), progress=False)
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'ws' / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    assert run.info.status == "FAILED"
    (logged,) = client.search_logged_models([run.info.experiment_id])
    assert logged.source_run_id == run.info.run_id
    assert logged.last_updated_timestamp <= run.info.end_time
    assert client.search_registered_models() == []
