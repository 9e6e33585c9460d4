"""`crnn doctor`'s store check leaves nothing a user sees: no experiment in the UI's list, no
probe files in the workspace, run after run."""

from __future__ import annotations

from pathlib import Path

from crnn.config import TrackingConfig


def test_the_artifact_check_leaves_no_experiment_in_the_ui(tmp_path: Path) -> None:
    from crnn.tracking import open_tracking
    from crnn.tracking.health import DOCTOR_EXPERIMENT, check_tracking

    tracking = TrackingConfig(experiment="tiny")
    client = open_tracking(tracking, tmp_path).client()  # the workspace's SQLite store
    for _ in range(2):  # the second check restores the experiment the first one deleted
        checks = {c.name: c for c in check_tracking(tracking, tmp_path)}
        assert checks["artifacts"].status == "ok", checks
        shown = [e.name for e in client.search_experiments()]  # active ones: the UI's list
        assert DOCTOR_EXPERIMENT not in shown and "tiny" in shown, shown
        assert not list(tmp_path.rglob("probe.txt"))
    assert client.get_experiment_by_name(DOCTOR_EXPERIMENT).lifecycle_stage == "deleted"
