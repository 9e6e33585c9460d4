"""CTC decoding."""

from __future__ import annotations

import torch


def ctc_greedy_decode(logits: torch.Tensor, blank: int = 0) -> list[list[int]]:
    """Best path decoding: argmax per frame, merge repeats, drop blanks.

    Args:
        logits: (B, T, K) scores (logits or log-probabilities) per frame.
    Returns:
        one list of class indices per sample.
    """
    best = logits.argmax(dim=-1)  # (B, T)
    prev = torch.nn.functional.pad(best, (1, 0), value=blank)[:, :-1]
    keep = (best != blank) & (best != prev)
    return [row[mask].tolist() for row, mask in zip(best.cpu(), keep.cpu(), strict=True)]
