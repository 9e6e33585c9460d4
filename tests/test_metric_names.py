"""One mapping between the product's metric names and MLflow's grouped keys."""

from __future__ import annotations

import pytest

from crnn.config import load_pipeline
from crnn.metric_names import mlflow_keys, product_name, tracked

CASES = [
    ("val_cer", "val/cer"),
    ("val_loss", "val/loss"),
    ("train_loss_step", "train/loss_step"),
    ("train_seconds", "train/seconds"),
    ("best_epoch", "train/best_epoch"),
    ("lr", "train/lr"),
    ("test_sequence_accuracy", "test/sequence_accuracy"),
    ("trivial_test_rmse", "test/trivial_rmse"),
    ("data_train_rows", "data/train_rows"),
    ("data_quarantined_label_out_of_range", "data/quarantined_label_out_of_range"),
    ("scoring_rows_in", "scoring/rows_in"),
    ("drift_input_std", "drift/input_std"),
]


@pytest.mark.parametrize(("name", "key"), CASES)
def test_names_map_to_groups_and_back(name: str, key: str) -> None:
    assert tracked(name) == key
    assert product_name(key) == name
    assert tracked(key) == key and product_name(name) == name  # either spelling is stable


def test_a_name_of_no_group_is_kept_and_old_runs_are_found() -> None:
    assert tracked("rows") == "rows" and product_name("system/cpu_utilization_percentage") == (
        "system/cpu_utilization_percentage"
    )
    assert mlflow_keys("test_accuracy") == ("test/accuracy", "test_accuracy")
    assert mlflow_keys("test/accuracy") == ("test/accuracy", "test_accuracy")


def test_the_pipelines_file_takes_the_ui_spelling(tmp_path) -> None:
    from tests.conftest import tiny_pipelines, write_config

    path = write_config(tmp_path / "pipelines.yaml", tiny_pipelines(tmp_path / "ws"))
    _, cfg = load_pipeline(
        path,
        "tiny",
        overrides=["training.early_stopping.monitor=val/cer", "registry.metric=test/cer"],
    )
    assert cfg.training.early_stopping.monitor == "val_cer"
    assert (cfg.registry.metric, cfg.registry.direction) == ("test_cer", "minimize")
