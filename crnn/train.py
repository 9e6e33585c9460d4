"""The training engine: device, losses, optimizers, schedules, early stopping, atomic checkpoints.

It logs nothing itself: progress and metrics go to callbacks (console, MLflow), so the engine runs
with torch, numpy and pyarrow alone.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from crnn.atomic import atomic_path, atomic_write_text
from crnn.config import ModelConfig, TrainingConfig
from crnn.data.loader import Batch, SplitData, iterate_batches, load_manifest, load_split
from crnn.data.shards import Manifest
from crnn.data.sources import TargetSpec
from crnn.errors import ConfigError
from crnn.evaluate import sequence_metrics
from crnn.models import create_model, model_kwargs
from crnn.models.decoding import ctc_greedy_decode

CHECKPOINT_VERSION = 1


class TrainCallback:
    """Hooks called by :func:`train`; override what you need."""

    def on_train_start(self, epochs: int, steps_per_epoch: int) -> None: ...

    def on_batch_end(self, epoch: int, step: int, loss: float) -> None: ...

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None: ...

    def on_train_end(self, result: TrainResult) -> None: ...


@dataclass
class TrainResult:
    best_checkpoint: Path
    last_checkpoint: Path
    best_epoch: int
    best_score: float
    monitor: str
    epochs_run: int
    stopped_early: bool
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)


def resolve_device(spec: str) -> torch.device:
    """``auto`` -> CUDA when present, else CPU; anything else as given."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(spec)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"training.device is {spec!r} but no CUDA device is available; use auto or cpu"
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"training.device is {spec!r} but MPS is not available; use auto or cpu")
    return device


def seed_everything(seed: int, deterministic: bool = False) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)


def compute_loss(model_out: torch.Tensor, batch: Batch, head: str) -> tuple[torch.Tensor, int]:
    """Mean loss of a batch and, for CTC, how many samples cannot be aligned (their loss is 0)."""
    if head == "classification":
        assert batch.labels is not None
        return F.cross_entropy(model_out, batch.labels), 0
    assert batch.targets is not None and batch.target_lengths is not None
    b, t, _ = model_out.shape
    log_probs = model_out.float().log_softmax(-1).transpose(0, 1)  # (T, B, K), CTC wants fp32
    input_lengths = torch.full((b,), t, dtype=torch.long, device=model_out.device)
    loss = F.ctc_loss(
        log_probs,
        batch.targets,
        input_lengths,
        batch.target_lengths,
        blank=0,
        reduction="mean",
        zero_infinity=True,
    )
    return loss, infeasible_ctc_samples(batch.targets, batch.target_lengths, t)


def infeasible_ctc_samples(targets: torch.Tensor, lengths: torch.Tensor, frames: int) -> int:
    """Samples whose target needs more frames than ``frames`` (length + repeated neighbours)."""
    pos = torch.arange(targets.shape[1], device=targets.device)
    valid = pos[None, :] < lengths[:, None]
    repeats = ((targets[:, 1:] == targets[:, :-1]) & valid[:, 1:]).sum(dim=1)
    return int(((lengths + repeats) > frames).sum())


def build_optimizer(model: nn.Module, cfg: TrainingConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=True
        )
    opt_cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return opt_cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def build_scheduler(
    opt: torch.optim.Optimizer, cfg: TrainingConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """A per-step learning-rate schedule (None for constant)."""
    total = cfg.epochs * steps_per_epoch
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total)
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    if cfg.schedule == "step":
        step = cfg.step_size * steps_per_epoch
        return torch.optim.lr_scheduler.StepLR(opt, step_size=step, gamma=cfg.gamma)
    return None


