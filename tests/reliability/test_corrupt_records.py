"""Corrupt records under the default limit (1 %) pass, quarantined and counted (input = written +
quarantined); past it (10 %) preprocessing fails in one line, before any training, and publishes
nothing."""

from __future__ import annotations

import numpy as np
import pytest

from crnn.config import MnistIdxData, PreprocessingConfig
from crnn.data.loader import load_manifest
from crnn.data.preprocess import preprocess
from crnn.errors import DataError
from tests.data.test_readers import mnist_folder, write_idx

DEFAULT = PreprocessingConfig(augmentation={"copies": 0})  # max_quarantine_fraction: 1 %


def _with_bad_labels(tmp_path, bad: int):
    folder = mnist_folder(tmp_path, n_train=400, n_test=100)
    labels = np.arange(400) % 10
    labels[:bad] = 99  # not a class: quarantined as label_out_of_range
    write_idx(folder / "train-labels-idx1-ubyte.gz", labels)
    return MnistIdxData(path=str(folder))


def test_one_percent_of_corrupt_records_pass_and_are_counted(tmp_path) -> None:
    shards = preprocess(_with_bad_labels(tmp_path, 5), DEFAULT, tmp_path / "shards")  # 1 %
    manifest = load_manifest(shards.manifest_path)
    q = manifest.quarantine
    written = sum(c["original"] for c in manifest.splits.values())
    assert q.by_reason == {"label_out_of_range": 5}
    assert written + q.total == q.input_records == 500


def test_ten_percent_fail_before_training_and_publish_nothing(tmp_path) -> None:
    with pytest.raises(DataError, match=r"50 of 500 input records quarantined \(10\.0% > "):
        preprocess(_with_bad_labels(tmp_path, 50), DEFAULT, tmp_path / "shards")
    assert not list((tmp_path / "shards").glob("*/manifest.json"))  # no shard set to train on
