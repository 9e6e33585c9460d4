"""The classical baseline of every classification pipeline: chosen by the source (auto), fit on
the training originals, chosen on val and scored on the CRNN's own test split; tiny data only."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from crnn.config import PipelineConfig
from crnn.data.loader import load_split
from crnn.data.preprocess import preprocess
from crnn.inference.baselines import classical_baseline
from crnn.metrics import metric_direction
from tests.data.test_audio import spoken_folder


def _config(data: dict, head: str = "classification", **sections: dict) -> PipelineConfig:
    return PipelineConfig.model_validate(
        {"name": "p", "data": data, "model": {"head": head}, **sections}
    )


def _reviews(path: Path) -> Path:
    """60 short reviews whose class shows in a negation or a word: what TF-IDF reads."""
    rows = []
    for i in range(60):
        good = i % 2 == 0
        word = ("great", "fine", "lovely")[i % 3] if good else ("dull", "poor", "awful")[i % 3]
        not_ = "" if good or i % 4 != 1 else "not "
        rows.append({"text": f"the film {i} was {not_}{word} !", "label": "pos" if good else "neg"})
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_auto_picks_the_sources_own_baseline_and_none_beyond_classification(tmp_path) -> None:
    text = {"source": "text_table", "path": str(tmp_path)}
    audio = {"source": "audio_folder", "path": str(tmp_path)}
    norm = {"preprocessing": {"normalization": "none"}}
    assert _config(text, **norm).evaluation.baseline == "tfidf"
    assert _config(audio).evaluation.baseline == "mfcc"
    assert _config({"source": "digits"}).evaluation.baseline == "svc"
    assert _config({"source": "digits"}, "regression").evaluation.baseline is None
    assert _config({"source": "digit_strings"}, "ctc").evaluation.baseline is None
    assert metric_direction("baseline_tfidf_test_accuracy") == "maximize"


@pytest.mark.parametrize(
    ("data", "sections", "message"),
    [
        ({"source": "digits"}, {"evaluation": {"baseline": "tfidf"}}, "does not fit"),
        (
            {"source": "digits"},
            {"evaluation": {"baseline": None}, "registry": {"beat_baseline": True}},
            "needs evaluation.baseline",
        ),
        (
            {"source": "digits"},
            {"registry": {"beat_baseline": True, "metric": "test_loss"}},
            "the baseline scores",
        ),
    ],
)
def test_a_baseline_that_cannot_apply_fails_in_one_line(data, sections, message) -> None:
    with pytest.raises(ValueError, match=message):
        _config(data, **sections)


def test_tfidf_baseline_reads_the_sentences_of_the_same_split(tmp_path) -> None:
    cfg = _config(
        {"source": "text_table", "path": str(_reviews(tmp_path / "r.csv")), "min_count": 1},
        preprocessing={"normalization": "none", "augmentation": {"copies": 1}},
    )
    shards = preprocess(cfg.data, cfg.preprocessing, tmp_path / "shards")
    metrics = classical_baseline("tfidf", shards.manifest_path, cfg.data)
    train = load_split(shards.manifest_path, "train")
    assert metrics["baseline_tfidf_train_rows"] == int((train.aug == 0).sum()) < len(train)
    assert metrics["baseline_tfidf_test_accuracy"] > 0.5  # better than a coin on 6 test rows
    assert {"baseline_tfidf_val_accuracy", "baseline_tfidf_test_f1_macro"} <= metrics.keys()


def test_mfcc_baseline_scores_the_spoken_test_split(tmp_path) -> None:
    cfg = _config(
        {
            "source": "audio_folder",
            "path": str(spoken_folder(tmp_path / "a", 2)),
            "filename_pattern": r"(?P<label>\d)_(?P<speaker>[a-z]+)_\d+\.wav",
        }
    )
    shards = preprocess(cfg.data, cfg.preprocessing, tmp_path / "shards")
    metrics = classical_baseline("mfcc", shards.manifest_path, cfg.data)
    assert metrics["baseline_mfcc_test_accuracy"] > 0.6  # three tones: MFCCs tell them apart
    train = load_split(shards.manifest_path, "train")
    assert metrics["baseline_mfcc_train_rows"] == int((train.aug == 0).sum()) < len(train)
