"""Checkpoints: weights as a state_dict plus plain metadata (how to rebuild and feed the model),
written atomically, read back without unpickling code (``weights_only=True``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from crnn.atomic import atomic_path
from crnn.data.shards import Manifest
from crnn.data.sources import TargetSpec
from crnn.errors import UserError

CHECKPOINT_VERSION = 1


def checkpoint_meta(
    manifest: Manifest, architecture: str, kwargs: dict[str, Any]
) -> dict[str, Any]:
    """What a checkpoint carries besides weights: enough to rebuild and feed the model."""
    target = TargetSpec.from_dict(manifest.target)
    return {
        "model": {
            "architecture": architecture,
            "kwargs": kwargs,
            "input_shape": list(manifest.input_shape),
            "num_classes": target.num_classes,
        },
        "preprocessing": {
            "normalization": manifest.normalization,
            "target": manifest.target,
            "input_shape": list(manifest.input_shape),
            "shard_digest": manifest.digest,
            "features": manifest.features,
            "source": manifest.source.get("config", {}),  # how to read new data (scoring)
        },
    }


def save_checkpoint(path: Path, model: nn.Module, state: dict[str, Any]) -> None:
    """Weights as a state_dict plus plain metadata, written atomically (loadable weights_only)."""
    payload = {
        "format_version": CHECKPOINT_VERSION,
        **state,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint without unpickling code (``weights_only=True``); one of a newer format
    than this code knows fails in one line."""
    ckpt: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    version = int(ckpt.get("format_version", 1))
    if version > CHECKPOINT_VERSION:
        raise UserError(
            f"{path}: checkpoint format {version} is newer than this crnn-pipelines reads "
            f"({CHECKPOINT_VERSION}); upgrade crnn-pipelines"
        )
    return ckpt
