"""The facts of each task kind that the configuration needs, without torch: its head, its target,
its default early-stopping monitor and registry gate, and what a prediction is.

The behaviour of a kind (loss, decoding, metrics, shard columns) is its :class:`crnn.tasks.Task`
subclass, which reads these facts from here; nothing else compares kind names.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class TargetSpec:
    """What a sample's target is: a character sequence over ``charset`` (kind ``sequence``), one
    of ``classes`` (``class``), or a number (``value``), standardized with ``mean`` / ``std`` fit
    on the training split (the network learns ``(y - mean) / std``)."""

    kind: str
    charset: str = ""
    classes: tuple[str, ...] = ()
    mean: float = 0.0
    std: float = 1.0

    @property
    def task_kind(self) -> TaskKind:
        return kind_for_target(self.kind)

    @property
    def num_outputs(self) -> int:
        """Network outputs: characters + the CTC blank, classes, or one number."""
        return self.task_kind.outputs(self)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "charset": self.charset,
            "classes": list(self.classes),
            "mean": self.mean,
            "std": self.std,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TargetSpec:
        return cls(
            kind=d["kind"],
            charset=d.get("charset", ""),
            classes=tuple(d.get("classes", ())),
            mean=float(d.get("mean", 0.0)),
            std=float(d.get("std", 1.0)),
        )

    def encode(self, text: str) -> list[int]:
        """Characters -> CTC class indices (1..len(charset)); 0 is the blank."""
        index = {c: i + 1 for i, c in enumerate(self.charset)}
        return [index[c] for c in text]


@dataclass(frozen=True)
class TaskKind:
    """One task kind, declared once.

    Attributes:
        name: the kind's name (``sequence``, ``classification``, ``regression``).
        head: the ``model.head`` that selects it.
        target: the :class:`TargetSpec` kind its sources produce.
        monitor: the default early-stopping metric (its direction: :mod:`crnn.metrics`).
        gate_metric: the default registry gate metric (its direction: :mod:`crnn.metrics`).
        prediction: the pyfunc's output column and its type (``string`` or ``double``).
        outputs: the network's outputs for a target spec.
        losses: the training losses it can use (``training.loss``), the default first.
        validation: what validation reports each epoch (``val_<name>``, beside ``val_loss``).
        baseline: whether the classical baseline (``evaluation.baseline``) applies.
        any_width: whether an image model of the kind reads inputs of any width (a CTC line
            model: the RNN and CTC run over however many frames the width gives).
    """

    name: str
    head: str
    target: str
    monitor: str
    gate_metric: str
    prediction: tuple[str, str]
    outputs: Callable[[TargetSpec], int] = field(repr=False)
    losses: tuple[str, ...] = ()
    validation: tuple[str, ...] = ()
    baseline: bool = False
    any_width: bool = False


SEQUENCE = TaskKind(
    "sequence",
    head="ctc",
    target="sequence",
    monitor="val_cer",
    gate_metric="test_sequence_accuracy",
    prediction=("text", "string"),
    outputs=lambda spec: len(spec.charset) + 1,
    losses=("ctc",),
    validation=("cer", "sequence_accuracy"),
    any_width=True,
)
CLASSIFICATION = TaskKind(
    "classification",
    head="classification",
    target="class",
    monitor="val_accuracy",
    gate_metric="test_accuracy",
    prediction=("prediction", "string"),
    outputs=lambda spec: len(spec.classes),
    losses=("cross_entropy",),
    validation=("accuracy",),
    baseline=True,
)
REGRESSION = TaskKind(
    "regression",
    head="regression",
    target="value",
    monitor="val_rmse",
    gate_metric="test_rmse",
    prediction=("prediction", "double"),
    outputs=lambda spec: 1,
    losses=("mse", "huber"),
    validation=("rmse", "mae", "r2"),
)
KINDS: dict[str, TaskKind] = {k.name: k for k in (SEQUENCE, CLASSIFICATION, REGRESSION)}


def kind_for_head(head: str) -> TaskKind:
    return _kind("head", head)


def kind_for_target(target: str) -> TaskKind:
    return _kind("target", target)


def _kind(field_name: str, value: str) -> TaskKind:
    for kind in KINDS.values():
        if getattr(kind, field_name) == value:
            return kind
    known = ", ".join(getattr(k, field_name) for k in KINDS.values())
    raise KeyError(f"unknown {field_name} {value!r}; known: {known}")


def parse_value(text: str) -> float | None:
    """A numeric target read from its text (``3``, ``-0.5``, ``1e3``); None unless finite."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def validation_metrics(kind: TaskKind) -> tuple[str, ...]:
    """Every metric an epoch's validation reports for ``kind``, by product name."""
    return ("val_loss", *(f"val_{name}" for name in kind.validation))
