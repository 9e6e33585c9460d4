"""A symlink under data.path that points outside it is refused, as a labels CSV path outside it
is: quarantined as ``path_outside_data`` and counted, never read (a link to another folder once
became an extra class), unless ``data.follow_symlinks: true``. Links that stay inside work."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from crnn.config import AudioFolderData, ImageFolderData, PreprocessingConfig
from crnn.data.catalog import new_data_chunks, open_source
from crnn.data.loader import load_manifest, load_split
from crnn.data.preprocess import preprocess
from crnn.types.records import Chunk
from tests.data.test_audio import spoken_folder

PREP = PreprocessingConfig(augmentation={"copies": 0}, max_quarantine_fraction=0.5)


def pngs(folder: Path, count: int, level: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for i in range(count):
        pixels = np.clip(rng.normal(level, 30, (8, 8)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:04d}.png")


@pytest.fixture
def linked_classes(tmp_path: Path) -> Path:
    """data/{cat,dog} (10 images each); data/fox -> elsewhere/fox (6 images), a class folder
    outside; data/cat/stray.png -> elsewhere/stray.png; data/cat/again.png -> 0001.png (inside)."""
    data, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    pngs(data / "cat", 10, 40, 0)
    pngs(data / "dog", 10, 200, 1)
    pngs(elsewhere / "fox", 6, 120, 2)
    shutil.copy(data / "dog" / "0000.png", elsewhere / "stray.png")
    (data / "fox").symlink_to(elsewhere / "fox", target_is_directory=True)
    (data / "cat" / "stray.png").symlink_to(elsewhere / "stray.png")
    (data / "cat" / "again.png").symlink_to("0001.png")  # relative, stays inside data/
    return data


def quarantined(chunks: list[Chunk]) -> dict[str, str]:
    return {q.sample_id: q.reason for c in chunks for q in c.quarantined}


def test_a_class_folder_or_image_linked_from_outside_is_quarantined(
    linked_classes: Path, tmp_path: Path
) -> None:
    cfg = ImageFolderData(path=str(linked_classes), image_size=(8, 8))
    built = preprocess(cfg, PREP, tmp_path / "shards")
    manifest = load_manifest(built.manifest_path)
    assert manifest.target.classes == ("cat", "dog")  # fox/ is not a class
    assert manifest.quarantine.by_reason == {"path_outside_data": 6 + 1}
    written = sum(c["original"] for c in manifest.splits.values())
    assert written == 21 and manifest.quarantine.input_records == written + 7
    ids = {
        i for s in ("train", "val", "test") for i in load_split(built.manifest_path, s).sample_ids
    }
    assert "cat/again.png" in ids and not any("fox" in i or "stray" in i for i in ids)
    aside = pd.read_parquet(built.manifest_path.parent / manifest.quarantine.file)
    assert sorted(aside["sample_id"]) == ["cat/stray.png"] + [f"fox/{i:04d}.png" for i in range(6)]
    detail = aside.set_index("sample_id").loc["cat/stray.png", "detail"]
    assert str(tmp_path / "elsewhere" / "stray.png") in detail and "follow_symlinks" in detail


def test_follow_symlinks_reads_them(linked_classes: Path, tmp_path: Path) -> None:
    cfg = ImageFolderData(path=str(linked_classes), image_size=(8, 8), follow_symlinks=True)
    built = preprocess(cfg, PREP, tmp_path / "shards")
    manifest = load_manifest(built.manifest_path)
    assert manifest.target.classes == ("cat", "dog", "fox")
    assert manifest.quarantine.total == 0
    assert sum(c["original"] for c in manifest.splits.values()) == 21 + 7


def test_scoring_input_refuses_links_that_leave_it_unless_followed(tmp_path: Path) -> None:
    incoming, elsewhere = tmp_path / "incoming", tmp_path / "elsewhere"
    pngs(incoming / "day1", 3, 100, 0)
    pngs(elsewhere / "archive", 4, 100, 1)
    (incoming / "archive").symlink_to(elsewhere / "archive", target_is_directory=True)
    (incoming / "one.png").symlink_to(elsewhere / "archive" / "0000.png")
    (incoming / "latest").symlink_to("day1", target_is_directory=True)  # inside: day1 is read
    cfg = ImageFolderData(path=str(incoming), image_size=(8, 8))
    chunks = list(new_data_chunks(cfg, {}, chunk_rows=2))
    assert sorted(i for c in chunks for i in c.sample_ids) == [
        f"day1/{i:04d}.png" for i in range(3)
    ]
    assert quarantined(chunks) == {"archive": "path_outside_data", "one.png": "path_outside_data"}
    followed = list(new_data_chunks(cfg.model_copy(update={"follow_symlinks": True}), {}, 2))
    assert sorted(i for c in followed for i in c.sample_ids) == sorted(
        [f"archive/{i:04d}.png" for i in range(4)] + [f"day1/{i:04d}.png" for i in range(3)]
        + ["one.png"]
    )  # fmt: skip
    assert quarantined(followed) == {}


def test_an_audio_file_linked_from_outside_is_quarantined(tmp_path: Path) -> None:
    root = spoken_folder(tmp_path / "audio", per_speaker=2)
    (tmp_path / "elsewhere").mkdir()
    shutil.move(root / "2_eve_1.wav", tmp_path / "elsewhere" / "2_eve_1.wav")
    os.symlink(tmp_path / "elsewhere" / "2_eve_1.wav", root / "2_eve_1.wav")
    for follow, reasons in ((False, {"2_eve_1.wav": "path_outside_data"}), (True, {})):
        source = open_source(AudioFolderData(path=str(root), follow_symlinks=follow))
        chunks = [c for s in ("train", "val", "test") for c in source.chunks(s, 8)]
        assert quarantined(chunks) == reasons
        assert sum(len(c) for c in chunks) == 30 - len(reasons)