def train(
    model: nn.Module,
    train_data: SplitData,
    val_data: SplitData,
    cfg: TrainingConfig,
    checkpoint_dir: Path,
    checkpoint_meta: dict[str, Any],
    head: str,
    charset: str = "",
    callbacks: Sequence[TrainCallback] = (),
) -> TrainResult:
    """Train ``model``; write ``last.pt`` every epoch and ``best.pt`` on improvement.

    Args:
        checkpoint_meta: what a checkpoint carries besides weights (model spec, preprocessing).
        head: "ctc" or "classification"; ``charset`` decodes CTC outputs for validation.
    Returns:
        where the checkpoints are, the best epoch and score, and the per-epoch history.
    """
    seed_everything(cfg.seed, cfg.deterministic)
    device = resolve_device(cfg.device)
    model.to(device)
    steps = math.ceil(len(train_data) / cfg.batch_size)
    opt = build_optimizer(model, cfg)
    sched = build_scheduler(opt, cfg, steps)
    gen = torch.Generator().manual_seed(cfg.seed)
    es = cfg.early_stopping
    assert es.monitor and es.mode, "PipelineConfig resolves the early-stopping monitor"
    sign = 1.0 if es.mode == "min" else -1.0
    best, best_epoch, bad_epochs, history = math.inf, 0, 0, []
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    last_path, best_path = checkpoint_dir / "last.pt", checkpoint_dir / "best.pt"
    started = time.perf_counter()
    for cb in callbacks:
        cb.on_train_start(cfg.epochs, steps)

    epoch = 0
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        total, seen, infeasible = 0.0, 0, 0
        for step, batch in enumerate(iterate_batches(train_data, cfg.batch_size, True, gen), 1):
            batch = batch.to(device)
            loss, bad = compute_loss(model(batch.inputs), batch, head)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            if sched is not None:
                sched.step()
            n = len(batch.index)
            loss_value = float(loss.detach())
            total, seen, infeasible = total + loss_value * n, seen + n, infeasible + bad
            for cb in callbacks:
                cb.on_batch_end(epoch, step, loss_value)
        metrics = {"train_loss": total / seen, "lr": opt.param_groups[0]["lr"]}
        if head == "ctc":
            metrics["train_ctc_infeasible"] = float(infeasible)
        metrics.update(validate(model, val_data, cfg.batch_size, head, charset, device))
        if es.monitor not in metrics:
            raise ValueError(
                f"training.early_stopping.monitor {es.monitor!r} is not a validation metric; "
                f"known: {', '.join(sorted(k for k in metrics if k.startswith('val_')))}"
            )
        history.append({"epoch": float(epoch), **metrics})
        score = sign * metrics[es.monitor]
        improved = score < best - es.min_delta
        state = {**checkpoint_meta, "epoch": epoch, "metrics": metrics}
        save_checkpoint(last_path, model, state)
        atomic_write_text(checkpoint_dir / "history.json", json.dumps(history, indent=1))
        if improved:
            best, best_epoch, bad_epochs = score, epoch, 0
            save_checkpoint(best_path, model, state)
        else:
            bad_epochs += 1
        for cb in callbacks:
            cb.on_epoch_end(epoch, metrics)
        if bad_epochs >= es.patience:
            break

    result = TrainResult(
        best_checkpoint=best_path,
        last_checkpoint=last_path,
        best_epoch=best_epoch,
        best_score=sign * best,
        monitor=es.monitor,
        epochs_run=epoch,
        stopped_early=epoch < cfg.epochs,
        seconds=time.perf_counter() - started,
        history=history,
    )
    for cb in callbacks:
        cb.on_train_end(result)
    return result


@torch.no_grad()
def validate(
    model: nn.Module,
    data: SplitData,
    batch_size: int,
    head: str,
    charset: str,
    device: torch.device,
) -> dict[str, float]:
    """val_loss plus val_cer / val_sequence_accuracy (ctc) or val_accuracy (classification)."""
    model.eval()
    total, preds, hits = 0.0, [], 0
    for batch in iterate_batches(data, batch_size, shuffle=False):
        batch = batch.to(device)
        out = model(batch.inputs)
        total += float(compute_loss(out, batch, head)[0]) * len(batch.index)
        if head == "ctc":
            preds += ["".join(charset[i - 1] for i in ids) for ids in ctc_greedy_decode(out)]
        else:
            assert batch.labels is not None
            hits += int((out.argmax(-1) == batch.labels).sum())
    metrics = {"val_loss": total / len(data)}
    if head == "ctc":
        assert data.texts is not None
        m = sequence_metrics(data.texts, preds)
        metrics.update(val_cer=m["cer"], val_sequence_accuracy=m["sequence_accuracy"])
    else:
        metrics["val_accuracy"] = hits / len(data)
    return metrics


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
        },
    }


def train_on_shards(
    manifest_path: Path,
    model_cfg: ModelConfig,
    cfg: TrainingConfig,
    checkpoint_dir: Path,
    callbacks: Sequence[TrainCallback] = (),
) -> TrainResult:
    """Build the configured model for a shard set and train it on its train / val splits.

    Seeds before building the model, so the initial weights are reproducible too.
    """
    manifest = load_manifest(manifest_path)
    kwargs = model_kwargs(model_cfg, manifest.features)
    meta = checkpoint_meta(manifest, model_cfg.architecture, kwargs)
    seed_everything(cfg.seed, cfg.deterministic)
    model = create_model(
        model_cfg.architecture, tuple(manifest.input_shape), meta["model"]["num_classes"], **kwargs
    )
    return train(
        model,
        load_split(manifest_path, "train"),
        load_split(manifest_path, "val"),
        cfg,
        checkpoint_dir,
        meta,
        head=model_cfg.head,
        charset=manifest.target.get("charset", ""),
        callbacks=callbacks,
    )


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
    """Load a checkpoint without unpickling code (``weights_only=True``)."""
    ckpt: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    return ckpt
