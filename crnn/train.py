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


@dataclass
class LoopState:
    """Where training is: enough, with the optimizer / scheduler / RNG states, to resume exactly."""

    epoch: int = 1  # the epoch in progress, 1-based
    step: int = 0  # its batches already done
    total: float = 0.0  # running sums of the epoch in progress
    seen: int = 0
    infeasible: int = 0
    best: float = math.inf  # best signed score so far (lower is better)
    best_epoch: int = 0
    bad_epochs: int = 0
    stopped: bool = False
    history: list[dict[str, float]] = field(default_factory=list)
    shuffle_state: torch.Tensor | None = None  # the shuffling generator at the epoch's start

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LoopState:
        return cls(**d)


class Trainer:
    """One training run: model, optimizer, schedule, shuffling and the loop state, resumable."""

    def __init__(
        self,
        model: nn.Module,
        cfg: TrainingConfig,
        steps_per_epoch: int,
        checkpoint_dir: Path,
        checkpoint_meta: dict[str, Any],
    ) -> None:
        self.model, self.cfg, self.steps = model, cfg, steps_per_epoch
        self.device = resolve_device(cfg.device)
        model.to(self.device)
        self.opt = build_optimizer(model, cfg)
        self.sched = build_scheduler(self.opt, cfg, steps_per_epoch)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.loop = LoopState()
        self.meta = checkpoint_meta
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
        self.dir = checkpoint_dir
        self.last_path, self.best_path = checkpoint_dir / "last.pt", checkpoint_dir / "best.pt"

    def save_last(self, metrics: dict[str, float] | None = None) -> None:
        """last.pt: weights, metadata and everything needed to continue from this exact step."""
        resume = {
            "loop": self.loop.to_dict(),
            "optimizer": self.opt.state_dict(),
            "scheduler": None if self.sched is None else self.sched.state_dict(),
            "torch_rng": torch.get_rng_state(),
        }
        done = len(self.loop.history)  # completed epochs
        state = {**self.meta, "epoch": done, "metrics": metrics or {}, "resume": resume}
        save_checkpoint(self.last_path, self.model, state)

    def restore(self) -> bool:
        """Continue from last.pt when it holds a resume state; False when there is none."""
        if not self.last_path.is_file():
            return False
        ckpt = load_checkpoint(self.last_path)
        if "resume" not in ckpt:
            return False
        self.model.load_state_dict(ckpt["state_dict"])
        self.opt.load_state_dict(ckpt["resume"]["optimizer"])
        if self.sched is not None and ckpt["resume"]["scheduler"] is not None:
            self.sched.load_state_dict(ckpt["resume"]["scheduler"])
        torch.set_rng_state(ckpt["resume"]["torch_rng"])
        self.loop = LoopState.from_dict(ckpt["resume"]["loop"])
        return True


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
    resume: bool = False,
) -> TrainResult:
    """Train ``model``; write ``last.pt`` (resumable) every epoch, and every
    ``cfg.checkpoint_every_steps`` steps when set, and ``best.pt`` on improvement.

    Args:
        checkpoint_meta: what a checkpoint carries besides weights (model spec, preprocessing).
        head: "ctc" or "classification"; ``charset`` decodes CTC outputs for validation.
        resume: continue from ``checkpoint_dir/last.pt`` when it exists: same weights, optimizer,
            schedule, RNG and data position, so the result equals an uninterrupted run.
    Returns:
        where the checkpoints are, the best epoch and score, and the per-epoch history.
    """
    seed_everything(cfg.seed, cfg.deterministic)
    steps = math.ceil(len(train_data) / cfg.batch_size)
    trainer = Trainer(model, cfg, steps, checkpoint_dir, checkpoint_meta)
    resumed = resume and trainer.restore()
    loop, es = trainer.loop, cfg.early_stopping
    assert es.monitor and es.mode, "PipelineConfig resolves the early-stopping monitor"
    sign = 1.0 if es.mode == "min" else -1.0
    started = time.perf_counter()
    for cb in callbacks:
        cb.on_train_start(cfg.epochs, steps)

    while loop.epoch <= cfg.epochs and not loop.stopped:
        if resumed and loop.shuffle_state is not None:
            trainer.gen.set_state(loop.shuffle_state)  # the same permutation as before
        else:
            loop.shuffle_state = trainer.gen.get_state()
        resumed = False
        run_epoch(trainer, train_data, head, callbacks)
        metrics = {
            "train_loss": loop.total / max(loop.seen, 1),
            "lr": trainer.opt.param_groups[0]["lr"],
        }
        if head == "ctc":
            metrics["train_ctc_infeasible"] = float(loop.infeasible)
        metrics.update(validate(model, val_data, cfg.batch_size, head, charset, trainer.device))
        if es.monitor not in metrics:
            raise ValueError(
                f"training.early_stopping.monitor {es.monitor!r} is not a validation metric; "
                f"known: {', '.join(sorted(k for k in metrics if k.startswith('val_')))}"
            )
        loop.history.append({"epoch": float(loop.epoch), **metrics})
        score = sign * metrics[es.monitor]
        if score < loop.best - es.min_delta:
            loop.best, loop.best_epoch, loop.bad_epochs = score, loop.epoch, 0
            state = {**checkpoint_meta, "epoch": loop.epoch, "metrics": metrics}
            save_checkpoint(trainer.best_path, model, state)
        else:
            loop.bad_epochs += 1
        loop.stopped = loop.bad_epochs >= es.patience
        epoch = loop.epoch
        loop.epoch, loop.step, loop.total, loop.seen, loop.infeasible = epoch + 1, 0, 0.0, 0, 0
        loop.shuffle_state = trainer.gen.get_state()
        trainer.save_last(metrics)
        atomic_write_text(checkpoint_dir / "history.json", json.dumps(loop.history, indent=1))
        for cb in callbacks:
            cb.on_epoch_end(epoch, metrics)

    result = TrainResult(
        best_checkpoint=trainer.best_path,
        last_checkpoint=trainer.last_path,
        best_epoch=loop.best_epoch,
        best_score=sign * loop.best,
        monitor=es.monitor,
        epochs_run=len(loop.history),
        stopped_early=len(loop.history) < cfg.epochs,
        seconds=time.perf_counter() - started,
        history=loop.history,
    )
    for cb in callbacks:
        cb.on_train_end(result)
    return result


