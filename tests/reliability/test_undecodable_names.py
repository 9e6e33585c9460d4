"""A file whose name is not valid UTF-8 (Linux allows any bytes) is one bad record, not a failed
job: training preprocessing and a scoring job set it aside as ``undecodable_name``, its name
written printable, read the rest, and their counts add up."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from crnn.config import AudioFolderData, ImageFolderData, ModelConfig, PreprocessingConfig
from crnn.data.catalog import new_data_chunks
from crnn.data.loader import load_manifest
from crnn.data.preprocess import preprocess
from crnn.engine.checkpoint import checkpoint_meta, load_checkpoint, save_checkpoint
from crnn.inference.predictor import Predictor
from crnn.inference.scoring import QUARANTINE_DIR, input_chunks, read_scores, score
from crnn.models import create_model, model_kwargs
from crnn.types.records import ModelVersionRef
from tests.data.test_audio import spoken_folder

PREP = PreprocessingConfig(augmentation={"copies": 0}, max_quarantine_fraction=0.2)
REF = ModelVersionRef("images", "1", "run")


def write_bytes_named(folder: Path, name: bytes, data: bytes) -> None:
    """A file named by raw bytes; skips where the file system refuses names that are not UTF-8."""
    try:
        fd = os.open(os.fsencode(folder) + b"/" + name, os.O_WRONLY | os.O_CREAT, 0o644)
    except OSError as exc:  # e.g. macOS: names must be UTF-8 there
        pytest.skip(f"this file system refuses the name {name!r}: {exc}")
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def class_folders(root: Path, per_class: int = 12) -> ImageFolderData:
    rng = np.random.default_rng(0)
    for cls, level in (("cat", 40), ("dog", 200)):
        (root / cls).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.clip(rng.normal(level, 30, (8, 8)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / cls / f"{i:04d}.png")
    return ImageFolderData(path=str(root), image_size=(8, 8))


def test_image_folder_training_sets_an_undecodable_name_aside(tmp_path: Path) -> None:
    cfg = class_folders(tmp_path / "data")
    png = (tmp_path / "data" / "cat" / "0000.png").read_bytes()
    write_bytes_named(tmp_path / "data" / "cat", b"bad\xff.png", png)
    os.mkdir(os.fsencode(tmp_path / "data") + b"/fox\xfe")  # a class folder the same way
    write_bytes_named(tmp_path / "data" / os.fsdecode(b"fox\xfe"), b"0.png", png)
    built = preprocess(cfg, PREP, tmp_path / "shards")
    manifest = load_manifest(built.manifest_path)
    assert manifest.quarantine.by_reason == {"undecodable_name": 2}
    written = sum(c["original"] for c in manifest.splits.values())
    assert written == 24 and manifest.quarantine.input_records == written + 2
    assert manifest.target.classes == ("cat", "dog")  # no class named by bytes
    aside = pd.read_parquet(built.manifest_path.parent / manifest.quarantine.file)
    assert sorted(aside["sample_id"]) == ["cat/bad\\xff.png", "fox\\xfe/0.png"]
    assert set(aside["reason"]) == {"undecodable_name"}


def test_audio_training_and_new_data_set_an_undecodable_name_aside(tmp_path: Path) -> None:
    root = spoken_folder(tmp_path / "audio", per_speaker=2)
    write_bytes_named(root, b"1_bob_\xff.wav", (root / "1_bob_0.wav").read_bytes())
    cfg = AudioFolderData(path=str(root))
    manifest = load_manifest(preprocess(cfg, PREP, tmp_path / "shards").manifest_path)
    assert manifest.quarantine.by_reason == {"undecodable_name": 1}
    assert manifest.quarantine.input_records == 5 * 3 * 2 + 1
    chunks = list(new_data_chunks(cfg, {}, chunk_rows=8))
    assert sum(len(c) for c in chunks) == 30
    assert [(q.sample_id, q.reason) for c in chunks for q in c.quarantined] == [
        ("1_bob_\\xff.wav", "undecodable_name")
    ]


def test_a_scoring_job_scores_the_rest_and_counts_the_undecodable_name(tmp_path: Path) -> None:
    cfg = class_folders(tmp_path / "data")
    built = preprocess(cfg, PREP, tmp_path / "shards")
    manifest = load_manifest(built.manifest_path)
    model_cfg = ModelConfig(
        head="classification", conv_channels=(8, 8), pool=((2, 1), (2, 1)), rnn_hidden=8
    )
    kwargs = model_kwargs(model_cfg, manifest.features)
    meta = checkpoint_meta(manifest, model_cfg.architecture, kwargs)
    torch.manual_seed(0)
    shape = tuple(manifest.input_shape)
    model = create_model(model_cfg.architecture, shape, meta.model.num_outputs, **kwargs)
    save_checkpoint(tmp_path / "model.pt", model, meta)
    ckpt = load_checkpoint(tmp_path / "model.pt")
    incoming = tmp_path / "incoming"
    (incoming / "day1").mkdir(parents=True)
    for i in range(5):
        png = (tmp_path / "data" / "dog" / f"{i:04d}.png").read_bytes()
        (incoming / "day1" / f"{i}.png").write_bytes(png)
    write_bytes_named(incoming / "day1", b"caf\xe9.png", png)  # Latin-1, not UTF-8
    chunks = input_chunks(ckpt, REF, str(incoming), None, chunk_rows=4)
    out = tmp_path / "scored"
    done = score(Predictor(ckpt, device="cpu"), REF, chunks, out, str(incoming))
    assert (done.rows_in, done.rows_scored, done.rows_quarantined) == (6, 5, 1)
    assert done.quarantined_by_reason == {"undecodable_name": 1}
    assert sorted(read_scores(out).column("sample_id").to_pylist()) == [
        f"day1/{i}.png" for i in range(5)
    ]
    aside = pq.read_table(out / QUARANTINE_DIR).to_pylist()
    assert [(r["sample_id"], r["reason"]) for r in aside] == [
        ("day1/caf\\xe9.png", "undecodable_name")
    ]
