"""Each application through the real `retrain` flow on tiny data: video, audio, text.

Checks what only the whole flow exercises: the shard set, training, evaluation, and the pyfunc
logged with a raw input example of the right shape, registered, and reloaded from the registry.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import write_config
from tests.data.test_audio import spoken_folder

pytestmark = pytest.mark.integration


def _pipelines(tmp_path: Path, name: str, pipeline: dict) -> Path:
    mapping = {
        "version": 1,
        "workspace": str(tmp_path / "ws"),
        "default_pipeline": name,
        "pipelines": {name: pipeline},
    }
    return write_config(tmp_path / "pipelines.yaml", mapping)


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


TRAIN = {"epochs": 5, "batch_size": 8, "lr": 0.01, "schedule": "constant", "device": "cpu"}


def _cases(tmp_path: Path) -> dict[str, dict]:
    return {
        "moving": {
            "data": {
                "source": "moving_digits",
                "clips": {"train": 60, "val": 20, "test": 20},
                "frames": 4,
                "frame_size": 16,
                "motions": ["left", "right"],
            },
            "preprocessing": {"augmentation": {"copies": 0}},
            "model": {
                "architecture": "video_crnn",
                "head": "classification",
                "conv_channels": [8, 16, 16],
                "rnn_hidden": 16,
            },
            "training": TRAIN,
        },
        "spoken": {
            "data": {
                "source": "audio_folder",
                "path": str(spoken_folder(tmp_path / "audio", 2)),
                "n_mels": 24,
            },
            "preprocessing": {"normalization": "standardize", "augmentation": {"copies": 0}},
            "model": {
                "architecture": "audio_crnn",
                "head": "classification",
                "conv_channels": [8, 16, 16],
                "rnn_hidden": 16,
            },
            "training": TRAIN,
        },
        "sentiment": {
            "data": {
                "source": "text_table",
                "path": str(_sentiment_table(tmp_path / "t.csv")),
                "max_length": 8,
            },
            "preprocessing": {"normalization": "none", "augmentation": {"copies": 0}},
            "model": {
                "architecture": "text_crnn",
                "head": "classification",
                "rnn_hidden": 16,
                "conv_channels": [16, 16],
                "pool": [[1, 1], [1, 1]],
            },
            "training": TRAIN,
        },
    }


@pytest.mark.parametrize("name", ["moving", "spoken", "sentiment"])
def test_application_through_the_retrain_flow(prefect_harness, tmp_path: Path, name: str) -> None:
    import mlflow

    from crnn.data.loader import load_split
    from crnn.inference import squeeze_channel
    from flows.retrain import retrain

    config = _pipelines(tmp_path, name, _cases(tmp_path)[name])
    summary = retrain(config_path=str(config), progress=False)
    assert summary["registry"]["version"] == "1" and summary["registry"]["promoted"]
    assert 0.0 <= summary["metrics"]["test_accuracy"] <= 1.0
    # the registered pyfunc takes raw inputs shaped like the source's (single channel squeezed)
    uri = summary["mlflow"]["tracking_uri"]
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    model = mlflow.pyfunc.load_model(f"models:/crnn-{name}@champion")
    test = load_split(Path(summary["shards"]["manifest"]), "test")
    raw = test.inputs[:5].numpy()
    from crnn.inference import Predictor

    predictor = Predictor.from_checkpoint(summary["training"]["checkpoint"], device="cpu")
    raw = squeeze_channel(predictor.normalizer.inverse_transform(raw), predictor.input_shape)
    served = list(model.predict(raw))
    assert served == predictor.predict_normalized(test.inputs[:5]).outputs
    assert set(served) <= set(predictor.target.classes)