def run_epoch(
    trainer: Trainer, data: SplitData, head: str, callbacks: Sequence[TrainCallback]
) -> None:
    """The rest of the epoch in progress: batches already done (after a resume) are skipped."""
    cfg, loop, model = trainer.cfg, trainer.loop, trainer.model
    model.train()
    done = loop.step
    for step, batch in enumerate(iterate_batches(data, cfg.batch_size, True, trainer.gen), 1):
        if step <= done:
            continue
        batch = batch.to(trainer.device)
        loss, bad = compute_loss(model(batch.inputs), batch, head)
        trainer.opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        trainer.opt.step()
        if trainer.sched is not None:
            trainer.sched.step()
        n, loss_value = len(batch.index), float(loss.detach())
        loop.step, loop.total = step, loop.total + loss_value * n
        loop.seen, loop.infeasible = loop.seen + n, loop.infeasible + bad
        every = cfg.checkpoint_every_steps
        if every and step % every == 0 and step < trainer.steps:
            trainer.save_last()
        for cb in callbacks:
            cb.on_batch_end(loop.epoch, step, loss_value)


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
    resume: bool = False,
) -> TrainResult:
    """Build the configured model for a shard set and train it on its train / val splits.

    Seeds before building the model, so the initial weights are reproducible too; with
    ``resume``, continues from ``checkpoint_dir/last.pt`` (see :func:`train`).
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
        resume=resume,
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
