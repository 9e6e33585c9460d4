"""MLflow edge: a real SQLite store in a temporary workspace."""

from pathlib import Path
from typing import Any

import pytest

from crnn.config import TrackingConfig
from crnn.tracking import open_tracking
from crnn.tracking.runs import model_requirements


def test_each_workspace_gets_its_own_store_in_one_process(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("crnn.tracking.uri.USER_TRACKING_URI", None)
    monkeypatch.setattr("crnn.tracking.uri.USER_REGISTRY_URI", None)
    a = open_tracking(TrackingConfig(experiment="exp"), tmp_path / "a")
    b = open_tracking(TrackingConfig(experiment="exp"), tmp_path / "b")
    assert a.tracking_uri == f"sqlite:///{tmp_path / 'a' / 'mlflow.db'}"
    assert b.tracking_uri == f"sqlite:///{tmp_path / 'b' / 'mlflow.db'}"
    assert b.registry_uri == b.tracking_uri  # the registry follows its own store, not a's
    location = b.client().get_experiment(b.experiment_id).artifact_location
    assert location == (tmp_path / "b" / "mlartifacts" / "exp").as_uri()
    # opening again finds the experiment instead of creating another
    assert (
        open_tracking(TrackingConfig(experiment="exp"), tmp_path / "b").experiment_id
        == b.experiment_id
    )


def test_user_tracking_uri_wins_over_config(tmp_path: Path, monkeypatch) -> None:
    uri = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    monkeypatch.setattr("crnn.tracking.uri.USER_TRACKING_URI", uri)
    ctx = open_tracking(
        TrackingConfig(experiment="e", tracking_uri="sqlite:///ignored.db"), tmp_path
    )
    assert ctx.tracking_uri == uri


@pytest.mark.parametrize("dist", ["mlflow", "torch", "numpy"])
def test_model_requirements_are_pinned_without_local_labels(dist: str) -> None:
    req = next(r for r in model_requirements() if r.startswith(dist + "=="))
    assert "+" not in req


def test_quarantine_counts_and_file_reach_the_run(tmp_path: Path, monkeypatch) -> None:
    import numpy as np

    from crnn.config import MnistIdxData, PreprocessingConfig
    from crnn.data.loader import load_manifest
    from crnn.data.preprocess import preprocess
    from crnn.tracking import log_dataset_inputs
    from tests.data.test_readers import mnist_folder, write_idx

    monkeypatch.setattr("crnn.tracking.uri.USER_TRACKING_URI", None)
    monkeypatch.setattr("crnn.tracking.uri.USER_REGISTRY_URI", None)
    folder = mnist_folder(tmp_path)
    labels = np.arange(60) % 10
    labels[:3] = 42
    write_idx(folder / "train-labels-idx1-ubyte.gz", labels)
    prep = PreprocessingConfig(augmentation={"copies": 0}, max_quarantine_fraction=1.0)
    shards = preprocess(MnistIdxData(path=str(folder)), prep, tmp_path / "shards")
    ctx = open_tracking(TrackingConfig(experiment="q"), tmp_path / "ws")
    client = ctx.client()
    run_id = client.create_run(ctx.experiment_id).info.run_id
    log_dataset_inputs(ctx, run_id, shards.manifest_path, load_manifest(shards.manifest_path))
    run = client.get_run(run_id).data
    assert run.tags["crnn.data.quarantined"] == "3"
    assert run.tags["crnn.data.quarantined_label_out_of_range"] == "3"
    assert int(run.tags["crnn.data.train_rows"]) > 0
    # counts of the data are no metrics: a run's first metric is what MLflow's compare page
    # plots first (the store gives a run's metrics in the order first logged)
    assert run.metrics == {}
    assert "data/quarantine.parquet" in {a.path for a in client.list_artifacts(run_id, "data")}


def test_the_store_gives_a_runs_metrics_in_the_order_first_logged(tmp_path: Path) -> None:
    """What MLflow's compare page plots first is the first metric of the first run compared, in
    the store's order (its parallel coordinates: ``sharedMetricKeys.slice(0, 1)``): so the
    training engine hands the monitored metric first, and counts of the data are tags."""
    from mlflow.entities import Metric

    ctx = open_tracking(TrackingConfig(experiment="order"), tmp_path / "ws")
    client = ctx.client()
    run_id = client.create_run(ctx.experiment_id).info.run_id
    first = [Metric(k, 1.0, 0, 1) for k in ("val/cer", "train/loss", "data/rows")]
    client.log_batch(run_id, metrics=first)
    client.log_batch(run_id, metrics=[Metric("baseline/svc", 1.0, 0, 0), first[1]])
    assert list(client.get_run(run_id).data.metrics) == [
        "val/cer",
        "train/loss",
        "data/rows",
        "baseline/svc",
    ]


def test_runs_starting_at_once_link_the_same_new_datasets(tmp_path: Path, monkeypatch) -> None:
    """A sweep's parallel trials log the same shard set's datasets as they start: both create
    them, and one insert broke the store's unique constraint (the trial failed). Eight threads,
    each its own client, log the same new datasets at once, in rounds: every run gets them."""
    import threading

    from mlflow import MlflowClient
    from mlflow.entities import Dataset, DatasetInput, InputTag

    from crnn.tracking.datasets import log_inputs

    monkeypatch.setattr("crnn.tracking.uri.USER_TRACKING_URI", None)
    monkeypatch.setattr("crnn.tracking.uri.USER_REGISTRY_URI", None)
    ctx = open_tracking(TrackingConfig(experiment="at-once"), tmp_path / "ws")
    threads, failed = 8, []

    def start(barrier: Any, client: Any, run_id: str, inputs: list[Any]) -> None:
        barrier.wait()
        try:
            log_inputs(client, run_id, inputs)
        except Exception as exc:  # collected: a thread's exception would be lost
            failed.append(f"{type(exc).__name__}: {str(exc)[:120]}")

    for round_ in range(4):
        clients = [MlflowClient(ctx.tracking_uri) for _ in range(threads)]
        runs = [c.create_run(ctx.experiment_id).info.run_id for c in clients]
        data = Dataset(f"lines-{round_}", f"digest{round_}", "local", '{"uri": "m.json"}')
        inputs = [DatasetInput(data, tags=[InputTag("mlflow.data.context", "train")])]
        barrier = threading.Barrier(threads)
        workers = [
            threading.Thread(target=start, args=(barrier, c, r, inputs))
            for c, r in zip(clients, runs, strict=True)
        ]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        for run_id in runs:
            linked = clients[0].get_run(run_id).inputs.dataset_inputs
            assert [d.dataset.name for d in linked] == [f"lines-{round_}"], (run_id, failed)
    assert failed == []
