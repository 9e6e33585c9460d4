"""The tensors training and evaluation pass around: one split in memory (:class:`SplitData`) and
one batch of it (:class:`Batch`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields

import torch


@dataclass
class SplitData:
    """One split in memory. ``targets`` is (N, L_max) zero-padded, with ``target_lengths``."""

    sample_ids: list[str]
    inputs: torch.Tensor  # (N, C, H, W) float32
    targets: torch.Tensor | None = None  # (N, L_max) int64, sequences
    target_lengths: torch.Tensor | None = None  # (N,) int64, sequences
    texts: list[str] | None = None
    labels: torch.Tensor | None = None  # (N,) int64, classes
    values: torch.Tensor | None = None  # (N,) float64, numbers (regression)
    aug: torch.Tensor | None = None  # (N,) int8: 0 original, k the k-th augmented copy

    def __len__(self) -> int:
        return len(self.sample_ids)


@dataclass
class Batch:
    inputs: torch.Tensor
    index: torch.Tensor  # positions in the split
    targets: torch.Tensor | None = None
    target_lengths: torch.Tensor | None = None
    labels: torch.Tensor | None = None
    values: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.index)

    def _map(self, fn: Callable[[torch.Tensor], torch.Tensor], keep_index: bool = False) -> Batch:
        values = {}
        for f in fields(self):
            t = getattr(self, f.name)
            values[f.name] = t if t is None or (keep_index and f.name == "index") else fn(t)
        return Batch(**values)

    def to(self, device: torch.device, memory_format: torch.memory_format | None = None) -> Batch:
        """Copy to ``device`` (asynchronously from pinned memory); ``index`` stays on the host."""
        moved = self._map(lambda t: t.to(device, non_blocking=True), keep_index=True)
        if memory_format is not None and moved.inputs.dim() == 4:
            moved.inputs = moved.inputs.contiguous(memory_format=memory_format)
        return moved

    def pin_memory(self) -> Batch:
        """Called by the DataLoader's pinning thread."""
        return self._map(lambda t: t.pin_memory())

    def rows(self, start: int, stop: int) -> Batch:
        """Rows ``start:stop`` as views (no copy)."""
        return self._map(lambda t: t[start:stop])
