"""What a task kind does, as one object: a :class:`Task` bound to a :class:`TargetSpec`.

Everything that differs between kinds goes through it: the shard target columns and how the
loader turns them into tensors, the quarantine checks of raw targets, statistics fit on the
training targets, the loss, decoding network outputs into predictions, the validation and test
metrics, the evaluation report, and the trivial predictor that a first champion must beat.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pyarrow as pa
import torch
from sklearn.metrics import classification_report, confusion_matrix, precision_recall_fscore_support

from crnn.types.kinds import TargetSpec, TaskKind

if TYPE_CHECKING:
    from crnn.types.batches import Batch, SplitData
    from crnn.types.records import Chunk

Invalid = tuple[int, str, str]  # (row, reason, detail) of a raw target that cannot be used


class Task(ABC):
    """The behaviour of one task kind (see the module docstring)."""

    kind: ClassVar[TaskKind]
    infeasible_metric: ClassVar[str | None] = None  # train metric counting unusable targets

    def __init__(self, spec: TargetSpec, loss: str | None = None) -> None:
        """``loss``: one of the kind's ``losses`` (``training.loss``); None: its first."""
        if loss not in (None, *self.kind.losses):
            raise ValueError(f"loss {loss!r} does not apply to {self.kind.name}")
        self.spec, self.loss_name = spec, loss or self.kind.losses[0]

    # ----------------------------------------------------------------------------------- data

    @abstractmethod
    def fields(self) -> list[pa.Field]:
        """The shard columns of the target."""

    @abstractmethod
    def columns(self, chunk: Chunk) -> list[pa.Array]:
        """A chunk's targets as the arrays of :meth:`fields`, in order."""

    @property
    def column_names(self) -> list[str]:
        return [f.name for f in self.fields()]

    @abstractmethod
    def tensors(self, table: pa.Table) -> dict[str, np.ndarray]:
        """The target columns of ``table`` as :class:`crnn.data.loader.Batch` fields, one row
        per sample (the loader permutes and slices them)."""

    def split_fields(self, table: pa.Table) -> dict[str, Any]:
        """:class:`crnn.data.loader.SplitData` fields of a whole split (tensors and more)."""
        return {k: torch.from_numpy(v) for k, v in self.tensors(table).items()}

    def invalid(self, chunk: Chunk) -> list[Invalid]:
        """Rows of a raw chunk whose target cannot be used (quarantined, never dropped)."""
        return []

    def observe(self, chunk: Chunk) -> None:  # noqa: B027 (most kinds fit nothing)
        """Fold a valid training chunk into the statistics :meth:`fitted` returns."""

    def fitted(self) -> TargetSpec:
        """The target spec with statistics fit on the training chunks observed."""
        return self.spec

    # ---------------------------------------------------------------------------------- model

    @abstractmethod
    def loss(self, out: torch.Tensor, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean loss of a batch, and how many of its samples cannot be learned (on the device:
        reading them back would stall the GPU every step)."""

    @abstractmethod
    def decode(
        self, out: torch.Tensor, frames: torch.Tensor | None = None
    ) -> tuple[list[Any], np.ndarray]:
        """Network outputs -> predictions (strings, class names or numbers) and a confidence
        per sample (NaN where the kind has none). ``frames``: each sample's real output frames
        (inputs padded to a batch's widest), for kinds that decode over frames."""

    def char_confidences(
        self, out: torch.Tensor, frames: torch.Tensor | None, outputs: list[Any]
    ) -> list[list[float]] | None:
        """Per element of each decoded output (a character of a line), its probability; None
        where the kind's outputs have no parts."""
        return None

    def output_features(self, outputs: list[Any], confidence: np.ndarray) -> dict[str, np.ndarray]:
        """Per-sample statistics of predictions that drift monitoring compares with the
        training reference (:mod:`crnn.monitoring`): float arrays are numbers (compared by their
        distribution), integer arrays categories (by their frequencies)."""
        return {"output_confidence": np.asarray(confidence, np.float32)}

    # ------------------------------------------------------------------------------ metrics

    @abstractmethod
    def truths(self, data: SplitData) -> list[Any]:
        """The targets of a split, in the form :meth:`decode` predicts."""

    @abstractmethod
    def metrics(self, truths: Sequence[Any], preds: Sequence[Any]) -> dict[str, float]:
        """Metrics of predictions against the truths, unprefixed (``accuracy``, ``cer``...)."""

    def validation_metrics(self, truths: Sequence[Any], preds: Sequence[Any]) -> dict[str, float]:
        scores = self.metrics(truths, preds)
        return {f"val_{k}": scores[k] for k in self.kind.validation}

    @abstractmethod
    def report(
        self, truths: Sequence[Any], preds: Sequence[Any], out_dir: Path
    ) -> tuple[dict[str, float], list[Path]]:
        """The test report beyond :meth:`metrics`: extra test metrics and the files written
        (a text report, a figure)."""

    @abstractmethod
    def errors(self, truths: Sequence[Any], preds: Sequence[Any]) -> np.ndarray:
        """Per-sample error (1/0 for a wrong/right label or string, |error| for a number):
        the evaluation shows the worst samples first."""

    def show(self, value: Any) -> str:
        """A target or prediction as a short caption (sample galleries)."""
        return str(value)

    @abstractmethod
    def trivial(self, train: Sequence[Any]) -> Any:
        """The prediction of the trivial predictor fit on training targets (the most common
        label or string, the mean): a first champion must beat it."""


def label_report(
    y_true: list[str], y_pred: list[str], labels: list[str], report_labels: list[str]
) -> dict[str, Any]:
    """Macro precision / recall / F1, the confusion matrix and scikit-learn's text report."""
    p, r, f, _ = precision_recall_fscore_support(
        y_true, y_pred, labels=report_labels, average="macro", zero_division=0
    )
    return {
        "labels": labels,
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "text": classification_report(
            y_true, y_pred, labels=report_labels, zero_division=0, digits=4
        ),
        "precision_macro": float(p),
        "recall_macro": float(r),
        "f1_macro": float(f),
    }


def write_label_report(report: dict[str, Any], out_dir: Path) -> list[Path]:
    """classification_report.txt and confusion_matrix.png of a :func:`label_report`."""
    from crnn.atomic import atomic_write_text
    from crnn.plots import plot_confusion_matrix  # matplotlib: only when a report is written

    text = out_dir / "classification_report.txt"
    atomic_write_text(text, report["text"])
    figure = plot_confusion_matrix(
        report["confusion_matrix"], report["labels"], out_dir / "confusion_matrix.png"
    )
    return [text, figure]


def mismatches(truths: Sequence[Any], preds: Sequence[Any]) -> np.ndarray:
    return np.array([t != p for t, p in zip(truths, preds, strict=True)], dtype=np.float64)
