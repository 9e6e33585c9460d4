"""The evaluation report: test metrics, per-character or per-class reports, plots, predictions."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import classification_report, confusion_matrix, precision_recall_fscore_support

from crnn.config import EvaluationConfig
from crnn.metrics import GAP, align, classification_metrics, sequence_metrics


def character_report(truths: Sequence[str], preds: Sequence[str], charset: str) -> dict[str, Any]:
    """Per-character precision / recall / F1 and confusion matrix over aligned characters."""
    pairs = [p for t, q in zip(truths, preds, strict=True) for p in align(t, q)[1]]
    y_true = [a for a, _ in pairs]
    y_pred = [b for _, b in pairs]
    labels = [*charset, GAP]
    return _report(y_true, y_pred, labels, report_labels=list(charset))


def class_report(
    y_true: Sequence[str], y_pred: Sequence[str], classes: Sequence[str]
) -> dict[str, Any]:
    return _report(list(y_true), list(y_pred), list(classes), report_labels=list(classes))


def _report(
    y_true: list[str], y_pred: list[str], labels: list[str], report_labels: list[str]
) -> dict[str, Any]:
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


# ------------------------------------------------------------------------ evaluation of a run


@dataclass
class EvalReport:
    metrics: dict[str, float]  # test_* metrics
    predictions_path: Path  # Parquet: sample_id, truth, prediction, confidence, correct
    artifacts: list[Path] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)  # rows of the sample table
    sample_images: np.ndarray | None = None  # (N, H, W) inputs of those rows, source units
    seconds: float = 0.0  # to score, report and plot


def evaluate_checkpoint(
    checkpoint: Path, manifest_path: Path, out_dir: Path, cfg: EvaluationConfig
) -> EvalReport:
    """Score the test split with the checkpoint; write metrics, report, plots and predictions."""
    from crnn.data.loader import load_split
    from crnn.inference import Predictor
    from crnn.plots import plot_confusion_matrix, plot_learning_curves

    out_dir.mkdir(parents=True, exist_ok=True)
    predictor = Predictor.from_checkpoint(checkpoint)
    test = load_split(manifest_path, "test")
    preds = predictor.predict_normalized(test.inputs)
    truths, metrics, report = score_test(predictor.target, test, preds.outputs)

    predictions = pd.DataFrame(
        {
            "sample_id": test.sample_ids,
            "truth": truths,
            "prediction": preds.outputs,
            "confidence": preds.confidence,
            "correct": [t == p for t, p in zip(truths, preds.outputs, strict=True)],
        }
    )
    predictions_path = out_dir / "test_predictions.parquet"
    predictions.to_parquet(predictions_path, index=False)
    (out_dir / "test_metrics.json").write_text(json.dumps(metrics, indent=2))
    (out_dir / "classification_report.txt").write_text(report["text"])
    artifacts = [
        out_dir / "test_metrics.json",
        out_dir / "classification_report.txt",
        plot_confusion_matrix(
            report["confusion_matrix"], report["labels"], out_dir / "confusion_matrix.png"
        ),
    ]
    history_path = checkpoint.parent / "history.json"
    if history_path.is_file():
        history = json.loads(history_path.read_text())
        artifacts.append(plot_learning_curves(history, out_dir / "learning_curves.png"))

    samples, raw, figure = sample_figure(cfg, predictor, test, predictions, out_dir)
    if figure is not None:
        artifacts.append(figure)
    metrics["test_samples"] = float(len(test))
    return EvalReport(metrics, predictions_path, artifacts, samples, raw)


def score_test(
    target: Any, test: Any, outputs: list[str]
) -> tuple[list[str], dict[str, float], Any]:
    """The truths, the test metrics and the per-label report of ``outputs`` on ``test``."""
    if target.kind == "sequence":
        assert test.texts is not None
        truths = list(test.texts)
        seq = sequence_metrics(truths, outputs)
        report = character_report(truths, outputs, target.charset)
        metrics = {
            "test_sequence_accuracy": seq["sequence_accuracy"],
            "test_cer": seq["cer"],
            "test_wer": seq["wer"],
            "test_char_precision_macro": report["precision_macro"],
            "test_char_recall_macro": report["recall_macro"],
            "test_char_f1_macro": report["f1_macro"],
        }
        return truths, metrics, report
    assert test.labels is not None
    truths = [target.classes[i] for i in test.labels.tolist()]
    report = class_report(truths, outputs, target.classes)
    scores = classification_metrics(np.asarray(truths), np.asarray(outputs))
    return truths, {f"test_{k}": v for k, v in scores.items()}, report


def sample_figure(
    cfg: EvaluationConfig, predictor: Any, test: Any, predictions: pd.DataFrame, out_dir: Path
) -> tuple[list[dict[str, Any]], np.ndarray | None, Path | None]:
    """Test samples shown with their images, mistakes first (what a reader of the run wants to
    see): the rows, their inputs in source units, and the figure (None for non-image inputs)."""
    from crnn.plots import plot_samples

    if not cfg.sample_predictions or len(predictor.input_shape) < 3:
        return [], None, None
    order = np.argsort(predictions["correct"].to_numpy(), kind="stable")[: cfg.sample_predictions]
    raw = predictor.normalizer.inverse_transform(test.inputs[order].numpy())
    chosen = predictions.iloc[order]
    figure = plot_samples(
        raw, list(chosen["truth"]), list(chosen["prediction"]), out_dir / "sample_predictions.png"
    )
    return chosen.to_dict(orient="records"), raw, figure
