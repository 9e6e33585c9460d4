"""The registration gate: does a challenger beat the champion? Pure, so it is tested on its own."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    challenger: float
    champion: float | None
    reason: str


def decide_promotion(
    challenger: float, champion: float | None, direction: str, min_delta: float
) -> GateDecision:
    """Promote when there is no champion yet, or the challenger beats it by more than ``min_delta``.

    Args:
        direction: "maximize" (higher is better) or "minimize".
        min_delta: the improvement the challenger must exceed; a tie never promotes.
    """
    if direction not in ("maximize", "minimize"):
        raise ValueError(f"direction must be maximize or minimize, got {direction!r}")
    if not math.isfinite(challenger):
        return GateDecision(False, challenger, champion, f"challenger score is {challenger}")
    if champion is None or not math.isfinite(champion):
        return GateDecision(True, challenger, champion, "no champion yet: first version promoted")
    gain = challenger - champion if direction == "maximize" else champion - challenger
    if gain > min_delta:
        return GateDecision(
            True, challenger, champion, f"beats champion by {gain:+.4f} (> {min_delta:g})"
        )
    return GateDecision(
        False,
        challenger,
        champion,
        f"improvement {gain:+.4f} is not > {min_delta:g}: kept champion",
    )
