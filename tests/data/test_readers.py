"""Each reader on small files written in its real format, including bad records of each kind."""

from __future__ import annotations

import gzip
import pickle
import shutil
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from crnn.config import (
    Cifar10Data,
    ImageFolderData,
    MnistIdxData,
    PreprocessingConfig,
)
from crnn.data.catalog import open_source
from crnn.data.loader import load_manifest, load_split
from crnn.data.preprocess import preprocess
from crnn.data.quarantine import validate_chunk
from crnn.errors import DataError
from crnn.tasks import TargetSpec, task_for
from crnn.types.records import Chunk

LENIENT = PreprocessingConfig(augmentation={"copies": 0}, max_quarantine_fraction=1.0)


def write_idx(path: Path, array: np.ndarray, declared: int | None = None) -> None:
    """IDX as published: magic (0, 0, type 0x08, ndim), big-endian int32 dims, then data."""
    dims = list(array.shape)
    if declared is not None:
        dims[0] = declared
    payload = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}i", *dims)
    payload += array.astype(np.uint8).tobytes()
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as fh:
        fh.write(payload)


def mnist_folder(
    tmp_path: Path, n_train: int = 60, n_test: int = 20, gz: bool = True, size: tuple = (6, 5)
) -> Path:
    rng = np.random.default_rng(0)
    folder = tmp_path / "mnist"
    folder.mkdir()
    ext = ".gz" if gz else ""
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte{ext}", rng.integers(0, 256, (n, *size)))
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{ext}", np.arange(n) % 10)
    return folder


@pytest.mark.parametrize("gz", [True, False])
def test_idx_round_trip(tmp_path: Path, gz: bool) -> None:
    folder = mnist_folder(tmp_path, gz=gz)
    cfg = MnistIdxData(path=str(folder), val_fraction=0.2)
    src = open_source(cfg)
    assert src.info().input_shape == (1, 6, 5)
    chunks = {s: list(src.chunks(s, 16)) for s in ("train", "val", "test")}
    sizes = {s: sum(len(c) for c in cs) for s, cs in chunks.items()}
    assert sizes == {"train": 48, "val": 12, "test": 20}
    opener = gzip.open if gz else open
    with opener(folder / f"t10k-images-idx3-ubyte{'.gz' if gz else ''}", "rb") as fh:
        raw = np.frombuffer(fh.read()[16:], np.uint8).reshape(20, 6, 5)
    test = np.concatenate([c.inputs for c in chunks["test"]])
    np.testing.assert_array_equal(test, raw.astype(np.float32))
    assert [int(x) for c in chunks["test"] for x in c.labels] == [i % 10 for i in range(20)]
    train_ids = {i for c in chunks["train"] for i in c.sample_ids}
    val_ids = {i for c in chunks["val"] for i in c.sample_ids}
    assert not train_ids & val_ids and len(train_ids | val_ids) == 60


def test_idx_truncated_file_and_bad_labels_are_quarantined(tmp_path: Path) -> None:
    folder = mnist_folder(tmp_path, n_train=60, n_test=20)
    rng = np.random.default_rng(1)
    # the test images file declares 20 images but holds 15; two train labels are out of range
    write_idx(folder / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (15, 6, 5)), declared=20)
    labels = np.arange(60) % 10
    labels[[3, 7]] = 12
    write_idx(folder / "train-labels-idx1-ubyte.gz", labels)
    shards = preprocess(MnistIdxData(path=str(folder)), LENIENT, tmp_path / "shards")
    manifest = load_manifest(shards.manifest_path)
    q = manifest.quarantine
    assert q.by_reason == {"label_out_of_range": 2, "truncated_file": 5}
    written = sum(c["original"] for c in manifest.splits.values())
    assert written + q.total == 60 + 20 == q.input_records  # input = written + quarantined
    table = pd.read_parquet(shards.root / q.file)
    assert sorted(table["reason"]) == ["label_out_of_range"] * 2 + ["truncated_file"] * 5
    assert set(table[table.reason == "truncated_file"].sample_id) == {
        f"t10k-{i:06d}" for i in range(15, 20)
    }


def test_quarantine_threshold_fails_with_one_line_and_keeps_the_reasons(tmp_path: Path) -> None:
    folder = mnist_folder(tmp_path)
    labels = np.arange(60) % 10
    labels[:5] = 99
    write_idx(folder / "train-labels-idx1-ubyte.gz", labels)
    strict = PreprocessingConfig(augmentation={"copies": 0}, max_quarantine_fraction=0.01)
    with pytest.raises(DataError) as info:
        preprocess(MnistIdxData(path=str(folder)), strict, tmp_path / "shards")
    message = str(info.value)
    assert "5 of 80 input records quarantined (6.2% > " in message and "\n" not in message
    quarantine = Path(message.rsplit("reasons in ", 1)[1])
    assert len(pd.read_parquet(quarantine)) == 5
    assert not (quarantine.parent / "manifest.json").exists()  # an unpublished shard set


