"""Audio folders keep the split a dataset publishes: a CSV column, sub-folders, a file-name rule."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crnn.config import AudioFolderData, load_pipeline
from crnn.data.catalog import open_source
from crnn.data.sources import SPLITS
from crnn.errors import ConfigError, DataError
from tests.conftest import REPO
from tests.data.test_audio import write_tone

SPEAKERS = ("ann", "bob", "cid", "dan")
PATTERN = r"(?P<label>\d)_(?P<speaker>[a-z]+)_(?P<index>\d+)\.wav"


def recordings(root: Path, per_speaker: int = 6) -> list[str]:
    """Free Spoken Digit Dataset-style names: {digit}_{speaker}_{index}.wav."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    names = []
    for speaker in SPEAKERS:
        for label, freq in (("0", 300.0), ("1", 900.0)):
            for k in range(per_speaker):
                name = f"{label}_{speaker}_{k}.wav"
                write_tone(root / name, freq, 4000, "int16", rng)
                names.append(name)
    return names


def split_files(cfg: AudioFolderData) -> dict[str, set[str]]:
    src = open_source(cfg)
    return {s: {i for c in src.chunks(s, 1000) for i in c.sample_ids} for s in SPLITS}


def small(root: Path, **kw: object) -> AudioFolderData:
    return AudioFolderData(path=str(root), sample_rate=4000, duration_seconds=0.25, n_mels=8, **kw)


def test_a_split_column_in_labels_csv_is_kept_exactly(tmp_path) -> None:
    names = recordings(tmp_path)
    published = {n: SPLITS[i % 3] for i, n in enumerate(names)}
    table = pd.DataFrame(
        {"path": names, "label": [n[0] for n in names], "split": [published[n] for n in names]}
    )
    table.to_csv(tmp_path / "labels.csv", index=False)
    got = split_files(small(tmp_path, labels_csv="labels.csv", group=None))
    assert got == {s: {n for n in names if published[n] == s} for s in SPLITS}


def test_train_val_test_sub_folders_are_kept_exactly(tmp_path) -> None:
    placed: dict[str, set[str]] = {}
    for split in SPLITS:
        names = recordings(tmp_path / split, per_speaker=2 if split != "train" else 5)
        placed[split] = {f"{split}/{n}" for n in names}
    assert split_files(small(tmp_path, group=None)) == placed


def test_a_file_name_rule_keeps_the_published_test_split(tmp_path) -> None:
    """As the FSDD publishes it: recordings 0-4 of every speaker are test; val is carved out of
    train by speaker (grouped), and every other file is train."""
    names = recordings(tmp_path, per_speaker=10)
    rule = {"group": "index", "test": ["0-4"]}
    cfg = small(tmp_path, filename_pattern=PATTERN, split_rule=rule, val_fraction=0.25)
    got = split_files(cfg)
    assert got["test"] == {n for n in names if int(n.split("_")[2][:-4]) <= 4}
    assert got["train"] | got["val"] == set(names) - got["test"]
    speakers = {s: {n.split("_")[1] for n in got[s]} for s in ("train", "val")}
    assert speakers["val"] and not speakers["train"] & speakers["val"]  # grouped carve-out


def test_a_rule_with_values_and_an_ungrouped_carve_out(tmp_path) -> None:
    names = recordings(tmp_path, per_speaker=10)
    rule = {"group": "index", "test": ["0", "1"], "val": ["2-3"]}
    got = split_files(small(tmp_path, filename_pattern=PATTERN, split_rule=rule, group=None))
    index = {n: int(n.split("_")[2][:-4]) for n in names}
    assert got["test"] == {n for n in names if index[n] <= 1}
    assert got["val"] == {n for n in names if 2 <= index[n] <= 3}
    # given train / test only, no group: val is carved from train, stratified by label
    carved = split_files(
        small(
            tmp_path,
            filename_pattern=PATTERN,
            split_rule={"group": "index", "test": ["0"]},
            group=None,
        )
    )
    assert {n[0] for n in carved["val"]} == {"0", "1"}
    assert carved["train"] | carved["val"] == {n for n in names if index[n] != 0}


def test_given_split_mistakes_fail_in_one_line(tmp_path) -> None:
    names = recordings(tmp_path)
    for split in SPLITS:  # a complete given split and a group: which one decides?
        (tmp_path / split).mkdir()
    for i, name in enumerate(names):
        (tmp_path / name).rename(tmp_path / SPLITS[i % 3] / name)
    with pytest.raises(DataError, match=r"set data\.group: null") as err:
        open_source(small(tmp_path))
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="not a named group of filename_pattern"):
        small(tmp_path, split_rule={"group": "take", "test": ["0"]})


def test_bad_split_values_in_the_csv_name_the_column(tmp_path) -> None:
    names = recordings(tmp_path)
    table = pd.DataFrame({"path": names, "label": [n[0] for n in names], "part": "holdout"})
    table.to_csv(tmp_path / "labels.csv", index=False)
    with pytest.raises(DataError, match=r"column 'part' holds \['holdout'\]; allowed: train"):
        open_source(small(tmp_path, labels_csv="labels.csv", split_column="part", group=None))


def test_a_bad_rule_in_pipelines_yaml_is_one_line_naming_the_key(tmp_path) -> None:
    overrides = ["data.path=.", "data.split_rule={group: take, test: ['0']}"]
    with pytest.raises(ConfigError, match="split_rule") as err:
        load_pipeline(REPO / "pipelines.yaml", "spoken-digits", overrides)
    assert "\n" not in str(err.value)
