"""The training losses: cross-entropy for a label, CTC for a sequence (with the count of
targets too long to align)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from crnn.data.loader import Batch


def compute_loss(
    model_out: torch.Tensor, batch: Batch, head: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean loss of a batch and, for CTC, how many samples cannot be aligned (their loss is 0).

    Both stay on the device: reading them back would stall the GPU every step.
    """
    if head == "classification":
        assert batch.labels is not None
        loss = F.cross_entropy(model_out.float(), batch.labels)
        return loss, torch.zeros((), dtype=torch.long, device=loss.device)
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


def infeasible_ctc_samples(
    targets: torch.Tensor, lengths: torch.Tensor, frames: int
) -> torch.Tensor:
    """Samples whose target needs more frames than ``frames`` (length + repeated neighbours)."""
    pos = torch.arange(targets.shape[1], device=targets.device)
    valid = pos[None, :] < lengths[:, None]
    repeats = ((targets[:, 1:] == targets[:, :-1]) & valid[:, 1:]).sum(dim=1)
    return ((lengths + repeats) > frames).sum()
