"""Drift monitoring without MLflow: a model's reference profile (held-out rows of its shard set),
scoring jobs compared with it. The model's own test rows show no drift; the same lines with low
contrast, blurred or noisy show it, naming what moved; 20 random in-distribution subsets give at
most one false alarm; a model without a profile says "no reference"."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
from scipy.ndimage import gaussian_filter

from crnn.cli.main import score_report
from crnn.config import MonitoringConfig
from crnn.errors import UserError
from crnn.inference.monitor import DRIFT_FILE, PROFILE_DIR, reference_profile, row_features
from crnn.inference.scoring import score, shard_chunks
from crnn.monitoring import PROFILE_VERSION, Profile, compare, load_profile
from crnn.types.records import ModelVersionRef

REF = ModelVersionRef("tiny", "1", "run")


@pytest.fixture(scope="module")
def reference(model_and_shards) -> Profile:
    predictor, manifest_path, _ = model_and_shards
    return reference_profile(predictor, manifest_path, MonitoringConfig())


def split_chunks(manifest_path, split, shift=None):
    for chunk_id, chunk in shard_chunks(manifest_path):
        if chunk.split == split:
            inputs = chunk.inputs if shift is None else shift(chunk.inputs).astype(np.float32)
            yield chunk_id, dataclasses.replace(chunk, inputs=inputs)


def low_contrast(x: np.ndarray) -> np.ndarray:
    mean = x.mean(axis=(-2, -1), keepdims=True)
    return mean + (x - mean) * 0.4


def blurred(x: np.ndarray) -> np.ndarray:
    return gaussian_filter(x, sigma=1.5, axes=(-2, -1))


def noisy(x: np.ndarray) -> np.ndarray:
    return x + np.random.default_rng(0).normal(0, 0.3, x.shape)


def test_own_test_rows_show_no_drift_and_shifted_ones_name_what_moved(
    model_and_shards, reference, tmp_path
) -> None:
    predictor, manifest_path, _ = model_and_shards
    chunks = split_chunks(manifest_path, "test")
    own = score(predictor, REF, chunks, tmp_path / "own", "t", reference=reference)
    assert own.drift["reference"] and not own.drift["detected"], own.drift
    assert own.drift["rows"] == 48 and len(own.drift["tests"]) == 8  # 5 in, 2 out, embedding
    assert json.loads((tmp_path / "own" / DRIFT_FILE).read_text()) == own.drift
    assert len(pd.read_parquet(tmp_path / "own")) == 48  # _profile/ is not read as scores
    assert list((tmp_path / "own" / PROFILE_DIR).glob("part-*.parquet"))
    moved = {}
    for name, shift in [("low_contrast", low_contrast), ("blur", blurred), ("noise", noisy)]:
        chunks = split_chunks(manifest_path, "test", shift)
        summary = score(predictor, REF, chunks, tmp_path / name, "t", reference=reference)
        assert summary.drift["detected"], name
        print(name, [(t["feature"], round(t["statistic"], 3)) for t in summary.drift["moved"]])
        moved[name] = {t["feature"] for t in summary.drift["moved"]}
        assert f"drift: DETECTED in {len(moved[name])} of 8 tests" in score_report(
            {**summary.to_dict(), "mlflow_run_id": "r"}
        )
    assert {"input_std", "input_edge"} <= moved["low_contrast"]
    assert "input_edge" in moved["blur"] and "input_edge" in moved["noise"]


def test_at_most_one_false_alarm_in_20_random_in_distribution_subsets(
    model_and_shards, reference
) -> None:
    """Rows the reference did not hold (train and test lines), 20 random subsets of 96."""
    predictor, manifest_path, _ = model_and_shards
    inputs = np.concatenate(
        [c.inputs for split in ("train", "test") for _, c in split_chunks(manifest_path, split)]
    )
    prepared = predictor.prepare(inputs, predictor.normalizer.stats_)
    preds = predictor.predict_normalized(prepared, embed=True)
    columns = row_features(predictor, prepared, preds, reference)
    rng = np.random.default_rng(0)
    alarms = 0
    for seed in range(20):
        rows = rng.choice(len(inputs), 96, replace=False)
        drift = compare(reference, {k: v[rows] for k, v in columns.items()}, seed)
        alarms += drift.detected
    print(f"false alarms: {alarms} of 20")
    assert alarms <= 1


def test_the_profile_is_versioned_json_and_a_missing_one_says_no_reference(
    model_and_shards, reference, tmp_path
) -> None:
    path = reference.save(tmp_path / "reference_profile.json")
    assert load_profile(path) == reference
    newer = {**json.loads(path.read_text()), "format_version": PROFILE_VERSION + 1}
    path.write_text(json.dumps(newer))
    with pytest.raises(UserError, match="newer than this crnn-pipelines reads"):
        load_profile(path)
    predictor, manifest_path, _ = model_and_shards
    summary = score(predictor, REF, split_chunks(manifest_path, "test"), tmp_path / "o", "t")
    assert summary.drift["reference"] is False and not summary.drift["detected"]
    report = score_report({**summary.to_dict(), "mlflow_run_id": "r"})
    assert [line for line in report.splitlines() if line.startswith("drift:")] == [
        "drift: no reference (this model version has no reference profile: registered before "
        "drift monitoring, or trained with monitoring.enabled false)"
    ]
