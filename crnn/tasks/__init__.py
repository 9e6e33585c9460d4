"""Task kinds: sequence recognition (CTC), classification and regression, each defined once.

:mod:`crnn.types.kinds` holds the facts the configuration needs (head, target, default monitor and
gate), importable without torch; :func:`task_for` gives the behaviour of a target's kind (loss,
decoding, metrics, shard columns, quarantine checks) as a :class:`crnn.tasks.base.Task`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from crnn.types.kinds import (
    KINDS,
    TargetSpec,
    TaskKind,
    kind_for_head,
    kind_for_target,
)

if TYPE_CHECKING:
    from crnn.tasks.base import Task

__all__ = [
    "KINDS",
    "TargetSpec",
    "TaskKind",
    "kind_for_head",
    "kind_for_target",
    "task_for",
]


def task_for(spec: TargetSpec, loss: str | None = None) -> Task:
    """The behaviour of ``spec``'s kind, bound to it (charset, classes or target statistics);
    ``loss``: one of the kind's losses (``training.loss``), None for its default."""
    from crnn.tasks.catalog import TASKS  # torch and scikit-learn: only when a task is needed

    return TASKS[spec.kind](spec, loss)
