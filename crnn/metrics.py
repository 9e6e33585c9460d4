"""Pure metrics: scikit-learn for classes; edit distances for sequences through rapidfuzz (a small
compiled library without dependencies, allowed in the core) rather than a Python double loop."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from rapidfuzz.distance import Levenshtein
from sklearn.metrics import accuracy_score, precision_recall_fscore_support

GAP = "∅"  # stands for a missing character in an alignment (insertion / deletion)


def align(truth: str, pred: str) -> tuple[int, list[tuple[str, str]]]:
    """Levenshtein distance and one optimal alignment as (true_char, predicted_char) pairs.

    Deleted characters pair with GAP on the predicted side, inserted ones on the true side.
    """
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
    pairs = list(zip(truths, preds, strict=True))
    char_edits = sum(Levenshtein.distance(t, p) for t, p in pairs)
    word_edits = sum(Levenshtein.distance(t.split(), p.split()) for t, p in pairs)
    return {
        "sequence_accuracy": sum(t == p for t, p in pairs) / max(len(pairs), 1),
        "cer": char_edits / max(sum(len(t) for t in truths), 1),
        "wer": word_edits / max(sum(len(t.split()) for t in truths), 1),
    }


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, average="macro", zero_division=0)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "precision_macro": float(p),
        "recall_macro": float(r),
        "f1_macro": float(f),
    }
