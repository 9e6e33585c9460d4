"""Classification (``head: classification``): one label per input, learned with cross-entropy;
scored by accuracy and macro precision / recall / F1."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import torch
import torch.nn.functional as F

from crnn.metrics import classification_metrics
from crnn.tasks.base import Invalid, Task, label_report, mismatches, write_label_report
from crnn.types.kinds import CLASSIFICATION

if TYPE_CHECKING:
    from crnn.types.batches import Batch, SplitData
    from crnn.types.records import Chunk


class ClassificationTask(Task):
    kind = CLASSIFICATION

    def fields(self) -> list[pa.Field]:
        return [pa.field("label", pa.int32(), nullable=False)]

    def columns(self, chunk: Chunk) -> list[pa.Array]:
        assert chunk.labels is not None
        return [pa.array(np.asarray(chunk.labels, dtype=np.int32))]

    def tensors(self, table: pa.Table) -> dict[str, np.ndarray]:
        return {"labels": table.column("label").to_numpy().astype(np.int64)}

    def invalid(self, chunk: Chunk) -> list[Invalid]:
        if chunk.labels is None:
            return []
        labels, n = np.asarray(chunk.labels), len(self.spec.classes)
        return [
            (int(row), "label_out_of_range", f"label {labels[row]} not in 0..{n - 1}")
            for row in np.flatnonzero((labels < 0) | (labels >= n))
        ]

    def loss(self, out: torch.Tensor, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        assert batch.labels is not None
        loss = F.cross_entropy(out.float(), batch.labels)
        return loss, torch.zeros((), dtype=torch.long, device=loss.device)

    def decode(
        self, out: torch.Tensor, frames: torch.Tensor | None = None
    ) -> tuple[list[Any], np.ndarray]:
        best = out.float().softmax(-1).max(-1)
        classes = self.spec.classes
        return [classes[i] for i in best.indices.tolist()], best.values.cpu().numpy()

    def output_features(self, outputs: list[Any], confidence: np.ndarray) -> dict[str, np.ndarray]:
        """The confidence, and the predicted class (a category: class frequencies)."""
        index = {c: i for i, c in enumerate(self.spec.classes)}
        classes = np.array([index[o] for o in outputs], dtype=np.int64)
        return {**super().output_features(outputs, confidence), "output_class": classes}

    def truths(self, data: SplitData) -> list[Any]:
        assert data.labels is not None
        return [self.spec.classes[i] for i in data.labels.tolist()]

    def metrics(self, truths: Sequence[Any], preds: Sequence[Any]) -> dict[str, float]:
        return classification_metrics(np.asarray(truths), np.asarray(preds))

    def report(
        self, truths: Sequence[Any], preds: Sequence[Any], out_dir: Path
    ) -> tuple[dict[str, float], list[Path]]:
        classes = list(self.spec.classes)
        report = label_report(list(truths), list(preds), classes, classes)
        return {}, write_label_report(report, out_dir)

    def errors(self, truths: Sequence[Any], preds: Sequence[Any]) -> np.ndarray:
        return mismatches(truths, preds)

    def trivial(self, train: Sequence[Any]) -> Any:
        return Counter(train).most_common(1)[0][0] if train else self.spec.classes[0]
