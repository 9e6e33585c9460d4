"""Sequence recognition (``head: ctc``): a character string per input, learned with CTC and
decoded greedily (or by a beam search the model carries); scored by exact-match accuracy, CER and
WER."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import torch
import torch.nn.functional as F

from crnn.metrics import GAP, align, sequence_metrics
from crnn.models.decoding import (
    aligned_char_confidences,
    ctc_greedy_strings,
    greedy_char_confidences,
)
from crnn.tasks.base import Invalid, Task, label_report, mismatches, write_label_report
from crnn.types.kinds import SEQUENCE

if TYPE_CHECKING:
    from crnn.types.batches import Batch, SplitData
    from crnn.types.records import Chunk

TARGET_TYPE = pa.list_(pa.field("item", pa.int32(), nullable=False))


class SequenceTask(Task):
    kind = SEQUENCE
    infeasible_metric = "train_ctc_infeasible"
    # a beam search (crnn.models.decoding.BeamDecoder) set by a predictor whose checkpoint asks
    # for one; None: best path
    decoder: Callable[[torch.Tensor], tuple[list[str], np.ndarray]] | None = None

    def fields(self) -> list[pa.Field]:
        return [
            pa.field("target", TARGET_TYPE, nullable=False),
            pa.field("text", pa.string(), nullable=False),
            pa.field("length", pa.int32(), nullable=False),
        ]

    def columns(self, chunk: Chunk) -> list[pa.Array]:
        assert chunk.texts is not None
        targets = [self.spec.encode(t) for t in chunk.texts]
        return [
            pa.array(targets, TARGET_TYPE),
            pa.array(chunk.texts, pa.string()),
            pa.array([len(t) for t in targets], pa.int32()),
        ]

    @property
    def column_names(self) -> list[str]:
        return ["target", "length"]  # the loader needs the ids, not the text

    def tensors(self, table: pa.Table) -> dict[str, np.ndarray]:
        lengths = table.column("length").to_numpy().astype(np.int64)
        return {
            "targets": pad_targets(table.column("target"), lengths),
            "target_lengths": lengths,
        }

    def split_fields(self, table: pa.Table) -> dict[str, Any]:
        return {**super().split_fields(table), "texts": table.column("text").to_pylist()}

    def invalid(self, chunk: Chunk) -> list[Invalid]:
        if chunk.texts is None:
            return []
        allowed, bad = set(self.spec.charset), []
        for i, text in enumerate(chunk.texts):
            if not text:
                bad.append((i, "empty_text", "empty target"))
            elif not set(text) <= allowed:
                unknown = "".join(sorted(set(text) - allowed))
                bad.append((i, "unknown_character", f"characters {unknown!r} not in the charset"))
        return bad

    def loss(self, out: torch.Tensor, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        assert batch.targets is not None and batch.target_lengths is not None
        b, t, _ = out.shape
        log_probs = out.float().log_softmax(-1).transpose(0, 1)  # (T, B, K), CTC wants fp32
        input_lengths = torch.full((b,), t, dtype=torch.long, device=out.device)
        loss = F.ctc_loss(
            log_probs,
            batch.targets,
            input_lengths,
            batch.target_lengths,
            blank=0,
            reduction="mean",
            zero_infinity=True,
        )
        return loss, infeasible_ctc_samples(batch.targets, batch.target_lengths, t)

    def decode(
        self, out: torch.Tensor, frames: torch.Tensor | None = None
    ) -> tuple[list[Any], np.ndarray]:
        out = within_frames(out, frames)
        if self.decoder is not None:
            texts, probs = self.decoder(out)
            return list(texts), probs
        # best-path probability: product of per-frame maxima
        confidence = out.softmax(-1).max(-1).values.log().sum(-1).exp()
        return ctc_greedy_strings(out, self.spec.charset), confidence.cpu().numpy()

    def char_confidences(
        self, out: torch.Tensor, frames: torch.Tensor | None, outputs: list[Any]
    ) -> list[list[float]]:
        """Each character's highest probability over the frames it was read from: the best path's
        own frames for a greedy line, the best alignment of the chosen line for a beam's."""
        out = within_frames(out, frames)
        if self.decoder is None:
            return greedy_char_confidences(out.softmax(-1).cpu().numpy())
        log_probs = out.log_softmax(-1).cpu().numpy()
        index = {c: i + 1 for i, c in enumerate(self.spec.charset)}
        return [
            aligned_char_confidences(lp, [index[c] for c in text])
            for lp, text in zip(log_probs, outputs, strict=True)
        ]

    def output_features(self, outputs: list[Any], confidence: np.ndarray) -> dict[str, np.ndarray]:
        """The confidence, and the predicted text's length in characters."""
        lengths = np.array([len(o) for o in outputs], dtype=np.float32)
        return {**super().output_features(outputs, confidence), "output_length": lengths}

    def truths(self, data: SplitData) -> list[Any]:
        assert data.texts is not None
        return list(data.texts)

    def metrics(self, truths: Sequence[Any], preds: Sequence[Any]) -> dict[str, float]:
        return sequence_metrics(truths, preds)

    def report(
        self, truths: Sequence[Any], preds: Sequence[Any], out_dir: Path
    ) -> tuple[dict[str, float], list[Path]]:
        """Per-character precision / recall / F1 and confusion matrix over aligned characters."""
        pairs = [p for t, q in zip(truths, preds, strict=True) for p in align(t, q)[1]]
        charset = list(self.spec.charset)
        report = label_report(
            [a for a, _ in pairs], [b for _, b in pairs], [*charset, GAP], charset
        )
        extra = {f"char_{k}": report[k] for k in ("precision_macro", "recall_macro", "f1_macro")}
        return extra, write_label_report(report, out_dir)

    def errors(self, truths: Sequence[Any], preds: Sequence[Any]) -> np.ndarray:
        return mismatches(truths, preds)

    def trivial(self, train: Sequence[Any]) -> Any:
        return Counter(train).most_common(1)[0][0] if train else ""


def pad_targets(column: pa.ChunkedArray, lengths: np.ndarray) -> np.ndarray:
    """list<int32> column -> (N, L_max) int64 zero-padded, vectorized over the flat values."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    values = arr.flatten().to_numpy().astype(np.int64)
    max_len = int(lengths.max()) if len(lengths) else 0
    out = np.zeros((len(lengths), max(max_len, 1)), dtype=np.int64)
    rows = np.repeat(np.arange(len(lengths)), lengths)
    cols = np.arange(len(values)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    out[rows, cols] = values
    return out


def infeasible_ctc_samples(
    targets: torch.Tensor, lengths: torch.Tensor, frames: int
) -> torch.Tensor:
    """Samples whose target needs more frames than ``frames`` (length + repeated neighbours)."""
    pos = torch.arange(targets.shape[1], device=targets.device)
    valid = pos[None, :] < lengths[:, None]
    repeats = ((targets[:, 1:] == targets[:, :-1]) & valid[:, 1:]).sum(dim=1)
    return ((lengths + repeats) > frames).sum()


def within_frames(out: torch.Tensor, frames: torch.Tensor | None) -> torch.Tensor:
    """``out`` (B, T, K) as float, frames past each line's own ``frames`` read as certain blanks."""
    out = out.float()
    if frames is None:
        return out
    past = torch.arange(out.shape[1], device=out.device)[None, :] >= frames.to(out.device)[:, None]
    out = out.masked_fill(past[..., None], -1e4)
    out[..., 0] = out[..., 0].masked_fill(past, 0.0)
    return out
