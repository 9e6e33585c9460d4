import math

import pytest

from crnn.tracking.promotion import decide_promotion


def test_first_version_becomes_champion() -> None:
    d = decide_promotion(0.5, None, "maximize", 0.01)
    assert d.promote and "first" in d.reason


@pytest.mark.parametrize(
    ("challenger", "champion", "direction", "delta", "promote"),
    [
        (0.95, 0.94, "maximize", 0.0, True),
        (0.94, 0.94, "maximize", 0.0, False),  # a tie never promotes
        (0.93, 0.94, "maximize", 0.0, False),
        (0.945, 0.94, "maximize", 0.01, False),  # better, but not by the margin
        (0.951, 0.94, "maximize", 0.01, True),
        (0.02, 0.03, "minimize", 0.0, True),
        (0.03, 0.02, "minimize", 0.0, False),
        (0.025, 0.03, "minimize", 0.01, False),
    ],
)
def test_gate(
    challenger: float, champion: float, direction: str, delta: float, promote: bool
) -> None:
    d = decide_promotion(challenger, champion, direction, delta)
    assert d.promote is promote
    assert d.challenger == challenger and d.champion == champion


def test_nan_challenger_never_promotes_and_bad_direction() -> None:
    assert not decide_promotion(math.nan, 0.1, "maximize", 0).promote
    assert not decide_promotion(math.nan, None, "maximize", 0).promote
    with pytest.raises(ValueError, match="maximize or minimize"):
        decide_promotion(1, 0, "up", 0)


def test_a_champion_with_an_unknown_score_is_not_replaced_silently() -> None:
    d = decide_promotion(0.10, math.nan, "maximize", 0)
    assert not d.promote and "score is unknown" in d.reason


def test_first_champion_floor() -> None:
    from crnn.tracking.promotion import first_champion_floor

    assert first_champion_floor("maximize", 0.5, 0.1, None) == pytest.approx(0.55)
    assert first_champion_floor("minimize", 2.0, 0.1, None) == pytest.approx(1.8)  # an RMSE
    assert first_champion_floor("maximize", 0.5, 0.1, 0.9) == 0.9  # the stricter of the two
    assert first_champion_floor("minimize", 2.0, 0.1, 1.0) == 1.0
    assert first_champion_floor("maximize", None, 0.1, None) is None
    assert first_champion_floor("maximize", 0.5, None, None) is None  # switched off
    assert not decide_promotion(0.55, None, "maximize", 0.0, floor=0.55).promote  # strictly
    assert decide_promotion(0.56, None, "maximize", 0.0, floor=0.55).promote
    assert decide_promotion(1.7, None, "minimize", 0.0, floor=1.8).promote
    assert not decide_promotion(1.9, None, "minimize", 0.0, floor=1.8).promote


def test_beat_baseline_holds_every_challenger_to_the_classical_baseline() -> None:
    below = decide_promotion(0.74, None, "maximize", 0.0, baseline=0.77)
    assert not below.promote and "classical baseline" in below.reason
    assert decide_promotion(0.80, 0.70, "maximize", 0.0, baseline=0.77).promote
    assert not decide_promotion(0.80, 0.70, "maximize", 0.0, baseline=float("nan")).promote
    assert decide_promotion(0.1, None, "minimize", 0.0, baseline=0.2).promote  # an error rate
