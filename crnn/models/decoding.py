"""CTC decoding."""

from __future__ import annotations

import numpy as np
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


def ctc_greedy_strings(logits: torch.Tensor, charset: str, blank: int = 0) -> list[str]:
    """Best path decoding straight to strings, vectorized: index ``i`` is ``charset[i - 1]``.

    Same result as decoding each row of :func:`ctc_greedy_decode` character by character, without
    a Python step per character: kept indices are mapped to code points in one gather, decoded as
    one string, and sliced per row.
    """
    best = logits.argmax(dim=-1)  # (B, T)
    prev = torch.nn.functional.pad(best, (1, 0), value=blank)[:, :-1]
    keep = ((best != blank) & (best != prev)).cpu().numpy()
    best_np = best.cpu().numpy()
    codes = np.frombuffer(charset.encode("utf-32-le"), dtype=np.uint32)
    table = np.concatenate([np.zeros(1, np.uint32), codes])  # blank -> never kept
    chars = table[best_np[keep]]
    text = chars.tobytes().decode("utf-32-le")
    ends = np.cumsum(keep.sum(axis=1)).tolist()
    starts = [0, *ends[:-1]]
    return [text[a:b] for a, b in zip(starts, ends, strict=True)]
