"""The optimizer and the per-step learning-rate schedule a training config asks for."""

from __future__ import annotations

import torch
from torch import nn

from crnn.config import TrainingConfig


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
