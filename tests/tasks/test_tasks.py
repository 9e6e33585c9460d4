"""Task kinds as one object each: the facts the config reads, and the behaviour (regression in
particular: standardized targets, MSE / Huber, metrics from scikit-learn, the trivial predictor)."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from crnn.config import PipelineConfig
from crnn.metrics import metric_direction
from crnn.tasks import KINDS, TargetSpec, kind_for_head, task_for
from crnn.types.batches import Batch
from crnn.types.records import Chunk
from tests.conftest import REPO


def _chunk(values: list[float]) -> Chunk:
    n = len(values)
    return Chunk("train", [f"s{i}" for i in range(n)], np.zeros((n, 2)), values=np.array(values))


def test_regression_target_statistics_loss_and_decoding() -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(50.0, 7.0, size=1000)
    task = task_for(TargetSpec(kind="value"))
    for part in np.array_split(y, 7):  # streamed, chunk by chunk, like preprocessing
        task.observe(_chunk(list(part)))
    spec = task.fitted()
    assert spec.mean == pytest.approx(y.mean()) and spec.std == pytest.approx(y.std())
    fitted = task_for(spec)
    z = torch.tensor((y[:8] - y.mean()) / y.std(), dtype=torch.float32)
    batch = Batch(inputs=torch.zeros(8, 2), index=torch.arange(8), values=torch.tensor(y[:8]))
    assert float(fitted.loss(z, batch)[0]) == pytest.approx(0.0, abs=1e-10)  # exact: no loss
    assert float(fitted.loss(z + 1, batch)[0]) == pytest.approx(1.0, rel=1e-5)  # MSE in std units
    huber = task_for(spec, "huber")
    assert float(huber.loss(z + 3, batch)[0]) == pytest.approx(2.5, rel=1e-5)  # linear past 1
    decoded, confidence = fitted.decode(z)
    np.testing.assert_allclose(decoded, y[:8], rtol=1e-5)  # back in the target's units
    assert np.isnan(confidence).all()  # a number has no probability


def test_regression_metrics_are_scikit_learns_and_the_trivial_predictor() -> None:
    task = task_for(TargetSpec(kind="value", mean=2.0, std=1.0))
    truths, preds = [1.0, 2.0, 4.0, 7.0], [1.5, 2.0, 3.0, 8.0]
    m = task.metrics(truths, preds)
    assert m["mae"] == pytest.approx(mean_absolute_error(truths, preds))
    assert m["rmse"] == pytest.approx(np.sqrt(mean_squared_error(truths, preds)))
    assert m["r2"] == pytest.approx(r2_score(truths, preds))
    assert task.trivial([1.0, 3.0]) == 2.0  # the training mean
    assert task.metrics(truths, [np.mean(truths)] * 4)["r2"] == pytest.approx(0.0)
    np.testing.assert_allclose(task.errors(truths, preds), [0.5, 0, 1, 1])


def test_non_finite_numeric_targets_are_quarantined() -> None:
    from crnn.data.quarantine import validate_chunk

    kept, bad = validate_chunk(
        _chunk([1.0, float("nan"), 3.0, float("inf")]), task_for(TargetSpec(kind="value"))
    )
    assert kept.sample_ids == ["s0", "s2"] and list(kept.values) == [1.0, 3.0]
    assert [b.reason for b in bad] == ["non_finite_target", "non_finite_target"]


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_kind_round_trips_its_shard_columns(kind: str) -> None:
    spec = {
        "sequence": TargetSpec(kind="sequence", charset="0123"),
        "classification": TargetSpec(kind="class", classes=("a", "b", "c")),
        "regression": TargetSpec(kind="value"),
    }[kind]
    task = task_for(spec)
    chunk = Chunk(
        "test",
        ["x", "y"],
        np.zeros((2, 3)),
        texts=["12", "3"],
        labels=np.array([2, 0]),
        values=np.array([0.25, -4.0]),
    )
    table = pa.Table.from_arrays(task.columns(chunk), schema=pa.schema(task.fields()))
    tensors = task.split_fields(table)
    data = type("Split", (), tensors)()
    assert (
        task.truths(data)
        == {"sequence": ["12", "3"], "classification": ["c", "a"], "regression": [0.25, -4.0]}[kind]
    )
    assert spec.num_outputs == {"sequence": 5, "classification": 3, "regression": 1}[kind]


def test_config_defaults_follow_the_kind() -> None:
    def cfg(head: str, **data: object) -> PipelineConfig:
        raw = {"name": "p", "data": {"source": "digits", **data}, "model": {"head": head}}
        return PipelineConfig.model_validate(raw)

    reg = cfg("regression")
    assert reg.data.target == "value"  # the head tells the source to read numbers
    assert reg.training.early_stopping.monitor == "val_rmse"
    assert reg.training.early_stopping.mode == "min" and reg.training.loss == "mse"
    assert (reg.registry.metric, reg.registry.direction) == ("test_rmse", "minimize")
    clf = cfg("classification")
    assert clf.data.target == "class" and clf.registry.direction == "maximize"
    with pytest.raises(ValueError, match="use head: classification or regression"):
        cfg("ctc")
    with pytest.raises(ValueError, match=r"drop data\.target"):
        cfg("classification", target="value")
    with pytest.raises(ValueError, match=r"training\.loss 'huber' does not fit"):
        PipelineConfig.model_validate(
            {
                "name": "p",
                "data": {"source": "digits"},
                "model": {"head": "classification"},
                "training": {"loss": "huber"},
            }
        )
    assert metric_direction("test_r2") == "maximize" and metric_direction("test_mae") == "minimize"
    assert kind_for_head("regression").prediction == ("prediction", "double")


def test_no_branch_on_kind_names_outside_the_task_modules() -> None:
    """What differs between kinds is looked up on the task, not compared by name: no string
    comparison against a head or target-kind name anywhere in the engine (crnn/tasks, the config
    and the readers of numeric targets excepted)."""
    names = {"ctc", "classification", "regression", "sequence", "class", "value"}
    allowed = {
        "crnn/tasks",
        "crnn/config",
        "crnn/data/text.py",
        "crnn/data/text_records.py",
        "crnn/data/audio.py",
        "crnn/data/embedded.py",
        "crnn/data/tokenizer.py",
    }
    found = []
    for path in sorted((REPO / "crnn").rglob("*.py")) + sorted((REPO / "flows").rglob("*.py")):
        rel = path.relative_to(REPO).as_posix()
        if any(rel.startswith(a) for a in allowed):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Compare):
                for side in [node.left, *node.comparators]:
                    if isinstance(side, ast.Constant) and side.value in names:
                        found.append(f"{rel}:{node.lineno} compares with {side.value!r}")
    assert not found, "\n".join(found)


def test_the_catalog_names_every_reader_module() -> None:
    """Sources register explicitly: the catalog imports each reader module by name (no loop of
    importlib calls), and every module that registers a source is in it."""
    from crnn.data import catalog

    registering = {
        p.stem
        for p in (REPO / "crnn" / "data").glob("*.py")
        if "@SOURCES.register" in p.read_text(encoding="utf-8")
    }
    assert registering == {m.__name__.rsplit(".", 1)[1] for m in catalog.READERS}
    assert "importlib" not in Path(catalog.__file__).read_text(encoding="utf-8")
