"""Every shipped pipeline of pipelines.yaml through the real `retrain` flow, on tiny data.

The repo's own configs are used, shrunk with the same KEY=VALUE overrides as `crnn run --set`,
and pointed at tiny files written in each real format. Checks what only the whole flow
exercises: shards, training, evaluation, and the pyfunc logged with a raw input example of the
right shape, registered, reloaded from the registry, and predicting like the library.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crnn.config import load_config
from tests.conftest import REPO
from tests.data.test_audio import spoken_folder
from tests.data.test_readers import mnist_folder, write_cifar
from tests.data.test_speech import spoken_words
from tests.lines import render_lines

pytestmark = pytest.mark.integration

# one epoch on tiny data is below any first-champion floor by design (the floor is tested in
# tests/tracking/test_registry.py): switched off, so every pipeline registers its first champion
ONE_EPOCH = ["training.epochs=1", "training.batch_size=16", "registry.first_champion_margin=null"]


def _sentiment_table(path: Path) -> Path:
    rng = np.random.default_rng(0)
    good, bad = ["good", "great", "fine", "lovely"], ["bad", "awful", "poor", "dull"]
    filler = ["the", "film", "was", "plot", "acting", "really", "quite"]
    rows = []
    for i in range(90):
        label = "pos" if i % 2 else "neg"
        words = [*rng.choice(filler, 4), rng.choice(good if label == "pos" else bad)]
        rng.shuffle(words)
        rows.append({"text": " ".join(words), "label": label})
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def tiny_overrides(name: str, tmp_path: Path) -> list[str]:
    """Per shipped pipeline: tiny data in its real format, one short epoch."""
    if name == "digits":
        return ["training.epochs=1", "registry.first_champion_margin=null"]
    if name == "moving-digits":
        return ["data.clips={train: 40, val: 14, test: 14}", *ONE_EPOCH]
    if name == "spoken-digits":
        return [f"data.path={spoken_folder(tmp_path / 'audio', 2)}", *ONE_EPOCH]
    if name == "spoken-digit-strings":
        words = spoken_words(tmp_path / "words", per_speaker=2)
        lines = "data.lines={train: 48, val: 16, test: 16}"
        return [f"data.path={words}", lines, "data.duration_seconds=1.5", *ONE_EPOCH]
    if name == "text-lines":
        render_lines(tmp_path / "lines", 60, seed=0)
        loose = "preprocessing.max_quarantine_fraction=0.5"  # 48 training lines miss characters
        return [f"data.path={tmp_path / 'lines'}", loose, *ONE_EPOCH]
    if name == "sentiment":
        return [f"data.path={_sentiment_table(tmp_path / 'reviews.csv')}", *ONE_EPOCH]
    if name == "mnist":
        return [f"data.path={mnist_folder(tmp_path, 60, 20, size=(28, 28))}", *ONE_EPOCH]
    if name == "cifar10":
        write_cifar(tmp_path / "cifar", batches=2, per_batch=30)
        return [f"data.path={tmp_path / 'cifar'}", *ONE_EPOCH]
    raise AssertionError(f"pipeline {name!r} has no tiny variant here: add one")


OWN_TESTS = {"digit-strings", "digit-value"}  # tests/flows/test_retrain.py, test_regression.py
SHIPPED = [n for n in load_config(REPO / "pipelines.yaml").pipelines if n not in OWN_TESTS]
SEQUENCE = {"spoken-digit-strings", "text-lines"}
BASELINES = {"sentiment": "tfidf", "spoken-digits": "mfcc"}  # the others: svc


def test_every_shipped_pipeline_is_covered() -> None:
    assert set(SHIPPED) == {
        "digits",
        "moving-digits",
        "spoken-digits",
        "spoken-digit-strings",
        "text-lines",
        "sentiment",
        "mnist",
        "cifar10",
    }


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_pipeline_through_the_retrain_flow(
    prefect_harness, tmp_path: Path, monkeypatch, name: str
) -> None:
    import mlflow

    from crnn.data.loader import load_split
    from crnn.data.raw import raw_example
    from crnn.inference.predictor import Predictor
    from flows.retrain import retrain

    monkeypatch.setenv("CRNN_WORKSPACE", str(tmp_path / "ws"))
    summary = retrain(
        pipeline=name,
        config_path=str(REPO / "pipelines.yaml"),
        overrides=tiny_overrides(name, tmp_path),
        progress=False,
    )
    assert summary["workspace"] == str(tmp_path / "ws")
    assert summary["registry"]["version"] == "1" and summary["registry"]["promoted"]
    metric = "test_cer" if name in SEQUENCE else "test_accuracy"
    assert 0.0 <= summary["metrics"][metric] <= 1.0
    if name == "digits":  # the SVC baseline is scored on the same split, in the same run
        assert summary["metrics"]["baseline_svc_test_accuracy"] > 0.9
    if name not in SEQUENCE:  # every classification run: its classical baseline beside it
        baseline = BASELINES.get(name, "svc")
        assert summary["baseline"]["name"] == baseline
        assert summary["baseline"]["model"] == summary["metrics"]["test_accuracy"]
        assert 0.0 <= summary["metrics"][f"baseline_{baseline}_test_accuracy"] <= 1.0
    uri = summary["mlflow"]["tracking_uri"]
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    model = mlflow.pyfunc.load_model(f"models:/crnn-{name}@champion")
    manifest = Path(summary["shards"]["manifest"])
    test = load_split(manifest, "test")
    predictor = Predictor.from_checkpoint(summary["training"]["checkpoint"], device="cpu")
    raw = raw_example(manifest, 5)  # what a user has: arrays, strings or waveforms
    served = list(model.predict(raw))
    assert served == predictor.predict_input(raw).outputs
    if name != "sentiment":  # texts decoded from tokens drop out-of-vocabulary words
        assert served == predictor.predict_normalized(test.inputs[:5]).outputs
    if name in SEQUENCE:  # transcripts over the charset
        assert set("".join(served)) <= set(predictor.target.charset)
    else:
        assert set(served) <= set(predictor.target.classes)
