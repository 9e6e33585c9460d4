"""A new workspace's SQLite store is a copy of the first empty store this MLflow version made:
the same as a migrated one (its Default experiment as MLflow sets it, nothing of the store it
was first made for), and a broken template falls back to MLflow's own creation."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from crnn.config import TrackingConfig


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CRNN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    return tmp_path / "cache"


def test_a_new_store_is_a_copy_of_the_first_empty_one(tmp_path: Path, cache: Path) -> None:
    from crnn.tracking import open_tracking
    from crnn.tracking.sqlite_store import template_path

    first = open_tracking(TrackingConfig(experiment="first"), tmp_path / "ws1")
    first.client().create_run(first.experiment_id)
    assert template_path().is_file() and template_path().parent == cache
    made = template_path().stat().st_mtime_ns
    started = time.time() * 1000
    second = open_tracking(TrackingConfig(experiment="second"), tmp_path / "ws2")
    client = second.client()
    assert client.get_experiment_by_name("first") is None  # nothing of the first store
    default = client.get_experiment("0")
    assert default.artifact_location == str(tmp_path.resolve() / "mlruns" / "0")
    assert default.creation_time >= started - 1000  # made now, as MLflow would have
    run = client.create_run(second.experiment_id)
    client.log_metric(run.info.run_id, "val/loss", 0.5)
    assert client.get_run(run.info.run_id).data.metrics == {"val/loss": 0.5}
    assert template_path().stat().st_mtime_ns == made  # kept once


def test_a_broken_template_falls_back_to_mlflows_own_creation(tmp_path: Path, cache: Path) -> None:
    from crnn.tracking import open_tracking
    from crnn.tracking.sqlite_store import template_path

    template_path().parent.mkdir(parents=True)
    template_path().write_bytes(b"not a database")
    ctx = open_tracking(TrackingConfig(experiment="exp"), tmp_path / "ws")
    run = ctx.client().create_run(ctx.experiment_id)
    assert ctx.client().get_run(run.info.run_id).info.status == "RUNNING"
    assert not list((tmp_path / "ws").glob("*.seeding"))