def test_missing_path_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"data\.path is not set"):
        open_source(MnistIdxData())
    with pytest.raises(DataError, match="does not exist"):
        open_source(MnistIdxData(path=str(tmp_path / "nope")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no train images file"):
        open_source(MnistIdxData(path=str(tmp_path / "empty")))


def write_cifar(folder: Path, batches: int = 2, per_batch: int = 30) -> np.ndarray:
    """CIFAR-10 python version: pickled dicts with bytes keys, data as (N, 3072) uint8."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    all_data = []
    for name in [f"data_batch_{i}" for i in range(1, batches + 1)] + ["test_batch"]:
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        all_data.append(data)
        batch = {
            b"batch_label": name.encode(),
            b"labels": [i % 10 for i in range(per_batch)],
            b"data": data,
            b"filenames": [f"img{i}.png".encode() for i in range(per_batch)],
        }
        with open(folder / name, "wb") as fh:
            pickle.dump(batch, fh, protocol=2)
    names = [
        b"airplane",
        b"automobile",
        b"bird",
        b"cat",
        b"deer",
        b"dog",
        b"frog",
        b"horse",
        b"ship",
        b"truck",
    ]
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({b"label_names": names, b"num_vis": 3072}, fh, protocol=2)
    return np.concatenate(all_data)


class Exploit:
    def __reduce__(self):  # what a malicious "batch" would do on pickle.load
        return (Path.touch, (Path(EXPLOIT_MARKER),))


EXPLOIT_MARKER = ""


def test_cifar_round_trip_and_unsafe_or_broken_batches(tmp_path: Path) -> None:
    global EXPLOIT_MARKER
    folder = tmp_path / "cifar"
    data = write_cifar(folder)
    src = open_source(Cifar10Data(path=str(folder), val_fraction=0.2))
    assert src.info().target.classes[:2] == ("airplane", "automobile")
    test = next(iter(src.chunks("test", 64)))
    np.testing.assert_array_equal(test.inputs, data[60:].reshape(30, 3, 32, 32).astype(np.float32))
    sizes = {s: sum(len(c) for c in src.chunks(s, 64)) for s in ("train", "val")}
    assert sizes == {"train": 48, "val": 12}
    gray = open_source(Cifar10Data(path=str(folder), grayscale=True))
    assert next(gray.chunks("test", 8)).inputs.shape == (8, 1, 32, 32)

    # a truncated batch and a pickle that would run code: both quarantined, nothing executed
    (folder / "data_batch_2").write_bytes((folder / "data_batch_2").read_bytes()[:500])
    EXPLOIT_MARKER = str(tmp_path / "pwned")
    with open(folder / "data_batch_3", "wb") as fh:
        pickle.dump({b"data": Exploit()}, fh)
    shards = preprocess(Cifar10Data(path=str(folder)), LENIENT, tmp_path / "shards")
    q = load_manifest(shards.manifest_path).quarantine
    assert q.by_reason == {"unreadable_file": 2}
    assert not Path(EXPLOIT_MARKER).exists()
    reasons = pd.read_parquet(shards.root / q.file)
    assert "refusing to load" in " ".join(reasons.detail)


def test_image_folder_any_size_and_mode_and_unreadable_files(tmp_path: Path) -> None:
    root = tmp_path / "images"
    rng = np.random.default_rng(0)
    modes = ["L", "RGB", "RGBA", "P"]
    for cls in ("cat", "dog"):
        (root / cls).mkdir(parents=True)
        for i in range(10):
            size = (int(rng.integers(10, 40)), int(rng.integers(10, 40)))
            img = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
            img = img.convert(modes[i % 4])
            suffix = ".jpg" if i % 3 == 0 and img.mode in ("L", "RGB") else ".png"
            img.save(root / cls / f"{i}{suffix}")
    (root / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    cfg = ImageFolderData(
        path=str(root),
        image_size=(12, 16),
        mode="rgb",
        split={"train": 0.5, "val": 0.25, "test": 0.25},
    )
    src = open_source(cfg)
    assert src.info().input_shape == (3, 12, 16) and src.info().target.classes == ("cat", "dog")
    shards = preprocess(cfg, LENIENT, tmp_path / "shards")
    manifest = load_manifest(shards.manifest_path)
    assert manifest.quarantine.by_reason == {"unreadable_image": 1}
    assert sum(c["original"] for c in manifest.splits.values()) == 20
    test = load_split(shards.manifest_path, "test")
    assert test.inputs.shape[1:] == (3, 12, 16)
    assert all(i.split("/")[0] in ("cat", "dog") for i in test.sample_ids)


def test_image_folder_given_split(tmp_path: Path) -> None:
    for split, n in (("train", 8), ("test", 4)):
        for cls in ("a", "b"):
            (tmp_path / split / cls).mkdir(parents=True)
            for i in range(n):
                Image.new("L", (9, 9), color=i * 20).save(tmp_path / split / cls / f"{i}.png")
    src = open_source(ImageFolderData(path=str(tmp_path), image_size=(9, 9)))
    sizes = {s: sum(len(c) for c in src.chunks(s, 100)) for s in ("train", "val", "test")}
    assert sizes["test"] == 8 and sizes["train"] + sizes["val"] == 16 and sizes["val"] >= 2


def test_validation_catches_each_kind_of_bad_record() -> None:
    inputs = np.zeros((4, 2, 2), np.float32)
    inputs[1, 0, 0] = np.nan
    inputs[2, 1, 1] = np.inf
    chunk = Chunk("train", ["a", "b", "c", "d"], inputs, labels=np.array([0, 1, 1, 7]))
    kept, bad = validate_chunk(chunk, task_for(TargetSpec(kind="class", classes=("x", "y"))))
    assert kept.sample_ids == ["a"]
    assert [(b.sample_id, b.reason) for b in bad] == [
        ("b", "non_finite"),
        ("c", "non_finite"),
        ("d", "label_out_of_range"),
    ]
    seq = Chunk("val", ["p", "q", "r"], np.zeros((3, 2, 2), np.float32), texts=["12", "", "1x"])
    kept, bad = validate_chunk(seq, task_for(TargetSpec(kind="sequence", charset="0123456789")))
    assert kept.texts == ["12"]
    assert [b.reason for b in bad] == ["empty_text", "unknown_character"]


def test_rgb_image_folder_pipeline_end_to_end(tmp_path: Path) -> None:
    """Preprocess -> train -> evaluate on an RGB image folder: two colours, easy to learn."""
    from crnn.config import EvaluationConfig, ModelConfig, TrainingConfig
    from crnn.engine.train import train_on_shards
    from crnn.inference.evaluate import evaluate_checkpoint

    rng = np.random.default_rng(0)
    for cls, colour in (("red", (200, 30, 30)), ("blue", (30, 30, 200))):
        (tmp_path / "img" / cls).mkdir(parents=True)
        for i in range(30):
            noisy = np.clip(np.array(colour) + rng.normal(0, 25, (20, 24, 3)), 0, 255)
            Image.fromarray(noisy.astype(np.uint8)).save(tmp_path / "img" / cls / f"{i}.png")
    data = ImageFolderData(path=str(tmp_path / "img"), image_size=(16, 16), mode="rgb")
    shards = preprocess(data, PreprocessingConfig(augmentation={"copies": 0}), tmp_path / "s")
    model_cfg = ModelConfig(architecture="crnn_small", head="classification")
    training = TrainingConfig(
        epochs=4,
        batch_size=8,
        device="cpu",
        early_stopping={"monitor": "val_accuracy", "mode": "max"},
    )
    result = train_on_shards(shards.manifest_path, model_cfg, training, tmp_path / "ckpt")
    report = evaluate_checkpoint(
        result.best_checkpoint, shards.manifest_path, tmp_path / "eval", EvaluationConfig()
    )
    assert report.metrics["test_accuracy"] >= 0.9
    assert report.sample_images is not None and report.sample_images.shape[1:] == (3, 16, 16)
    assert (tmp_path / "eval" / "sample_predictions.png").stat().st_size > 0
    # new data: the test images as loose, renamed files (no class folders), scored the way
    # `crnn score --input` does, predict what the evaluation predicted for those images
    from crnn.engine.checkpoint import load_checkpoint
    from crnn.inference.predictor import Predictor
    from crnn.inference.scoring import input_chunks, read_scores, score
    from crnn.types.records import ModelVersionRef

    evaluated = pd.read_parquet(report.predictions_path)
    new = tmp_path / "incoming"
    new.mkdir()
    for k, sample_id in enumerate(evaluated["sample_id"]):
        shutil.copy(tmp_path / "img" / sample_id, new / f"{k:03d}.png")
    ckpt = load_checkpoint(result.best_checkpoint)
    ref = ModelVersionRef("img", "1", "run")
    chunks = input_chunks(ckpt, ref, str(new), None, chunk_rows=5)
    summary = score(Predictor(ckpt, device="cpu"), ref, chunks, tmp_path / "scored", "new")
    assert summary.rows_scored == len(evaluated) and summary.rows_quarantined == 0
    scored = read_scores(tmp_path / "scored").to_pandas().set_index("sample_id")
    renamed = [f"{k:03d}.png" for k in range(len(evaluated))]
    assert list(scored.loc[renamed, "prediction"]) == list(evaluated["prediction"])
    np.testing.assert_allclose(
        scored.loc[renamed, "confidence"], evaluated["confidence"], rtol=1e-4
    )
