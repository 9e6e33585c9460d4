import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from crnn.data.catalog import open_source
from crnn.data.loader import iterate_batches, load_manifest, load_split
from crnn.data.preprocess import preprocess, shard_set_digest
from crnn.data.shards import MANIFEST_NAME, ShardWriter, file_sha256, verify_shards
from crnn.errors import DataError
from crnn.tasks import TargetSpec, task_for
from crnn.types.records import Chunk


def test_writer_round_trip_is_exact(tmp_path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(70, 1, 5, 7)).astype(np.float32)
    texts = ["".join(rng.choice(list("0123456789"), size=rng.integers(1, 6))) for _ in range(70)]
    targets = [[int(c) + 1 for c in t] for t in texts]
    task = task_for(TargetSpec(kind="sequence", charset="0123456789"))
    writer = ShardWriter(tmp_path, (1, 5, 7), task, shard_rows=32)
    ids = [f"s{i}" for i in range(70)]
    writer.write("test", ids, 0, x, task.columns(Chunk("test", ids, x, texts=texts)))
    records = writer.close()
    assert [r.rows for r in records] == [32, 32, 6]  # bounded shards
    table = pq.read_table(tmp_path / records[0].path)
    assert json.loads(table.schema.metadata[b"crnn.input_shape"]) == [1, 5, 7]
    assert not table.schema.field("input").nullable
    assert table.column("target").to_pylist() == targets[:32]  # the task encodes the texts
    assert all(file_sha256(tmp_path / r.path) == r.sha256 for r in records)


def test_preprocess_round_trip_counts_and_manifest(tiny_config, tmp_path) -> None:
    _, cfg = tiny_config
    shards = preprocess(cfg.data, cfg.preprocessing, tmp_path / "shards")
    assert not shards.reused
    manifest = load_manifest(shards.manifest_path)
    assert manifest.digest == shards.digest
    assert manifest.splits["train"] == {"rows": 384, "original": 192, "augmented": 192}
    assert manifest.splits["test"] == {"rows": 48, "original": 48, "augmented": 0}
    assert sum(s.rows for s in manifest.shards) == 384 + 48 + 48
    assert max(s.rows for s in manifest.shards) <= cfg.preprocessing.shard_rows
    assert manifest.target.charset == "0123456789"
    assert manifest.source["digest"] == open_source(cfg.data).info().digest
    verify_shards(shards.root, manifest)

    test = load_split(shards.manifest_path, "test")
    chunk = next(open_source(cfg.data).chunks("test", 1000))
    assert test.sample_ids == chunk.sample_ids and test.texts == chunk.texts
    assert test.inputs.shape == (48, 1, *manifest.input_shape[1:])
    # padded targets decode back to the texts
    for row, length, text in zip(test.targets, test.target_lengths, test.texts, strict=True):
        assert "".join(str(int(i) - 1) for i in row[: int(length)]) == text
        assert (row[int(length) :] == 0).all()
    batches = list(iterate_batches(test, 20, shuffle=False))
    assert [len(b.index) for b in batches] == [20, 20, 8]
    assert batches[0].targets.shape[1] == int(test.target_lengths[:20].max())


def test_same_inputs_reuse_and_any_change_rebuilds(tiny_config, tmp_path) -> None:
    _, cfg = tiny_config
    first = preprocess(cfg.data, cfg.preprocessing, tmp_path / "shards")
    again = preprocess(cfg.data, cfg.preprocessing, tmp_path / "shards")
    assert again.reused and again.digest == first.digest
    changed = cfg.preprocessing.model_copy(update={"normalization": "symmetric"})
    other = preprocess(cfg.data, changed, tmp_path / "shards")
    assert not other.reused and other.digest != first.digest
    aug = cfg.preprocessing.augmentation.model_copy(update={"seed": 5})
    assert shard_set_digest("s", cfg.preprocessing, "v") != shard_set_digest(
        "s", cfg.preprocessing.model_copy(update={"augmentation": aug}), "v"
    )
    assert shard_set_digest("s", cfg.preprocessing, "v1") != shard_set_digest(
        "s", cfg.preprocessing, "v2"
    )


def test_augmented_shards_are_deterministic(tiny_config, tmp_path) -> None:
    _, cfg = tiny_config
    a = preprocess(cfg.data, cfg.preprocessing, tmp_path / "a")
    b = preprocess(cfg.data, cfg.preprocessing, tmp_path / "b")
    ma, mb = load_manifest(a.manifest_path), load_manifest(b.manifest_path)
    assert [s.sha256 for s in ma.shards] == [s.sha256 for s in mb.shards]


def test_tampered_or_partial_shard_sets_are_not_trusted(tiny_config, tmp_path) -> None:
    _, cfg = tiny_config
    shards = preprocess(cfg.data, cfg.preprocessing, tmp_path / "shards")
    manifest = load_manifest(shards.manifest_path)
    victim = shards.root / manifest.shards[0].path
    data = bytearray(victim.read_bytes())
    data[-100] ^= 0xFF
    victim.write_bytes(bytes(data))
    with pytest.raises(DataError, match="does not match its sha256"):
        verify_shards(shards.root, manifest)
    rebuilt = preprocess(cfg.data, cfg.preprocessing, tmp_path / "shards")
    assert not rebuilt.reused
    verify_shards(rebuilt.root, load_manifest(rebuilt.manifest_path))
    # no manifest (interrupted run): the folder is rebuilt, not trusted
    (rebuilt.root / MANIFEST_NAME).unlink()
    assert not preprocess(cfg.data, cfg.preprocessing, tmp_path / "shards").reused


def test_missing_manifest_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(DataError, match="run preprocessing first"):
        load_split(tmp_path, "train")
