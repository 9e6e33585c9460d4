"""Nothing trusted blindly: a shard changed on disk is refused wherever it is read, a manifest
changed after it was written is refused on load and never taken as a cache hit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crnn.data import shards as shard_files
from crnn.data.loader import ShardLoader, load_manifest, load_split
from crnn.data.preprocess import preprocess
from crnn.data.shards import MANIFEST_NAME, Manifest
from crnn.errors import DataError
from crnn.inference.scoring import shard_chunks


@pytest.fixture
def built(tiny_config, tmp_path):
    _, cfg = tiny_config
    shard_files.forget_verified()
    return cfg, preprocess(cfg.data, cfg.preprocessing, tmp_path / "shards")


def _flip(path: Path, at: int, n: int = 2000) -> None:
    """Overwrite ``n`` bytes in place from ``at``: same size, other content."""
    data = bytearray(path.read_bytes())
    data[at : at + n] = bytes(255 - b for b in data[at : at + n])
    path.write_bytes(bytes(data))


def test_a_shard_changed_on_disk_is_refused_by_every_reader(built) -> None:
    _, shards = built
    manifest = load_manifest(shards.manifest_path)
    train = next(s for s in manifest.shards if s.split == "train")
    path = shards.manifest_path.parent / train.path
    _flip(path, at=len(path.read_bytes()) // 3)
    assert path.stat().st_size == train.bytes
    readers = {
        "training": lambda: ShardLoader(shards.manifest_path, "train", 16),
        "evaluation": lambda: load_split(shards.manifest_path, "train"),
        "scoring --shards": lambda: list(shard_chunks(shards.manifest_path)),
    }
    for what, read in readers.items():
        shard_files.forget_verified()
        with pytest.raises(DataError, match="does not match its sha256") as info:
            read()
        assert str(path) in str(info.value), what


def test_each_shard_is_hashed_once_per_process(built, monkeypatch) -> None:
    _, shards = built
    hashed: list[str] = []
    real = shard_files.file_sha256
    monkeypatch.setattr(shard_files, "file_sha256", lambda p: hashed.append(str(p)) or real(p))
    load_split(shards.manifest_path, "val")
    load_split(shards.manifest_path, "val")
    ShardLoader(shards.manifest_path, "val", 16)
    assert len(hashed) == len(set(hashed)) and hashed  # read three times, hashed once each


@pytest.mark.parametrize("edit", ["drop a shard", "normalization", "zero the digest"])
def test_a_hand_edited_manifest_is_refused_and_rebuilt(built, edit: str) -> None:
    cfg, shards = built
    path = shards.manifest_path
    raw = json.loads(path.read_text())
    listed = len(raw["shards"])
    if edit == "drop a shard":
        raw["shards"] = raw["shards"][1:]
    elif edit == "normalization":
        raw["normalization"] = {**raw["normalization"], "scale": 2.0}
    else:
        raw["digest"] = "0" * 64
    path.write_text(json.dumps(raw, indent=2, sort_keys=True))
    with pytest.raises(DataError, match=f"{MANIFEST_NAME}: the manifest was changed after"):
        Manifest.from_file(path)
    again = preprocess(cfg.data, cfg.preprocessing, path.parent.parent)
    assert not again.reused  # not a cache hit: the set is built anew, and checks out
    rebuilt = Manifest.from_file(again.manifest_path)
    assert len(rebuilt.shards) == listed and rebuilt.digest == shards.digest
