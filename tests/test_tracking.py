"""MLflow edge: a real SQLite store in a temporary workspace."""

from pathlib import Path

import pytest

from crnn.config import TrackingConfig
from crnn.tracking import open_tracking
from crnn.tracking.runs import model_requirements


def test_each_workspace_gets_its_own_store_in_one_process(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("crnn.tracking.runs.USER_TRACKING_URI", None)
    monkeypatch.setattr("crnn.tracking.runs.USER_REGISTRY_URI", None)
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
    monkeypatch.setattr("crnn.tracking.runs.USER_TRACKING_URI", uri)
    ctx = open_tracking(
        TrackingConfig(experiment="e", tracking_uri="sqlite:///ignored.db"), tmp_path
    )
    assert ctx.tracking_uri == uri


@pytest.mark.parametrize("dist", ["mlflow", "torch", "numpy"])
def test_model_requirements_are_pinned_without_local_labels(dist: str) -> None:
    req = next(r for r in model_requirements() if r.startswith(dist + "=="))
    assert "+" not in req
