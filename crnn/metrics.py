"""Pure metrics, each declared once with its direction (:data:`METRICS`): edit distances for
sequences through rapidfuzz (a small compiled library without dependencies, allowed in the core)
rather than a Python double loop; scikit-learn for classes and numbers.

Whether a metric is better high or low is read from its declaration here, never guessed from its
name: early stopping, the registry gate and sweeps ask :func:`metric_direction`. numpy, scikit-learn
and rapidfuzz are imported when a metric is computed: the configuration reads directions for free.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from crnn.metric_names import BASELINES, GROUPS, TRIVIAL, product_name

if TYPE_CHECKING:
    import numpy as np

GAP = "∅"  # stands for a missing character in an alignment (insertion / deletion)
Direction = Literal["minimize", "maximize"]


@dataclass(frozen=True)
class Metric:
    """A metric the project computes: its name (without the split: ``cer``, not ``val_cer``),
    whether a lower or a higher value is better, and what it measures."""

    name: str
    direction: Direction
    means: str


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("loss", "minimize", "the training loss (CTC, cross-entropy, MSE or Huber)"),
        Metric("cer", "minimize", "character edits / true characters"),
        Metric("wer", "minimize", "word edits / true words"),
        Metric("sequence_accuracy", "maximize", "share of strings read exactly"),
        Metric("accuracy", "maximize", "share of labels predicted exactly"),
        Metric("precision_macro", "maximize", "precision, averaged over classes"),
        Metric("recall_macro", "maximize", "recall, averaged over classes"),
        Metric("f1_macro", "maximize", "F1, averaged over classes"),
        Metric("mae", "minimize", "mean absolute error"),
        Metric("rmse", "minimize", "root mean squared error"),
        Metric("r2", "maximize", "coefficient of determination"),
    )
}


def metric_of(name: str, where: str = "metric") -> Metric:
    """The declared metric behind a product or MLflow name (``val_cer``, ``test/accuracy``,
    ``trivial_test_cer``, ``baseline_tfidf_test_accuracy``); a ValueError saying so at ``where``
    (the config key that named it) and listing the declared ones."""
    base = product_name(name)
    scored = (f"baseline_{b}_{split}_" for b in BASELINES for split in ("val", "test"))
    for prefix in (TRIVIAL, *scored, *(f"{group}_" for group in GROUPS)):
        if base.startswith(prefix):
            base = base[len(prefix) :]
            break
    if base not in METRICS:
        raise ValueError(
            f"{where} {name!r}: no metric {base!r} is declared (known: {', '.join(METRICS)}); "
            "name one of them, or give its direction beside it"
        )
    return METRICS[base]


def metric_direction(name: str, where: str = "metric") -> Direction:
    """``minimize`` for losses, error rates and errors; ``maximize`` for accuracies, F1, R2."""
    return metric_of(name, where).direction


def metric_mode(name: str, where: str = "metric") -> str:
    """Early stopping's spelling of :func:`metric_direction`: ``min`` or ``max``."""
    return "min" if metric_direction(name, where) == "minimize" else "max"


def align(truth: str, pred: str) -> tuple[int, list[tuple[str, str]]]:
    """Levenshtein distance and one optimal alignment as (true_char, predicted_char) pairs.

    Deleted characters pair with GAP on the predicted side, inserted ones on the true side.
    """
    from rapidfuzz.distance import Levenshtein

    pairs: list[tuple[str, str]] = []
    for op in Levenshtein.opcodes(truth, pred):
        said, read = truth[op.src_start : op.src_end], pred[op.dest_start : op.dest_end]
        if op.tag in ("equal", "replace"):
            pairs += zip(said, read, strict=True)
        elif op.tag == "delete":
            pairs += [(c, GAP) for c in said]
        else:  # insert
            pairs += [(GAP, c) for c in read]
    return sum(a != b for a, b in pairs), pairs


def sequence_metrics(truths: Sequence[str], preds: Sequence[str]) -> dict[str, float]:
    """sequence_accuracy (exact match), cer (character edits / true characters) and wer (word
    edits / true words; words split on whitespace)."""
    from rapidfuzz.distance import Levenshtein

    pairs = list(zip(truths, preds, strict=True))
    char_edits = sum(Levenshtein.distance(t, p) for t, p in pairs)
    word_edits = sum(Levenshtein.distance(t.split(), p.split()) for t, p in pairs)
    return {
        "sequence_accuracy": sum(t == p for t, p in pairs) / max(len(pairs), 1),
        "cer": char_edits / max(sum(len(t) for t in truths), 1),
        "wer": word_edits / max(sum(len(t.split()) for t in truths), 1),
    }


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """accuracy, and macro-averaged precision, recall and F1."""
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, average="macro", zero_division=0)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "precision_macro": float(p),
        "recall_macro": float(r),
        "f1_macro": float(f),
    }


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """mae, rmse and r2 (NaN for fewer than two values: undefined)."""
    import numpy as np
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    return {
        "mae": float(mean_absolute_error(y_true, y_pred)),
        "rmse": float(np.sqrt(mean_squared_error(y_true, y_pred))),
        "r2": float(r2_score(y_true, y_pred)) if len(y_true) > 1 else float("nan"),
    }
