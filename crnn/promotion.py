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
    challenger: float,
    champion: float | None,
    direction: str,
    min_delta: float,
    min_relative: float = 0.0,
) -> GateDecision:
    """Promote when there is no champion yet, or the challenger beats it by more than ``min_delta``
    and by more than ``min_relative`` times the champion's score.

    Args:
        direction: "maximize" (higher is better) or "minimize".
        min_delta: the absolute improvement the challenger must exceed; a tie never promotes.
        min_relative: the relative improvement it must exceed (0.01: 1 %).
    """
    if direction not in ("maximize", "minimize"):
        raise ValueError(f"direction must be maximize or minimize, got {direction!r}")
    if not math.isfinite(challenger):
        return GateDecision(False, challenger, champion, f"challenger score is {challenger}")
    if champion is None:
        return GateDecision(True, challenger, champion, "no champion yet: first version promoted")
    if not math.isfinite(champion):  # a champion whose score is unknown is not beaten by default
        return GateDecision(
            False,
            challenger,
            champion,
            "the champion's score is unknown: kept champion (`crnn promote` decides by hand)",
        )
    gain = challenger - champion if direction == "maximize" else champion - challenger
    needed = max(min_delta, min_relative * abs(champion))
    if gain > needed and gain > min_delta:
        return GateDecision(
            True, challenger, champion, f"beats champion by {gain:+.4f} (> {needed:g})"
        )
    return GateDecision(
        False,
        challenger,
        champion,
        f"improvement {gain:+.4f} is not > {needed:g}: kept champion",
    )
