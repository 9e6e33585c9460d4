"""What a resumable checkpoint belongs to: its shard set and its training identity.

``last.pt`` records both. A resume continues it only under the same ones: the same data (shard
set digest: the source, its preprocessing and augmentation) and the same model and training
settings, except those that change how long, where and how fast a run goes and how often it
reports (:data:`MAY_CHANGE`; the number of epochs only under a schedule that does not span the
whole run). Anything else is refused in one line that names what changed.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

from crnn.config import ModelConfig, TrainingConfig, flatten
from crnn.errors import UserError

if TYPE_CHECKING:
    from crnn.engine.checkpoint import Checkpoint

SHARD_KEY = "data.shard_digest"
WHOLE_RUN_SCHEDULES = ("onecycle", "cosine")
MAY_CHANGE = frozenset(  # training.* keys a resume may change
    {
        "epochs",
        "device",
        "precision",
        "log_every_steps",
        "checkpoint_every_steps",
        "channels_last",
        "cudnn_benchmark",
        "compile",
        "loader.prefetch",
        "loader.pin_memory",
        "early_stopping.patience",
    }
)


def training_identity(meta: Checkpoint, training: TrainingConfig) -> dict[str, str]:
    """Flat ``key -> value`` pairs a resume must find unchanged: the model (architecture and its
    arguments), the shard set, and the training settings outside :data:`MAY_CHANGE`."""
    model = meta.model
    identity = {
        "model.architecture": model.architecture,
        "model.input_shape": json.dumps(list(model.input_shape)),
        "model.num_outputs": str(model.num_outputs),
        **{f"model.{k}": json.dumps(v, sort_keys=True) for k, v in model.kwargs.items()},
        SHARD_KEY: meta.preprocessing.shard_digest,
    }
    # a schedule over the whole run (one cycle, cosine) is shaped by its length: keep epochs
    free = MAY_CHANGE - ({"epochs"} if training.schedule in WHOLE_RUN_SCHEDULES else set())
    for key, value in flatten(training).items():
        if key not in free:
            identity[f"training.{key}"] = value
    return identity


def check_checkpoint(
    last: Path, manifest_path: Path, model_cfg: ModelConfig, training: TrainingConfig
) -> None:
    """:func:`check_resumable` for ``last`` (a ``last.pt``) against a run of ``model_cfg`` and
    ``training`` on the shard set at ``manifest_path``, before anything is reopened."""
    from crnn.data.loader import load_manifest
    from crnn.engine.checkpoint import checkpoint_meta, load_checkpoint
    from crnn.models import model_kwargs

    manifest = load_manifest(manifest_path)
    meta = checkpoint_meta(
        manifest, model_cfg.architecture, model_kwargs(model_cfg, manifest.features)
    )
    saved = load_checkpoint(last).resume or {}
    check_resumable(saved.get("identity"), training_identity(meta, training), last)


def identity_digest(identity: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def check_resumable(saved: dict[str, str] | None, current: dict[str, str], where: Path) -> None:
    """Raise UserError (one line) unless the checkpoint at ``where``, whose identity is
    ``saved``, may be continued by a run whose identity is ``current``."""
    fix = "run without --resume to start afresh"
    if saved is None:
        raise UserError(f"{where}: a checkpoint that records no training identity; {fix}")
    if saved.get(SHARD_KEY) != current.get(SHARD_KEY):
        was, now = str(saved.get(SHARD_KEY))[:12], str(current.get(SHARD_KEY))[:12]
        raise UserError(
            f"{where} was trained on shard set {was}, this run reads {now}: the data or its "
            f"preprocessing changed; {fix} (or restore the data)"
        )
    changed = sorted(k for k in saved.keys() | current.keys() if saved.get(k) != current.get(k))
    if changed:
        shown = ", ".join(f"{k} {saved.get(k, '-')} -> {current.get(k, '-')}" for k in changed[:3])
        more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
        raise UserError(
            f"{where} belongs to another training setup ({shown}{more}); {may_change(current)}; "
            f"resume with the setup the run started with (its pipelines file and --set flags) "
            f"or {fix}"
        )


def may_change(current: dict[str, str]) -> str:
    """What a resume may change, for a run whose identity is ``current``: only what is not in
    it (``training.epochs`` is, under a schedule that spans the whole run)."""
    free = sorted(f"training.{k}" for k in MAY_CHANGE if f"training.{k}" not in current)
    allowed = ", ".join(k for k in free if k.count(".") == 1)
    said = f"a resume may change only {allowed} and loader / early-stopping patience settings"
    if "training.epochs" in current:
        schedule = current.get("training.schedule", "")
        said += f" (not training.epochs: schedule {schedule} spans the whole run)"
    return said
