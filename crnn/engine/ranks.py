"""This process's place among torchrun ranks: who is main, collectives, the DDP wrapper.

Outside torchrun every helper is the single-process identity, so the engine has one code path.
Needs only torch; the launcher and the rank entry point are in :mod:`crnn.distributed`.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as torch_dist
from torch import nn


def active() -> bool:
    return torch_dist.is_available() and torch_dist.is_initialized()


def rank() -> int:
    return torch_dist.get_rank() if active() else 0


def world_size() -> int:
    return torch_dist.get_world_size() if active() else 1


def is_main() -> bool:
    return rank() == 0


def device() -> torch.device | None:
    """This rank's GPU under torchrun (LOCAL_RANK); None outside it or on CPU."""
    if active() and torch_dist.get_backend() == "nccl":
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return None


def wrap(model: nn.Module, dev: torch.device) -> nn.Module:
    if not active():
        return model
    ids = [dev.index] if dev.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def sum_all(values: list[float]) -> list[float]:
    """Element-wise sum over ranks (training loss sums, sample counts)."""
    if not active():
        return [float(v) for v in values]
    t = torch.tensor(values, dtype=torch.float64, device=device() or "cpu")
    torch_dist.all_reduce(t)
    return t.tolist()


def broadcast(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not active():
        return obj
    box = [obj]
    torch_dist.broadcast_object_list(box, src=0, device=device())
    return box[0]


def barrier() -> None:
    if active():
        dev = device()
        index = dev.index if dev is not None else None
        torch_dist.barrier(device_ids=[index] if index is not None else None)


def init() -> None:
    """Join the process group torchrun set up (env://)."""
    cuda = torch.cuda.is_available() and os.environ.get("CRNN_DDP_BACKEND") != "gloo"
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    torch_dist.init_process_group("nccl" if cuda else "gloo")


def in_sync(model: nn.Module) -> bool:
    """Whether every rank holds the same weights (a float64 checksum, gathered)."""
    if not active():
        return True
    dev = device() or torch.device("cpu")
    local = torch.stack([p.detach().double().sum() for p in model.parameters()]).sum().view(1)
    gathered = [torch.zeros(1, dtype=torch.float64, device=dev) for _ in range(world_size())]
    torch_dist.all_gather(gathered, local.to(dev))
    return all(torch.equal(g, gathered[0]) for g in gathered)
