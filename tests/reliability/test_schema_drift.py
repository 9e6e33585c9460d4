"""Data that changed shape: a class only the given test split has is quarantined (no model can
learn it), a renamed column is one line, a retyped one is read for what it holds."""

from __future__ import annotations

import pandas as pd
import pytest
from PIL import Image

from crnn.config import ImageFolderData, PreprocessingConfig, TextTableData
from crnn.data.catalog import open_source
from crnn.data.loader import load_manifest
from crnn.data.preprocess import preprocess
from crnn.errors import DataError

LENIENT = PreprocessingConfig(augmentation={"copies": 0}, max_quarantine_fraction=0.5)


def test_a_class_only_the_test_split_has_is_quarantined_as_unseen(tmp_path) -> None:
    root = tmp_path / "images"
    layout = {("train", "a"): 8, ("train", "b"): 8, ("test", "a"): 4, ("test", "c"): 3}
    for (split, cls), n in layout.items():
        (root / split / cls).mkdir(parents=True)
        for i in range(n):
            Image.new("L", (9, 9), color=20 * i).save(root / split / cls / f"{i}.png")
    cfg = ImageFolderData(path=str(root), image_size=(9, 9))
    shards = preprocess(cfg, LENIENT, tmp_path / "shards")
    manifest = load_manifest(shards.manifest_path)
    q = manifest.quarantine
    assert q.by_reason == {"unseen_label": 3}
    assert manifest.splits["test"]["original"] == 4  # class a kept, class c out
    table = pd.read_parquet(shards.manifest_path.parent / q.file)
    assert set(table["detail"]) == {"class 'c' has no record in the training split"}
    written = sum(c["original"] for c in manifest.splits.values())
    assert written + q.total == q.input_records == 23


def test_a_renamed_or_retyped_text_column(tmp_path) -> None:
    frame = pd.DataFrame(
        {"review": [f"text number {i}" for i in range(40)], "label": ["neg", "pos"] * 20}
    )
    frame.to_csv(tmp_path / "renamed.csv", index=False)
    with pytest.raises(DataError, match=r"renamed\.csv: no column 'text' \(columns: review, label"):
        open_source(TextTableData(path=str(tmp_path / "renamed.csv")))
    # labels written as numbers (a Parquet int column): read as the classes "0" and "1"
    numbers = frame.rename(columns={"review": "text"}).assign(label=[0, 1] * 20)
    numbers.to_parquet(tmp_path / "retyped.parquet", index=False)
    source = open_source(TextTableData(path=str(tmp_path / "retyped.parquet")))
    assert source.info().target.classes == ("0", "1")


def test_a_label_only_a_given_test_split_holds_is_quarantined_in_any_source(tmp_path) -> None:
    """A text table's split column: a label that only test rows carry (preprocessing's check,
    whatever the source)."""
    rows = [(f"good words {i}", "pos", "train") for i in range(20)]
    rows += [(f"bad words {i}", "neg", "train") for i in range(20)]
    rows += [(f"good words {i}", "pos", "test") for i in range(5)]
    rows += [(f"so so words {i}", "meh", "test") for i in range(2)]
    frame = pd.DataFrame(rows, columns=["text", "label", "split"])
    frame.to_csv(tmp_path / "reviews.csv", index=False)
    cfg = TextTableData(path=str(tmp_path / "reviews.csv"), split_column="split")
    manifest = load_manifest(preprocess(cfg, LENIENT, tmp_path / "shards").manifest_path)
    assert manifest.quarantine.by_reason == {"unseen_label": 2}
    assert manifest.splits["test"]["original"] == 5
