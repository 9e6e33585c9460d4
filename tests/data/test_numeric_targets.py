"""Numeric targets as users have them: a number column in a text table, a numeric label in an
audio ``labels_csv``; a value that is not a number is quarantined with its reason, never dropped;
the shards hold the numbers and the manifest the training split's mean and std."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from crnn.config import AudioFolderData, PreprocessingConfig, TextTableData
from crnn.data.catalog import open_source
from crnn.data.loader import load_manifest, load_split
from crnn.data.preprocess import preprocess
from crnn.data.sources import SPLITS
from tests.data.test_audio import write_tone

LENIENT = {"augmentation": {"copies": 0}, "max_quarantine_fraction": 0.2}


def _ratings(path: Path, n: int = 90) -> Path:
    rng = np.random.default_rng(0)
    words = {1.0: "awful", 2.0: "poor", 3.0: "fine", 4.0: "good", 5.0: "superb"}
    rows = []
    for _ in range(n):
        score = float(rng.integers(1, 6))
        rows.append({"review": f"the film was {words[score]} really", "stars": score + 0.5})
    rows[7]["stars"] = "n/a"  # not a number: quarantined
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_a_text_table_number_column_is_a_regression_target(tmp_path: Path) -> None:
    cfg = TextTableData(
        path=str(_ratings(tmp_path / "reviews.csv")),
        text_column="review",
        label_column="stars",
        target="value",
    )
    source = open_source(cfg)
    assert source.info().target.kind == "value"
    shards = preprocess(
        cfg, PreprocessingConfig(normalization="none", **LENIENT), tmp_path / "shards"
    )
    manifest = load_manifest(shards.manifest_path)
    assert manifest.quarantine.by_reason == {"non_numeric_label": 1}
    rejected = pq.read_table(shards.root / "quarantine.parquet").to_pylist()
    assert rejected[0]["reason"] == "non_numeric_label" and "'n/a'" in rejected[0]["detail"]
    assert sum(manifest.splits[s]["original"] for s in SPLITS) == 89  # 90 - 1, none lost
    train = load_split(shards.manifest_path, "train")
    assert set(train.values.tolist()) <= {1.5, 2.5, 3.5, 4.5, 5.5}
    assert manifest.target.mean == pytest.approx(float(train.values.mean()))
    assert manifest.target.std == pytest.approx(float(train.values.std(correction=0)))


def test_an_audio_labels_csv_with_numeric_labels(tmp_path: Path) -> None:
    """E.g. a recording's pitch or a speaker's age in labels.csv: read as numbers."""
    rng = np.random.default_rng(0)
    root = tmp_path / "wavs"
    root.mkdir()
    rows = []
    for k in range(30):
        freq = float(rng.uniform(200, 2000))
        write_tone(root / f"tone{k:02d}.wav", freq, 8000, "int16", rng)
        rows.append({"path": f"tone{k:02d}.wav", "label": f"{freq:.1f}"})
    rows[3]["label"] = "loud"  # not a number
    pd.DataFrame(rows).to_csv(root / "labels.csv", index=False)
    cfg = AudioFolderData(path=str(root), labels_csv="labels.csv", group=None, target="value")
    shards = preprocess(cfg, PreprocessingConfig(**LENIENT), tmp_path / "shards")
    manifest = load_manifest(shards.manifest_path)
    assert manifest.target.kind == "value" and manifest.target.std > 100
    assert manifest.quarantine.by_reason == {"non_numeric_label": 1}
    values = sorted(v for s in SPLITS for v in load_split(shards.manifest_path, s).values.tolist())
    assert values == sorted(float(r["label"]) for i, r in enumerate(rows) if i != 3)
