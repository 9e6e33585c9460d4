import numpy as np
import pytest

from crnn.metrics import GAP, align, classification_metrics, sequence_metrics
from crnn.tasks import TargetSpec, task_for


@pytest.mark.parametrize(
    ("truth", "pred", "distance"),
    [
        ("", "", 0),
        ("123", "123", 0),
        ("123", "13", 1),
        ("123", "1234", 1),
        ("123", "193", 1),
        ("kitten", "sitting", 3),
        ("", "12", 2),
        ("12", "", 2),
    ],
)
def test_edit_distance(truth: str, pred: str, distance: int) -> None:
    d, pairs = align(truth, pred)
    assert d == distance
    assert "".join(a for a, _ in pairs if a != GAP) == truth
    assert "".join(b for _, b in pairs if b != GAP) == pred
    assert sum(a != b for a, b in pairs) == distance


def test_sequence_metrics() -> None:
    m = sequence_metrics(["123", "45", "6789"], ["123", "4", "6780"])
    assert m["sequence_accuracy"] == pytest.approx(1 / 3)
    assert m["cer"] == pytest.approx(2 / 9)


def test_character_report_counts_aligned_characters(tmp_path) -> None:
    from crnn.tasks.base import label_report

    pairs = [p for t, q in (("112", "12"), ("3", "3")) for p in align(t, q)[1]]
    rep = label_report([a for a, _ in pairs], [b for _, b in pairs], [*"0123", GAP], list("0123"))
    labels = rep["labels"]
    cm = np.array(rep["confusion_matrix"])
    one, gap = labels.index("1"), labels.index(GAP)
    assert cm[one, one] == 1 and cm[one, gap] == 1  # one '1' deleted
    assert cm[labels.index("3"), labels.index("3")] == 1
    assert "precision" in rep["text"]
    assert 0 < rep["recall_macro"] < 1
    task = task_for(TargetSpec(kind="sequence", charset="0123"))
    extra, files = task.report(["112", "3"], ["12", "3"], tmp_path)
    assert extra["char_recall_macro"] == pytest.approx(rep["recall_macro"])
    assert {f.name for f in files} == {"classification_report.txt", "confusion_matrix.png"}


def test_classification_metrics_against_hand_counts() -> None:
    m = classification_metrics(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]))
    assert m["accuracy"] == 0.75
    assert m["precision_macro"] == pytest.approx((1 + 2 / 3) / 2)
    assert m["recall_macro"] == pytest.approx((0.5 + 1) / 2)
