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
    if not math.isfinite(challenger):
        return GateDecision(False, challenger, champion, f"challenger score is {challenger}")
    if baseline is not None and not (
        challenger > baseline if direction == "maximize" else challenger < baseline
    ):  # a comparison with NaN is False: a missing baseline is not beaten
        return GateDecision(
            False,
            challenger,
            champion,
            f"{challenger:.4f} does not beat the classical baseline's {baseline:.4f} "
            "(registry.beat_baseline)",
        )
    if champion is None:
        beats = floor is None or (
            challenger > floor if direction == "maximize" else challenger < floor
        )
        if not beats:
            return GateDecision(
                False,
                challenger,
                champion,
                f"no champion yet, and {challenger:.4f} does not beat the first-champion floor "
                f"{floor:.4f} (the trivial predictor by registry.first_champion_margin, or "
                f"registry.min_score)",
            )
        return GateDecision(True, challenger, champion, "the first version, no champion yet")
    if not math.isfinite(champion):  # a champion whose score is unknown is not beaten by default
        return GateDecision(
            False,
            challenger,
            champion,
            "the champion's score is unknown (`crnn promote` decides by hand)",
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
        f"improvement {gain:+.4f} is not > {needed:g}",
    )
