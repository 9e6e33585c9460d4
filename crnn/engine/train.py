"""The training engine: device, losses, optimizers, schedules, early stopping, atomic checkpoints.

It logs nothing itself: progress and metrics go to callbacks (console, MLflow), so the engine runs
with torch, numpy and pyarrow alone.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from crnn import interrupt
from crnn.atomic import atomic_write_text
from crnn.config import ModelConfig, TrainingConfig
from crnn.data.loader import ShardLoader, iterate_batches, load_manifest, load_split
from crnn.engine import ranks
from crnn.engine.callbacks import TimedCallbacks, TrainCallback, TrainResult
from crnn.engine.checkpoint import Checkpoint, checkpoint_meta, load_checkpoint, save_checkpoint
from crnn.engine.device import (
    compile_front_end,
    configure_rnn_precision,
    resolve_device,
    resolve_precision,
    seed_everything,
)
from crnn.engine.optim import build_optimizer, build_scheduler
from crnn.engine.resume import check_resumable, training_identity
from crnn.models import create_model, model_kwargs
from crnn.tasks import task_for
from crnn.tasks.base import Task
from crnn.types.batches import SplitData


@dataclass
class LoopState:
    """Where training is: enough, with the optimizer / scheduler / scaler / RNG states, to resume
    exactly. The data position is (epoch, step): the loader's order is a function of the seed and
    the epoch."""

    epoch: int = 1  # the epoch in progress, 1-based
    step: int = 0  # its batches already done
    total: float = 0.0  # running sums of the epoch in progress (this rank)
    seen: int = 0
    infeasible: int = 0
    best: float = math.inf  # best signed score so far (lower is better)
    best_loss: float = math.inf  # val_loss of that epoch: breaks ties of a coarse metric
    best_epoch: int = 0
    bad_epochs: int = 0
    stopped: bool = False
    history: list[dict[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LoopState:
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


class Trainer:
    """One training run: model (DDP-wrapped under torchrun), optimizer, schedule, mixed precision
    and the loop state, resumable. Only rank 0 writes checkpoints."""

    def __init__(
        self,
        model: nn.Module,
        cfg: TrainingConfig,
        steps_per_epoch: int,
        checkpoint_dir: Path,
        checkpoint_meta: Checkpoint,
    ) -> None:
        self.model, self.cfg, self.steps = model, cfg, steps_per_epoch
        self.device = ranks.device() or resolve_device(cfg.device)
        self.amp_dtype = resolve_precision(cfg.precision, self.device)
        cuda = self.device.type == "cuda"
        if cuda:
            torch.backends.cudnn.benchmark = cfg.cudnn_benchmark and not cfg.deterministic
        self.memory_format = torch.channels_last if cuda and cfg.channels_last else None
        memory_format = self.memory_format or torch.preserve_format
        model.to(self.device, memory_format=memory_format)  # type: ignore[call-overload]
        self.rnn_dtype = configure_rnn_precision(model, self.device, self.amp_dtype)
        self.compiled = compile_front_end(model) if cfg.compile else []
        self.net: nn.Module = ranks.wrap(model, self.device)
        self.opt = build_optimizer(model, cfg)
        self.sched = build_scheduler(self.opt, cfg, steps_per_epoch)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.loop = LoopState()
        self.meta = checkpoint_meta
        self.last_path, self.best_path = checkpoint_dir / "last.pt", checkpoint_dir / "best.pt"
        if ranks.is_main():
            checkpoint_dir.mkdir(parents=True, exist_ok=True)

    @property
    def setup(self) -> dict[str, str]:
        return {
            "device": str(self.device),
            "world_size": str(ranks.world_size()),
            "autocast": "off" if self.amp_dtype is None else str(self.amp_dtype).split(".")[-1],
            "rnn_dtype": self.rnn_dtype,
            "channels_last": str(self.memory_format is not None).lower(),
            "grad_scaler": str(self.scaler.is_enabled()).lower(),
            "compiled": ",".join(self.compiled) or "none",
        }

    def autocast(self) -> torch.autocast:
        return torch.autocast(
            self.device.type, dtype=self.amp_dtype or torch.float32, enabled=bool(self.amp_dtype)
        )

    def save_last(self, metrics: dict[str, float] | None = None) -> None:
        """last.pt: weights, metadata and everything needed to continue from this exact step."""
        if not ranks.is_main():
            return
        resume = {
            "loop": self.loop.to_dict(),
            "optimizer": self.opt.state_dict(),
            "scheduler": None if self.sched is None else self.sched.state_dict(),
            "scaler": self.scaler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "identity": training_identity(self.meta, self.cfg),  # what it may resume under
        }
        done = len(self.loop.history)  # completed epochs
        save_checkpoint(
            self.last_path, self.model, self.meta, epoch=done, metrics=metrics or {}, resume=resume
        )

    def save_best(self, epoch: int, metrics: dict[str, float]) -> None:
        if ranks.is_main():
            save_checkpoint(self.best_path, self.model, self.meta, epoch=epoch, metrics=metrics)

    def restore(self) -> bool:
        """Continue from last.pt when it holds a resume state; False when there is none."""
        if not self.last_path.is_file():
            return False
        ckpt = load_checkpoint(self.last_path)
        state = ckpt.resume
        if state is None:
            return False
        current = training_identity(self.meta, self.cfg)
        check_resumable(state.get("identity"), current, self.last_path)  # else: one line
        self.model.load_state_dict(ckpt.state_dict)
        self.opt.load_state_dict(state["optimizer"])
        if self.sched is not None and state["scheduler"] is not None:
            self.sched.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["torch_rng"])
        self.loop = LoopState.from_dict(state["loop"])
        return True


def train(
    model: nn.Module,
    train_data: ShardLoader,
    val_data: SplitData,
    cfg: TrainingConfig,
    checkpoint_dir: Path,
    checkpoint_meta: Checkpoint,
    task: Task,
    callbacks: Sequence[TrainCallback] = (),
    resume: bool = False,
) -> TrainResult:
    """Train ``model``; write ``last.pt`` (resumable) every epoch, and every
    ``cfg.checkpoint_every_steps`` steps when set, and ``best.pt`` on improvement.

    Args:
        train_data: the training split's loader (shuffling, workers, this rank's share).
        checkpoint_meta: what a checkpoint carries besides weights (model spec, preprocessing).
        task: the task kind's loss, decoding and validation metrics.
        callbacks: called on rank 0 only.
        resume: continue from ``checkpoint_dir/last.pt`` when it exists: same weights, optimizer,
            schedule, scaler, RNG and data position, so the result equals an uninterrupted run.
    Returns:
        where the checkpoints are, the best epoch and score, and the per-epoch history.
    """
    started = time.perf_counter()  # setup (device, optimizer, restore) is training time too
    seed_everything(cfg.seed, cfg.deterministic)
    steps = len(train_data)
    trainer = Trainer(model, cfg, steps, checkpoint_dir, checkpoint_meta)
    if resume and trainer.restore():
        hooks_resumed = (trainer.loop.epoch, trainer.loop.step)
    else:
        hooks_resumed = None
    loop, es = trainer.loop, cfg.early_stopping
    assert es.monitor and es.mode, "PipelineConfig resolves the early-stopping monitor"
    sign = 1.0 if es.mode == "min" else -1.0
    hooks = TimedCallbacks(callbacks if ranks.is_main() else ())
    try:  # Ctrl-C / SIGTERM: stop at the next step, resumable (from the first word said)
        with interrupt.graceful():
            hooks.on_train_start(cfg.epochs, steps)
            if hooks_resumed is not None:
                hooks.on_resume(*hooks_resumed)
            while loop.epoch <= cfg.epochs and not loop.stopped:
                metrics = epoch_metrics(trainer, train_data, val_data, task, hooks)
                epoch = loop.epoch
                record_epoch(trainer, metrics, sign)
                if ranks.is_main():
                    history = json.dumps(loop.history, indent=1)
                    atomic_write_text(checkpoint_dir / "history.json", history)
                hooks.on_epoch_end(epoch, metrics)
    except BaseException as error:
        hooks.on_train_abort(error)
        raise

    result = train_result(trainer, sign, time.perf_counter() - started)
    ranks.barrier()  # rank 0's checkpoints are on disk before any rank returns
    hooks.on_train_end(result)
    result.callback_seconds = hooks.seconds  # all of them, on_train_end's too: in ``seconds``
    result.seconds = time.perf_counter() - started
    return result


def train_result(trainer: Trainer, sign: float, seconds: float) -> TrainResult:
    loop, cfg = trainer.loop, trainer.cfg
    assert cfg.early_stopping.monitor is not None
    result = TrainResult(
        best_checkpoint=trainer.best_path,
        last_checkpoint=trainer.last_path,
        best_epoch=loop.best_epoch,
        best_score=sign * loop.best,
        monitor=cfg.early_stopping.monitor,
        epochs_run=len(loop.history),
        stopped_early=len(loop.history) < cfg.epochs,
        seconds=seconds,
        history=loop.history,
        setup=trainer.setup,
    )
    if ranks.active():
        result.setup["ranks_in_sync"] = str(ranks.in_sync(trainer.model)).lower()
    return result


def epoch_metrics(
    trainer: Trainer,
    train_data: ShardLoader,
    val_data: SplitData,
    task: Task,
    hooks: TrainCallback,
) -> dict[str, float]:
    """Train one epoch; its metrics summed over ranks, validated on rank 0, then shared."""
    loop, cfg = trainer.loop, trainer.cfg
    epoch_started = time.perf_counter()
    waited = run_epoch(trainer, train_data, task, hooks)
    total, seen, infeasible = ranks.sum_all([loop.total, loop.seen, loop.infeasible])
    metrics = {
        "train_loss": total / max(seen, 1),
        "train_samples": seen,  # summed over ranks
        # share of the epoch's wall time spent waiting for the next batch (rank 0)
        "train_loader_wait": waited / max(time.perf_counter() - epoch_started, 1e-9),
        "lr": trainer.opt.param_groups[0]["lr"],
    }
    if task.infeasible_metric:
        metrics[task.infeasible_metric] = float(infeasible)
    if ranks.is_main():  # the whole val split on rank 0: exact metrics, then shared
        metrics.update(validate(trainer.model, val_data, cfg.batch_size, task, trainer))
    metrics = ranks.broadcast(metrics)
    monitor = cfg.early_stopping.monitor
    if monitor not in metrics:
        raise ValueError(
            f"training.early_stopping.monitor {monitor!r} is not a validation metric; "
            f"known: {', '.join(sorted(k for k in metrics if k.startswith('val_')))}"
        )
    return {monitor: metrics[monitor], **metrics}  # leads: in the console, the history, MLflow


def record_epoch(trainer: Trainer, metrics: dict[str, float], sign: float) -> None:
    """The epoch into the history; best.pt on improvement; the early-stopping count; the loop
    moved to the next epoch; last.pt (resumable from there)."""
    loop, es = trainer.loop, trainer.cfg.early_stopping
    assert es.monitor is not None
    loop.history.append({"epoch": float(loop.epoch), **metrics})
    score = sign * metrics[es.monitor]
    if improves(score, metrics["val_loss"], loop.best, loop.best_loss, es.min_delta):
        loop.best, loop.best_loss = score, metrics["val_loss"]
        loop.best_epoch, loop.bad_epochs = loop.epoch, 0
        trainer.save_best(loop.epoch, metrics)
    else:
        loop.bad_epochs += 1
    loop.stopped = loop.bad_epochs >= es.patience
    loop.epoch, loop.step, loop.total, loop.seen, loop.infeasible = loop.epoch + 1, 0, 0.0, 0, 0
    trainer.save_last(metrics)


def improves(score: float, loss: float, best: float, best_loss: float, min_delta: float) -> bool:
    """Whether an epoch beats the best so far: its signed score (lower is better) by more than
    ``min_delta``, or, on a tie (a saturated or coarse metric, e.g. accuracy on a few hundred
    samples, repeats its value), a lower validation loss. Early stopping then waits for the loss."""
    return score < best - min_delta or (score == best and loss < best_loss)


def run_epoch(trainer: Trainer, data: ShardLoader, task: Task, callbacks: TrainCallback) -> float:
    """The rest of the epoch in progress: batches already done (after a resume) are skipped.

    Nothing is read back from the device except every ``log_every_steps`` steps and at
    checkpoints, so the host runs ahead of the GPU. Returns the seconds spent waiting for
    batches from the loader.
    """
    cfg, loop, net = trainer.cfg, trainer.loop, trainer.net
    net.train()
    every_ckpt, every_log = cfg.checkpoint_every_steps, cfg.log_every_steps
    loss_sum = torch.zeros((), device=trainer.device)
    bad_sum = torch.zeros((), dtype=torch.long, device=trainer.device)
    pending = 0  # samples since the last read-back
    waited = 0.0
    batches = data.batches(loop.epoch - 1, loop.step)
    step = loop.step
    while True:
        asked = time.perf_counter()
        batch = next(batches, None)
        waited += time.perf_counter() - asked
        if batch is None:
            return waited
        step += 1
        batch = batch.to(trainer.device, trainer.memory_format)
        with trainer.autocast():
            out = net(batch.inputs)
        loss, bad = task.loss(out, batch)
        trainer.opt.zero_grad(set_to_none=True)
        trainer.scaler.scale(loss).backward()
        if cfg.grad_clip:
            trainer.scaler.unscale_(trainer.opt)
            nn.utils.clip_grad_norm_(trainer.model.parameters(), cfg.grad_clip)
        trainer.scaler.step(trainer.opt)
        trainer.scaler.update()
        if trainer.sched is not None:
            trainer.sched.step()
        n = len(batch.index)
        loss_sum += loss.detach().float() * n
        bad_sum += bad
        pending += n
        checkpoint = every_ckpt is not None and step % every_ckpt == 0 and step < trainer.steps
        stop = interrupt.requested() is not None  # Ctrl-C / SIGTERM: stop here, resumable
        checkpoint = checkpoint or (stop and step < trainer.steps)
        if step % every_log == 0 or step == trainer.steps or checkpoint:
            window_loss = float(loss_sum)  # the one read-back
            loop.total, loop.seen = loop.total + window_loss, loop.seen + pending
            loop.infeasible += int(bad_sum)
            callbacks.on_batch_end(loop.epoch, step, window_loss / pending)
            loss_sum.zero_()
            bad_sum.zero_()
            pending = 0
        loop.step = step
        callbacks.on_step(loop.epoch, step)
        if checkpoint:
            trainer.save_last()
        if stop:
            interrupt.check(f"epoch {loop.epoch} step {step}")


@torch.no_grad()
def validate(
    model: nn.Module, data: SplitData, batch_size: int, task: Task, trainer: Trainer
) -> dict[str, float]:
    """val_loss plus the task's validation metrics (val_cer, val_accuracy, val_rmse...)."""
    model.eval()
    total, preds = 0.0, []
    for batch in iterate_batches(data, batch_size, shuffle=False):
        batch = batch.to(trainer.device, trainer.memory_format)
        with trainer.autocast():
            out = model(batch.inputs).float()
        total += float(task.loss(out, batch)[0]) * len(batch.index)
        preds += task.decode(out)[0]
    return {"val_loss": total / len(data), **task.validation_metrics(task.truths(data), preds)}


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
    started = time.perf_counter()
    manifest = load_manifest(manifest_path)
    kwargs = model_kwargs(model_cfg, manifest.features)
    meta = checkpoint_meta(manifest, model_cfg.architecture, kwargs)
    seed_everything(cfg.seed, cfg.deterministic)
    model = create_model(
        model_cfg.architecture, tuple(manifest.input_shape), meta.model.num_outputs, **kwargs
    )
    loader = cfg.loader
    train_loader = ShardLoader(
        manifest,
        "train",
        cfg.batch_size,
        shuffle=True,
        seed=cfg.seed,
        window_rows=loader.window_rows,
        workers=loader.workers,
        pin_memory=loader.pin_memory and resolve_device(cfg.device).type == "cuda",
        prefetch=loader.prefetch,
        rank=ranks.rank(),
        world_size=ranks.world_size(),
    )
    try:
        result = train(
            model,
            train_loader,
            load_split(manifest, "val"),
            cfg,
            checkpoint_dir,
            meta,
            task=task_for(manifest.target, cfg.loss),
            callbacks=callbacks,
            resume=resume,
        )
    finally:
        train_loader.close()
    result.seconds = time.perf_counter() - started  # with building the model and the loaders
    return result
