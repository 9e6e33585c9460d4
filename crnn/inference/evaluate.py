"""The evaluation report: test metrics, the task's report (per-character, per-class or residual),
plots, predictions."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from crnn.atomic import atomic_path, atomic_write_text
from crnn.config import EvaluationConfig

if TYPE_CHECKING:
    from crnn.tasks.base import Task

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
    from crnn.inference.decoder import decoder_record
    from crnn.inference.predictor import Predictor
    from crnn.plots import plot_learning_curves

    out_dir.mkdir(parents=True, exist_ok=True)
    predictor = Predictor.from_checkpoint(checkpoint, decoder=decoder_record(cfg.decoder) or None)
    task = predictor.task
    test = load_split(manifest_path, "test")
    preds = predictor.predict_normalized(test.inputs)
    truths = task.truths(test)
    metrics = {f"test_{k}": v for k, v in task.metrics(truths, preds.outputs).items()}
    extra, report_files = task.report(truths, preds.outputs, out_dir)
    metrics.update({f"test_{k}": v for k, v in extra.items()})
    metrics.update(trivial_metrics(task, manifest_path, truths))

    predictions = pd.DataFrame(
        {
            "sample_id": test.sample_ids,
            "truth": truths,
            "prediction": preds.outputs,
            "confidence": preds.confidence,
            "error": task.errors(truths, preds.outputs),  # 1/0 wrong/right, or |error|
        }
    )
    predictions_path = out_dir / "test_predictions.parquet"
    with atomic_path(predictions_path) as tmp:
        predictions.to_parquet(tmp, index=False)
    atomic_write_text(out_dir / "test_metrics.json", json.dumps(metrics, indent=2))
    artifacts = [out_dir / "test_metrics.json", *report_files]
    history_path = checkpoint.parent / "history.json"
    if history_path.is_file():
        history = json.loads(history_path.read_text())
        artifacts.append(plot_learning_curves(history, out_dir / "learning_curves.png"))

    samples, raw, figure = sample_figure(cfg, predictor, test, predictions, out_dir)
    if figure is not None:
        artifacts.append(figure)
    metrics["test_samples"] = float(len(test))
    return EvalReport(metrics, predictions_path, artifacts, samples, raw)


def trivial_metrics(task: Task, manifest_path: Path, truths: list[Any]) -> dict[str, float]:
    """The test metrics of the trivial predictor fit on the training targets (the most common
    label or string, the mean), as ``trivial_test_*``: the floor a first champion must clear."""
    from crnn.data.loader import load_targets

    constant = task.trivial(task.truths(load_targets(manifest_path, "train")))
    scores = task.metrics(truths, [constant] * len(truths))
    return {f"trivial_test_{k}": v for k, v in scores.items()}


def sample_figure(
    cfg: EvaluationConfig, predictor: Any, test: Any, predictions: pd.DataFrame, out_dir: Path
) -> tuple[list[dict[str, Any]], np.ndarray | None, Path | None]:
    """Test samples shown with their images, mistakes first (what a reader of the run wants to
    see): the rows, their inputs in source units, and the figure (None for non-image inputs)."""
    from crnn.plots import plot_samples

    if not cfg.sample_predictions or len(predictor.input_shape) < 3:
        return [], None, None
    worst_first = -predictions["error"].to_numpy()
    order = np.argsort(worst_first, kind="stable")[: cfg.sample_predictions]
    raw = predictor.normalizer.inverse_transform(test.inputs[order].numpy())
    chosen = predictions.iloc[order]
    show = predictor.task.show
    figure = plot_samples(
        raw,
        [show(t) for t in chosen["truth"]],
        [show(p) for p in chosen["prediction"]],
        out_dir / "sample_predictions.png",
    )
    return chosen.to_dict(orient="records"), raw, figure
