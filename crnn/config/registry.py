"""The ``registry:`` section (the gate a challenger passes to become champion), and the classical
baseline of ``evaluation.baseline`` resolved against the task kind, the source and the gate."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from crnn.config.base import Frozen
from crnn.config.evaluation import EvaluationConfig
from crnn.types.kinds import TaskKind

BASELINE_METRICS = ("accuracy", "precision_macro", "recall_macro", "f1_macro")  # what it scores


class RegistryConfig(Frozen):
    model_name: str | None = Field(None, description="Registered model; default crnn-<pipeline>.")
    metric: str | None = Field(
        None,
        description="Gate metric; default test_sequence_accuracy (ctc), test_accuracy or "
        "test_rmse (regression).",
    )
    direction: Literal["maximize", "minimize"] | None = Field(
        None, description="Default follows the metric: minimize errors and losses."
    )
    min_delta: float = Field(0.0, ge=0, description="Required improvement over the champion.")
    min_relative: float = Field(
        0.0, ge=0, description="Required relative improvement (0.01: 1 % of the champion's score)."
    )
    first_champion_margin: float | None = Field(
        0.1,
        ge=0,
        description="A first champion must beat the trivial predictor (the most common label or "
        "string, the training mean) on the gate metric by this share of its score; null: off.",
    )
    min_score: float | None = Field(
        None, description="A first champion must also beat this gate-metric score."
    )
    beat_baseline: bool = Field(
        False,
        description="A challenger must also beat the classical baseline (evaluation.baseline) "
        "scored in its own run on the gate metric; classification only.",
    )


def resolve_baseline(
    evaluation: EvaluationConfig, registry: RegistryConfig, kind: TaskKind, source: type[Any]
) -> EvaluationConfig:
    """``evaluation.baseline`` with ``auto`` replaced by the source's own classical baseline
    (``classical_baseline`` of its config class: tfidf for texts, mfcc for audio, svc for
    images) in a classification pipeline, and by none in any other; a ValueError for a baseline
    that does not fit the kind, the source or ``registry.beat_baseline``."""
    own: str = getattr(source, "classical_baseline", "svc")
    chosen: str | None = evaluation.baseline
    if chosen == "auto":
        chosen = own if kind.baseline else None
    elif chosen is not None and not kind.baseline:
        raise ValueError("evaluation.baseline needs a classification pipeline; remove it")
    elif chosen is not None and chosen not in (own, "svc"):
        raise ValueError(
            f"evaluation.baseline {chosen!r} does not fit this source's inputs; use {own!r} "
            "(or auto)"
        )
    if registry.beat_baseline:
        metric = str(registry.metric)
        if chosen is None:
            raise ValueError("registry.beat_baseline needs evaluation.baseline; set it or drop it")
        if metric.removeprefix("test_") not in BASELINE_METRICS or not metric.startswith("test_"):
            allowed = ", ".join(f"test_{m}" for m in BASELINE_METRICS)
            raise ValueError(
                f"registry.beat_baseline: the baseline scores {allowed}, not {metric!r}"
            )
    return evaluation.model_copy(update={"baseline": chosen})
