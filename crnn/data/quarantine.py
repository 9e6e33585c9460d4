"""Validation and quarantine: bad records are set aside with a reason, counted, never dropped."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from crnn.atomic import atomic_path
from crnn.types.records import QuarantineCounts, Quarantined

if TYPE_CHECKING:
    from crnn.tasks.base import Task
    from crnn.types.records import Chunk

QUARANTINE_NAME = "quarantine.parquet"


def validate_chunk(chunk: Chunk, task: Task) -> tuple[Chunk, list[Quarantined]]:
    """Split a chunk into its valid rows and quarantine records for the others.

    Checks: non-finite inputs, then the task's checks of the targets (labels outside the label
    map, empty texts or unknown characters, non-finite numbers: :meth:`Task.invalid`).
    """
    n = len(chunk)
    if n == 0:
        return chunk, []
    flat = np.asarray(chunk.inputs).reshape(n, -1)
    reasons: list[str | None] = [None] * n
    details: list[str] = [""] * n
    finite = np.isfinite(flat).all(axis=1)
    for row in np.flatnonzero(~finite):
        reasons[row], details[row] = "non_finite", "input holds NaN or inf"
    for i, reason, detail in task.invalid(chunk):
        reasons[i] = reasons[i] or reason
        details[i] = details[i] or detail
    keep = np.array([r is None for r in reasons], dtype=bool)
    if keep.all():
        return chunk, []
    bad = [
        Quarantined(
            chunk.sample_ids[i], chunk.split, chunk.sample_ids[i], reasons[i] or "", details[i]
        )
        for i in np.flatnonzero(~keep)
    ]
    return _select(chunk, keep), bad


def drop_unseen_labels(
    chunk: Chunk, seen: set[int], classes: tuple[str, ...]
) -> tuple[Chunk, list[Quarantined]]:
    """A validation or test chunk without the records whose class no training record has (a
    split given by the dataset can hold one): the model cannot learn it, and scoring it would
    only count as errors. They are quarantined as ``unseen_label``."""
    if chunk.labels is None or not len(chunk):
        return chunk, []
    labels = np.asarray(chunk.labels)
    keep = np.isin(labels, list(seen))
    if keep.all():
        return chunk, []
    names = [classes[v] if 0 <= v < len(classes) else str(v) for v in map(int, labels)]
    bad = [
        Quarantined(
            chunk.sample_ids[i],
            chunk.split,
            chunk.sample_ids[i],
            "unseen_label",
            f"class {names[i]!r} has no record in the training split",
        )
        for i in np.flatnonzero(~keep)
    ]
    return _select(chunk, keep), bad


def _select(chunk: Chunk, keep: np.ndarray) -> Chunk:
    idx = np.flatnonzero(keep)
    return replace(
        chunk,
        sample_ids=[chunk.sample_ids[i] for i in idx],
        inputs=np.asarray(chunk.inputs)[idx],
        texts=None if chunk.texts is None else [chunk.texts[i] for i in idx],
        labels=None if chunk.labels is None else np.asarray(chunk.labels)[idx],
        values=None if chunk.values is None else np.asarray(chunk.values)[idx],
        widths=None if chunk.widths is None else np.asarray(chunk.widths)[idx],
        quarantined=[],
    )


def count_quarantined(
    records: list[Quarantined], input_records: int, file: Path
) -> QuarantineCounts:
    """The manifest's account of ``records``: counted by reason, beside the records read in all
    and the quarantine ``file``."""
    by_reason = dict(sorted(Counter(r.reason for r in records).items()))
    return QuarantineCounts(len(records), by_reason, input_records, file.name)


def write_quarantine(root: Path, records: list[Quarantined]) -> Path:
    """The quarantine file: one row per record with its reason (written even when empty)."""
    path = root / QUARANTINE_NAME
    columns = ["sample_id", "split", "origin", "reason", "detail"]
    frame = pd.DataFrame([asdict(r) for r in records], columns=columns).astype(str)
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)
    return path
