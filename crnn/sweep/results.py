"""What a sweep reports, as typed records (no Optuna here: the flows and the CLI read them
without importing it): one row per trial, and the sweep's result."""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict


class TrialRow(TypedDict):
    """One trial as the sweep's summary, table and console show it."""

    trial: int
    state: str  # complete | pruned | failed | running | lost ...
    value: float | None
    params: dict[str, Any]
    epochs: int | None
    best_epoch: int | None
    checkpoint: str | None
    seconds: float | None
    run_id: str | None
    default: bool
    retry_of: int | None
    error: str | None


class SweepResult(TypedDict):
    """What a sweep found (:func:`summary`); the flow adds its registration."""

    study: str
    metric: str
    direction: str
    trials_finished: int
    trials_lost: int
    trials_complete: int
    trials_pruned: int
    trials_failed: int
    best: TrialRow | None
    default: TrialRow | None
    gain: float | None
    top: list[TrialRow]
    trials: list[TrialRow]
    registry: NotRequired[dict[str, Any]]  # the best trial's registration (the flow adds it)
