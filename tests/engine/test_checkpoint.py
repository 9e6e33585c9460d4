"""Typed, versioned artifacts: a checkpoint or manifest of the previous format is read through
its upgrade function; one of a newer format fails in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from crnn.data.loader import load_manifest
from crnn.data.preprocess import preprocess
from crnn.data.shards import FORMAT_VERSION, MANIFEST_NAME, Manifest
from crnn.engine.checkpoint import CHECKPOINT_VERSION, Checkpoint, checkpoint_meta, load_checkpoint
from crnn.errors import DataError, UserError
from crnn.inference.predictor import Predictor
from crnn.models import create_model, model_kwargs
from crnn.tasks import TargetSpec


def _v1_payload(meta: Checkpoint, model: torch.nn.Module) -> dict:
    """A checkpoint exactly as format 1 wrote it (crnn-pipelines before typed artifacts)."""
    prep = meta.preprocessing
    return {
        "format_version": 1,
        "model": {
            "architecture": meta.model.architecture,
            "kwargs": meta.model.kwargs,
            "input_shape": list(meta.model.input_shape),
            "num_classes": meta.model.num_outputs,
        },
        "preprocessing": {
            "normalization": prep.normalization,
            "target": {"kind": prep.target.kind, "charset": prep.target.charset, "classes": []},
            "input_shape": list(prep.input_shape),
            "shard_digest": prep.shard_digest,
            "features": {},
            "source": prep.source,
        },
        "epoch": 3,
        "metrics": {"val_cer": 0.5},
        "state_dict": model.state_dict(),
    }


def test_a_format_1_checkpoint_loads_and_predicts_the_same(tiny_config, tmp_path: Path) -> None:
    _, cfg = tiny_config
    shards = preprocess(cfg.data, cfg.preprocessing, tmp_path / "shards")
    manifest = load_manifest(shards.manifest_path)
    kwargs = model_kwargs(cfg.model)
    meta = checkpoint_meta(manifest, cfg.model.architecture, kwargs)
    model = create_model(cfg.model.architecture, meta.model.input_shape, 11, **kwargs)
    old = tmp_path / "v1.pt"
    torch.save(_v1_payload(meta, model), old)
    ckpt = load_checkpoint(old)
    assert ckpt.model.num_outputs == 11 and ckpt.epoch == 3  # num_classes upgraded
    assert ckpt.preprocessing.target == TargetSpec(kind="sequence", charset="0123456789")
    resaved = tmp_path / "v2.pt"
    torch.save(ckpt.to_payload(), resaved)
    assert torch.load(resaved, weights_only=True)["format_version"] == CHECKPOINT_VERSION
    x = torch.from_numpy(Predictor(ckpt, "cpu").normalizer.transform(torch.rand(4, 1, 12, 89)))
    assert (
        Predictor(ckpt, "cpu").predict_normalized(x).outputs
        == Predictor.from_checkpoint(resaved, "cpu").predict_normalized(x).outputs
    )


def test_a_newer_checkpoint_format_fails_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "future.pt"
    torch.save({"format_version": CHECKPOINT_VERSION + 1, "model": {}}, path)
    with pytest.raises(UserError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert "\n" not in message and "newer than this crnn-pipelines reads" in message


def test_a_format_1_manifest_is_upgraded_and_a_newer_one_refused(
    tiny_config, tmp_path: Path
) -> None:
    _, cfg = tiny_config
    shards = preprocess(cfg.data, cfg.preprocessing, tmp_path / "shards")
    raw = json.loads(shards.manifest_path.read_text())
    assert raw["format_version"] == FORMAT_VERSION and raw["target"]["kind"] == "sequence"
    old = tmp_path / "old"
    old.mkdir()
    v1 = {**raw, "format_version": 1, "target": {"kind": "sequence", "charset": "0123456789"}}
    (old / MANIFEST_NAME).write_text(json.dumps(v1))
    manifest = Manifest.from_file(old / MANIFEST_NAME)
    assert manifest.target == TargetSpec(kind="sequence", charset="0123456789")
    assert manifest.format_version == FORMAT_VERSION and manifest.root == old
    (old / MANIFEST_NAME).write_text(json.dumps({**raw, "format_version": FORMAT_VERSION + 1}))
    with pytest.raises(DataError, match=r"manifest format \d+ is newer"):
        Manifest.from_file(old / MANIFEST_NAME)


def test_the_manifest_round_trips_through_its_encoder_and_decoder(
    tiny_config, tmp_path: Path
) -> None:
    _, cfg = tiny_config
    shards = preprocess(cfg.data, cfg.preprocessing, tmp_path / "shards")
    manifest = load_manifest(shards.manifest_path)
    again = tmp_path / "again"
    again.mkdir()
    (again / MANIFEST_NAME).write_text(manifest.to_json())
    assert Manifest.from_file(again / MANIFEST_NAME) == manifest  # root is not compared
    assert "root" not in json.loads(manifest.to_json())
