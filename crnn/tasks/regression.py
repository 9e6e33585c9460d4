"""Regression (``head: regression``): one number per input, learned with mean squared error (or
Huber) on the target standardized with the training split's mean and standard deviation (bundled
with the model, so predictions come back in the target's units); scored by MAE, RMSE and R2."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import torch
import torch.nn.functional as F

from crnn.metrics import regression_metrics
from crnn.normalization import Normalizer
from crnn.tasks.base import Invalid, Task
from crnn.types.kinds import REGRESSION, TargetSpec

if TYPE_CHECKING:
    from crnn.types.batches import Batch, SplitData
    from crnn.types.records import Chunk

HUBER_DELTA = 1.0  # in standard deviations of the target


class RegressionTask(Task):
    kind = REGRESSION

    def __init__(self, spec: TargetSpec, loss: str | None = None) -> None:
        super().__init__(spec, loss)
        self._stats = Normalizer("standardize")

    def fields(self) -> list[pa.Field]:
        return [pa.field("value", pa.float64(), nullable=False)]

    def columns(self, chunk: Chunk) -> list[pa.Array]:
        assert chunk.values is not None
        return [pa.array(np.asarray(chunk.values, dtype=np.float64))]

    def tensors(self, table: pa.Table) -> dict[str, np.ndarray]:
        return {"values": table.column("value").to_numpy().astype(np.float64)}

    def invalid(self, chunk: Chunk) -> list[Invalid]:
        if chunk.values is None:
            return []
        values = np.asarray(chunk.values, dtype=np.float64)
        return [
            (int(row), "non_finite_target", f"target {values[row]} is not a finite number")
            for row in np.flatnonzero(~np.isfinite(values))
        ]

    def observe(self, chunk: Chunk) -> None:
        if chunk.values is not None and len(chunk.values):
            self._stats.partial_fit(np.asarray(chunk.values, dtype=np.float64))

    def fitted(self) -> TargetSpec:
        stats = self._stats.stats_
        std = stats["std"] if stats["std"] > 0 else 1.0  # a constant target: nothing to scale
        return TargetSpec(kind=self.spec.kind, mean=float(stats["mean"]), std=float(std))

    def loss(self, out: torch.Tensor, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        assert batch.values is not None
        z = ((batch.values - self.spec.mean) / self.spec.std).float()
        pred = out.float().reshape(-1)
        loss = (
            F.huber_loss(pred, z, delta=HUBER_DELTA)
            if self.loss_name == "huber"
            else F.mse_loss(pred, z)
        )
        return loss, torch.zeros((), dtype=torch.long, device=loss.device)

    def decode(
        self, out: torch.Tensor, frames: torch.Tensor | None = None
    ) -> tuple[list[Any], np.ndarray]:
        values = out.float().reshape(-1) * self.spec.std + self.spec.mean
        return values.cpu().tolist(), np.full(len(values), np.nan, dtype=np.float32)

    def output_features(self, outputs: list[Any], confidence: np.ndarray) -> dict[str, np.ndarray]:
        """The predicted number (a regression has no confidence)."""
        return {"output_value": np.asarray(outputs, dtype=np.float32)}

    def truths(self, data: SplitData) -> list[Any]:
        assert data.values is not None
        return data.values.double().tolist()

    def metrics(self, truths: Sequence[Any], preds: Sequence[Any]) -> dict[str, float]:
        y, p = np.asarray(truths, dtype=np.float64), np.asarray(preds, dtype=np.float64)
        return regression_metrics(y, p)

    def report(
        self, truths: Sequence[Any], preds: Sequence[Any], out_dir: Path
    ) -> tuple[dict[str, float], list[Path]]:
        from crnn.atomic import atomic_write_text
        from crnn.plots import plot_regression  # matplotlib: only when a report is written

        scores = self.metrics(truths, preds)
        text = out_dir / "regression_report.txt"
        lines = [f"{k:>6}: {v:.6g}" for k, v in scores.items()]
        lines.append(f"target mean {self.spec.mean:.6g}, std {self.spec.std:.6g} (train split)")
        atomic_write_text(text, "\n".join(lines) + "\n")
        return {}, [text, plot_regression(truths, preds, out_dir / "predicted_vs_true.png")]

    def errors(self, truths: Sequence[Any], preds: Sequence[Any]) -> np.ndarray:
        return np.abs(np.asarray(truths, dtype=np.float64) - np.asarray(preds, dtype=np.float64))

    def show(self, value: Any) -> str:
        return f"{value:.3g}"

    def trivial(self, train: Sequence[Any]) -> Any:
        return float(np.mean(train)) if len(train) else self.spec.mean
