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


def first_champion_floor(
    direction: str, trivial: float | None, margin: float | None, min_score: float | None
) -> float | None:
    """The score a first champion must beat: the trivial predictor's (the most common label or
    string, the training mean) improved by ``margin`` times its size, and ``min_score``; the
    stricter of the two. None: no floor."""
    floors = []
    if trivial is not None and margin is not None and math.isfinite(trivial):
        step = margin * abs(trivial)
        floors.append(trivial + step if direction == "maximize" else trivial - step)
    if min_score is not None:
        floors.append(min_score)
    if not floors:
        return None
    return max(floors) if direction == "maximize" else min(floors)


def decide_promotion(
    challenger: float,
    champion: float | None,
    direction: str,
    min_delta: float,
    min_relative: float = 0.0,
    floor: float | None = None,
    baseline: float | None = None,
) -> GateDecision:
    """Promote when there is no champion yet and the challenger beats ``floor`` (see
    :func:`first_champion_floor`), or the challenger beats the champion by more than
    ``min_delta`` and by more than ``min_relative`` times the champion's score.

    Args:
        direction: "maximize" (higher is better) or "minimize".
        min_delta: the absolute improvement the challenger must exceed; a tie never promotes.
        min_relative: the relative improvement it must exceed (0.01: 1 %).
        floor: the score a first champion must beat (strictly); None: any finite score.
        baseline: the classical baseline's score in the challenger's own run, which every
            challenger must beat (strictly; NaN: no baseline, never beaten); None: no such rule.
    """
    if direction not in ("maximize", "minimize"):
        raise ValueError(f"direction must be maximize or minimize, got {direction!r}")
    why_not = refusal(challenger, champion, direction, floor, baseline)
    if why_not:
        return GateDecision(False, challenger, champion, why_not)
    if champion is None:
        return GateDecision(True, challenger, champion, "the first version, no champion yet")
    gain = challenger - champion if direction == "maximize" else champion - challenger
    needed = max(min_delta, min_relative * abs(champion))
    if gain > needed and gain > min_delta:
        return GateDecision(
            True, challenger, champion, f"beats champion by {gain:+.4f} (> {needed:g})"
        )
    return GateDecision(False, challenger, champion, f"improvement {gain:+.4f} is not > {needed:g}")


def beats(a: float, b: float, direction: str) -> bool:
    """``a`` strictly better than ``b`` (a comparison with NaN is False: never beaten)."""
    return a > b if direction == "maximize" else a < b


def refusal(
    challenger: float,
    champion: float | None,
    direction: str,
    floor: float | None,
    baseline: float | None,
) -> str | None:
    """Why the gate refuses before comparing with the champion's score; None: it does not."""
    if not math.isfinite(challenger):
        return f"challenger score is {challenger}"
    if baseline is not None and not beats(challenger, baseline, direction):
        return (
            f"{challenger:.4f} does not beat the classical baseline's {baseline:.4f} "
            "(registry.beat_baseline)"
        )
    if champion is None and floor is not None and not beats(challenger, floor, direction):
        return (
            f"no champion yet, and {challenger:.4f} does not beat the first-champion floor "
            f"{floor:.4f} (the trivial predictor by registry.first_champion_margin, or "
            "registry.min_score)"
        )
    if champion is not None and not math.isfinite(champion):  # unknown: not beaten by default
        return "the champion's score is unknown (`crnn promote` decides by hand)"
    return None
