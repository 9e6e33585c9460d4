"""Every metric is declared once, with its direction, where it is computed (crnn/metrics.py):
early stopping, the gate and sweeps read the direction from there, never from a name's suffix."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from crnn.config import PipelineConfig
from crnn.metrics import (
    METRICS,
    classification_metrics,
    metric_direction,
    metric_mode,
    regression_metrics,
    sequence_metrics,
)
from crnn.types.kinds import KINDS, validation_metrics


def test_every_metric_the_project_computes_is_declared() -> None:
    computed = {
        *sequence_metrics(["12", "3"], ["12", "4"]),
        *classification_metrics(np.array([0, 1, 1]), np.array([0, 1, 0])),
        *regression_metrics(np.array([1.0, 2.0]), np.array([1.5, 2.0])),
    }
    validated = {name for kind in KINDS.values() for name in validation_metrics(kind)}
    gated = {kind.gate_metric for kind in KINDS.values()} | {k.monitor for k in KINDS.values()}
    for name in computed | validated | gated:
        assert metric_direction(name) in ("minimize", "maximize"), name
    assert computed <= set(METRICS)


@pytest.mark.parametrize(
    ("name", "direction"),
    [
        ("val_cer", "minimize"),
        ("val/loss", "minimize"),
        ("test/accuracy", "maximize"),
        ("test_sequence_accuracy", "maximize"),
        ("trivial_test_cer", "minimize"),
        ("baseline_svc_test_accuracy", "maximize"),
        ("baseline/tfidf_test_f1_macro", "maximize"),
        ("test_r2", "maximize"),
        ("val_rmse", "minimize"),
        # declared, not guessed: a suffix alone decides nothing
        ("test_f1_macro", "maximize"),
    ],
)
def test_directions_come_from_the_declarations(name: str, direction: str) -> None:
    assert metric_direction(name) == direction
    assert metric_mode(name) == ("min" if direction == "minimize" else "max")


def _pipeline(**registry: object) -> PipelineConfig:
    return PipelineConfig.model_validate(
        {
            "name": "p",
            "data": {"source": "digits"},
            "model": {"head": "classification"},
            "registry": registry,
        }
    )


def test_an_undeclared_gate_metric_needs_its_direction_in_one_line() -> None:
    with pytest.raises(ValidationError) as caught:
        _pipeline(metric="test_kappa")
    message = str(caught.value)
    assert "registry.metric 'test_kappa': no metric 'kappa' is declared" in message
    assert "give its direction beside it" in message
    assert _pipeline(metric="test_kappa", direction="maximize").registry.direction == "maximize"
    assert _pipeline(metric="test_precision_macro").registry.direction == "maximize"
