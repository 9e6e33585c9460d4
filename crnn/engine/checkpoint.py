"""Checkpoints: weights as a state_dict plus typed metadata (how to rebuild and feed the model),
written atomically, read back without unpickling code (``weights_only=True``).

:class:`Checkpoint` is the one reader and writer of the format: :meth:`Checkpoint.to_payload`
writes plain types, :meth:`Checkpoint.from_payload` reads them, upgrading a checkpoint of an
earlier format (registered champions keep loading) and refusing, in one line, a newer one.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from crnn.atomic import atomic_path
from crnn.data.shards import Manifest
from crnn.errors import UserError, format_version
from crnn.normalization import NormalizationStats
from crnn.types.kinds import TargetSpec
from crnn.types.records import SourceFeatures

CHECKPOINT_VERSION = 2  # 2: model.num_outputs (was num_classes), a typed target with statistics


@dataclass(frozen=True)
class ModelSpec:
    """How to rebuild the network: :func:`crnn.models.create_model`'s arguments."""

    architecture: str
    kwargs: dict[str, Any]
    input_shape: tuple[int, ...]
    num_outputs: int


@dataclass(frozen=True)
class PreprocessingSpec:
    """How to feed it: what the shard set's preprocessing fit, and how to read new data."""

    normalization: NormalizationStats
    target: TargetSpec
    input_shape: tuple[int, ...]
    shard_digest: str
    features: SourceFeatures = field(default_factory=lambda: SourceFeatures())
    source: dict[str, Any] = field(default_factory=dict)  # the source config (scoring)

    @property
    def image_model(self) -> bool:
        """Trained on images (their profile was measured): it reads image files and arrays of
        any size (:mod:`crnn.data.user_images`)."""
        return "image" in self.features

    @property
    def any_width(self) -> bool:
        """An image model that reads lines of any width (CTC over each line's own frames)."""
        return self.image_model and self.target.task_kind.any_width and len(self.input_shape) == 3


@dataclass(frozen=True)
class Checkpoint:
    model: ModelSpec
    preprocessing: PreprocessingSpec
    state_dict: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)
    epoch: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    resume: dict[str, Any] | None = field(default=None, repr=False)  # trainer state (last.pt)
    # how outputs become text (evaluation.decoder, its word list read in); {}: the task's own
    decoder: dict[str, Any] = field(default_factory=dict)

    def to_payload(self) -> dict[str, Any]:
        """Plain types only (loadable with ``weights_only=True``)."""
        model, prep = self.model, self.preprocessing
        return {
            "format_version": CHECKPOINT_VERSION,
            "model": {
                "architecture": model.architecture,
                "kwargs": model.kwargs,
                "input_shape": list(model.input_shape),
                "num_outputs": model.num_outputs,
            },
            "preprocessing": {
                "normalization": prep.normalization,
                "target": prep.target.to_dict(),
                "input_shape": list(prep.input_shape),
                "shard_digest": prep.shard_digest,
                "features": prep.features,
                "source": prep.source,
            },
            "epoch": self.epoch,
            "metrics": self.metrics,
            **({} if self.resume is None else {"resume": self.resume}),
            **({"decoder": self.decoder} if self.decoder else {}),
            "state_dict": self.state_dict,
        }

    @classmethod
    def from_payload(cls, raw: dict[str, Any], where: str = "checkpoint") -> Checkpoint:
        version = format_version(raw, "checkpoint", where, CHECKPOINT_VERSION, UserError)
        raw = upgrade_payload(raw, version)
        model, prep = raw["model"], raw["preprocessing"]
        return cls(
            model=ModelSpec(
                model["architecture"],
                dict(model["kwargs"]),
                tuple(model["input_shape"]),
                int(model["num_outputs"]),
            ),
            preprocessing=PreprocessingSpec(
                normalization=cast(NormalizationStats, dict(prep["normalization"])),
                target=TargetSpec.from_dict(prep["target"]),
                input_shape=tuple(prep["input_shape"]),
                shard_digest=str(prep["shard_digest"]),
                features=cast(SourceFeatures, dict(prep.get("features") or {})),
                source=dict(prep.get("source") or {}),
            ),
            state_dict=raw.get("state_dict", {}),
            epoch=int(raw.get("epoch", 0)),
            metrics=dict(raw.get("metrics") or {}),
            resume=raw.get("resume"),
            decoder=dict(raw.get("decoder") or {}),
        )


def upgrade_payload(raw: dict[str, Any], version: int) -> dict[str, Any]:
    """A payload of format ``version`` as the current format. Format 1 named the network's
    outputs ``num_classes`` and held the target without statistics (TargetSpec defaults them)."""
    if version < 2:
        model = dict(raw["model"])
        model["num_outputs"] = model.pop("num_classes")
        raw = {**raw, "model": model, "format_version": 2}
    return raw


def checkpoint_meta(manifest: Manifest, architecture: str, kwargs: dict[str, Any]) -> Checkpoint:
    """A checkpoint without weights yet: enough to rebuild and feed the model of a shard set."""
    return Checkpoint(
        model=ModelSpec(
            architecture, kwargs, tuple(manifest.input_shape), manifest.target.num_outputs
        ),
        preprocessing=PreprocessingSpec(
            normalization=manifest.normalization,
            target=manifest.target,
            input_shape=tuple(manifest.input_shape),
            shard_digest=manifest.digest,
            features=manifest.features,
            source=manifest.source.get("config", {}),  # how to read new data (scoring)
        ),
    )


def save_checkpoint(path: Path, model: nn.Module, meta: Checkpoint, **fields: Any) -> None:
    """``meta`` with the weights of ``model`` (and ``fields``: epoch, metrics, resume), written
    atomically."""
    weights = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    ckpt = replace(meta, state_dict=weights, **fields)
    # through a Python file: a failed write is torch's RuntimeError with the OSError (ENOSPC) as
    # its context, and the file is closed (its room given back) when the block ends
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        torch.save(ckpt.to_payload(), fh)


def load_checkpoint(path: Path) -> Checkpoint:
    """Load a checkpoint without unpickling code (``weights_only=True``); anything else (a
    pickle of objects, a damaged file, another tool's) fails in one line, without torch's
    advice to unpickle it anyway."""
    fix = "use one `crnn run` wrote or the registry holds"
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise UserError(
            f"{path}: not a checkpoint this tool wrote (it holds objects, not a plain state "
            f"dict; it is not loaded, since that would run its code); {fix}"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise UserError(f"{path}: no such checkpoint") from None
        raise UserError(
            f"{path}: not a checkpoint this tool wrote (unreadable: damaged or truncated); {fix}"
        ) from None
    try:
        return Checkpoint.from_payload(raw, str(path))  # a newer format: refused, one line
    except (KeyError, TypeError, AttributeError, ValueError):
        raise UserError(
            f"{path}: not a checkpoint this tool wrote (no model metadata); {fix}"
        ) from None
