"""A scoring model shared by the inference, reliability and cluster tests (built once a session;
a plugin of tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from crnn.config import DigitStringsData, ModelConfig, PreprocessingConfig
from crnn.data.loader import load_manifest
from crnn.data.preprocess import preprocess
from crnn.engine.checkpoint import checkpoint_meta, load_checkpoint, save_checkpoint
from crnn.inference.predictor import Predictor
from crnn.models import create_model, model_kwargs
from tests.conftest import TINY_LINES


@pytest.fixture(scope="session")
def model_and_shards(tmp_path_factory) -> tuple[Predictor, Path, DigitStringsData]:
    """A randomly initialized model bundled with the statistics of a real shard set."""
    root = tmp_path_factory.mktemp("scoring")
    data = DigitStringsData(**TINY_LINES)
    prep = PreprocessingConfig(normalization="symmetric", augmentation={"copies": 0}, shard_rows=40)
    manifest_path = preprocess(data, prep, root / "shards").manifest_path
    manifest = load_manifest(manifest_path)
    cfg = ModelConfig(architecture="crnn_small", head="ctc", pool=[[2, 2], [2, 2], [2, 1]])
    kwargs = model_kwargs(cfg, manifest.features)
    meta = checkpoint_meta(manifest, cfg.architecture, kwargs)
    torch.manual_seed(0)
    model = create_model(
        cfg.architecture, tuple(manifest.input_shape), meta.model.num_outputs, **kwargs
    )
    save_checkpoint(root / "model.pt", model, meta)
    return Predictor(load_checkpoint(root / "model.pt"), device="cpu"), manifest_path, data
