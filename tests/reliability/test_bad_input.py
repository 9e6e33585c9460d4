"""Hostile or broken input gets one clear line, and loses nothing: a YAML bomb, huge values in an
error, a labels_csv that points outside its folder or at nothing, a renamed column, a checkpoint
that is not one, a full disk; a fresh store used by several processes at once."""

from __future__ import annotations

import errno
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from crnn.atomic import atomic_path
from crnn.config import AudioFolderData, PreprocessingConfig, load_config
from crnn.data.catalog import open_source
from crnn.data.loader import load_manifest
from crnn.data.preprocess import preprocess
from crnn.engine.checkpoint import load_checkpoint
from crnn.errors import ConfigError, DataError, UserError
from tests.data.test_audio import spoken_folder

BOMB = "\n".join(
    ["version: 1", 'a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    + ["pipelines: *a8"]
)


def test_a_yaml_bomb_fails_in_one_line_before_it_expands(tmp_path: Path) -> None:
    path = tmp_path / "pipelines.yaml"
    path.write_text(BOMB)
    assert len(BOMB) < 700  # a few hundred bytes that expand to 9**9 values
    with pytest.raises(ConfigError, match="expand to more than 100,000 values") as info:
        load_config(path)
    assert "\n" not in str(info.value)
    recursive = tmp_path / "recursive.yaml"
    recursive.write_text("version: 1\npipelines: &p {x: *p}\n")
    with pytest.raises(ConfigError, match="expand to more than"):
        load_config(recursive)


def test_an_error_about_a_huge_value_stays_short(tmp_path: Path) -> None:
    path = tmp_path / "pipelines.yaml"
    huge = ", ".join(["1"] * 50_000)
    path.write_text(f"version: 1\npipelines:\n  p:\n    training: {{epochs: [{huge}]}}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "training.epochs" in str(info.value) and len(str(info.value)) < 400


def _audio_with_csv(root: Path, rows: list[tuple[str, str]]) -> AudioFolderData:
    spoken_folder(root)
    listed = [(p.name, p.name.split("_")[0]) for p in sorted(root.glob("*.wav"))]
    pd.DataFrame(listed + rows, columns=["path", "label"]).to_csv(root / "labels.csv", index=False)
    return AudioFolderData(path=str(root), labels_csv="labels.csv", group=None)


def test_labels_csv_rows_that_name_no_usable_file_are_quarantined(tmp_path: Path) -> None:
    secret = tmp_path / "secret.wav"
    secret.write_bytes(b"not for this dataset")
    cfg = _audio_with_csv(
        tmp_path / "audio",
        [("../secret.wav", "0"), ("gone.wav", "1"), ("0_ann_0.wav", " ")],
    )
    source = open_source(cfg)
    assert str(secret) not in map(str, source.files)  # never read: outside data.path
    prep = PreprocessingConfig(augmentation={"copies": 0}, max_quarantine_fraction=0.1)
    shards = preprocess(cfg, prep, tmp_path / "s")
    quarantine = load_manifest(shards.manifest_path).quarantine
    assert quarantine.by_reason == {"path_outside_data": 1, "missing_file": 1, "empty_label": 1}
    table = pd.read_parquet(shards.manifest_path.parent / quarantine.file)
    assert set(table["origin"].str.rsplit(":", n=1).str[1]) == {"62", "63", "64"}  # CSV lines
    rows = sum(s["rows"] for s in load_manifest(shards.manifest_path).splits.values())
    assert rows + quarantine.total == 60 + 3  # listed = written + quarantined


def test_a_renamed_labels_csv_column_is_one_line(tmp_path: Path) -> None:
    root = tmp_path / "audio"
    spoken_folder(root)
    pd.DataFrame({"file": ["0_ann_0.wav"], "label": ["0"]}).to_csv(root / "l.csv", index=False)
    with pytest.raises(DataError, match=r"l\.csv: no column 'path' \(it has file, label\)"):
        open_source(AudioFolderData(path=str(root), labels_csv="l.csv", group=None))


class Payload:
    def __reduce__(self):  # what a hostile checkpoint carries: code to run on load
        return (os.system, ("echo pwned",))


def test_a_checkpoint_that_is_not_a_plain_state_dict_is_one_line(tmp_path: Path) -> None:
    hostile = tmp_path / "hostile.pt"
    torch.save({"model": Payload(), "preprocessing": {}}, hostile)
    with pytest.raises(UserError, match="not a checkpoint this tool wrote") as info:
        load_checkpoint(hostile)
    assert "weights_only" not in str(info.value) and "\n" not in str(info.value)
    torn = tmp_path / "torn.pt"
    torch.save({"model": {}, "w": torch.zeros(1000)}, torn)
    torn.write_bytes(torn.read_bytes()[:500])
    with pytest.raises(UserError, match="unreadable: damaged or truncated"):
        load_checkpoint(torn)
    plain = tmp_path / "plain.pt"
    with open(plain, "wb") as fh:
        pickle.dump([1, 2], fh)
    with pytest.raises(UserError, match="not a checkpoint this tool wrote"):
        load_checkpoint(plain)


def test_a_full_disk_at_the_atomic_write_is_one_line_and_keeps_the_old_file(
    tmp_path: Path,
) -> None:
    target = tmp_path / "out" / "part.parquet"
    target.parent.mkdir()
    target.write_bytes(b"the previous version")
    with pytest.raises(UserError) as info, atomic_path(target) as tmp:
        tmp.write_bytes(np.zeros(3_000_000, np.uint8).tobytes())
        raise OSError(errno.ENOSPC, "No space left on device")  # what the write hit
    said = str(info.value)
    assert said.startswith(f"no space left on device writing {target} (needs more than 3.0 MB")
    assert "free" in said and "\n" not in said
    assert target.read_bytes() == b"the previous version"
    assert [p.name for p in target.parent.iterdir()] == ["part.parquet"]  # no temporary left


FIRST_USE = """
import sys
from pathlib import Path
from crnn.config import TrackingConfig
from crnn.tracking import open_tracking
ctx = open_tracking(TrackingConfig(experiment="e"), Path(sys.argv[1]))
print("ok", ctx.experiment_id)
"""


def test_a_fresh_store_used_by_three_processes_at_once_is_clean(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", FIRST_USE, str(tmp_path)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    assert len({out.split()[1] for out, _ in outs}) == 1  # one experiment, found by all
    for _, err in outs:
        assert "Traceback" not in err and "locked" not in err and "retry" not in err.lower()
