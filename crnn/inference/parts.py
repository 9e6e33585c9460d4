"""One part of a scoring job: its rows (:func:`score_schema`), scored by a :class:`PartScorer`
here or on a cluster worker, and written atomically with its quarantined rows
(:func:`write_part`): a part on disk means its chunk is complete. A mapper runs the scorer over
the parts: :func:`in_process` here, or one over a Dask cluster (:mod:`crnn.cluster`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from crnn.atomic import atomic_path
from crnn.inference.predictor import Predictions, Predictor
from crnn.types.records import Chunk, ModelVersionRef

if TYPE_CHECKING:
    from crnn.monitoring import Profile

QUARANTINE_DIR = "_quarantine"
T = TypeVar("T")

PREDICTION_TYPES = {"string": pa.string(), "double": pa.float64()}  # by TaskKind.prediction


def score_schema(prediction: str = "string") -> pa.Schema:
    """The scored rows; ``prediction``: the task kind's prediction type (text, label: string;
    a regression's number: double)."""
    return pa.schema(
        [
            pa.field("sample_id", pa.string(), nullable=False),
            pa.field("prediction", PREDICTION_TYPES[prediction], nullable=False),
            pa.field("confidence", pa.float32(), nullable=False),
            # a line model's probability per character; null for other kinds
            pa.field("char_confidence", pa.list_(pa.float32())),
            # what the input says the row is (a line's NAME.gt.txt), else null
            pa.field("truth", pa.string()),
            pa.field("model_name", pa.string(), nullable=False),
            pa.field("model_version", pa.string(), nullable=False),
            pa.field("run_id", pa.string(), nullable=False),
        ]
    )


SCORE_SCHEMA = score_schema()

QUARANTINE_SCHEMA = pa.schema(
    [("sample_id", pa.string()), ("origin", pa.string()), ("reason", pa.string())]
)


def prefetched(items: Iterator[T]) -> Iterator[T]:
    """``items``, produced one ahead in a background thread: reading and preparing the next chunk
    overlaps the model's work on this one (file reads, decoding and numpy release the GIL).
    Memory stays bounded: at most two items are alive. Errors surface where they would have."""
    end = object()
    with ThreadPoolExecutor(1, thread_name_prefix="crnn-prefetch") as pool:
        pending = pool.submit(next, items, end)
        while True:
            item = pending.result()
            if item is end:
                return
            pending = pool.submit(next, items, end)
            yield item  # type: ignore[misc]


Mapper = Callable[[Callable[[Any], Any], Iterable[Any]], Iterator[Any]]


def in_process(fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
    """``fn`` over ``items`` here, the next item read in the background meanwhile."""
    return map(fn, prefetched(iter(items)))


@dataclass
class Part:
    """A planned part of a job still to score: its chunk id and rows."""

    chunk_id: str
    chunk: Chunk


_PREDICTORS: dict[tuple[str, float], Predictor] = {}  # a worker's models, built once each


class PartScorer:
    """Scores a part and writes it, returning (chunk id, rows scored). Here it uses the job's
    predictor; shipped to a cluster worker it leaves that behind and builds its own once from
    ``checkpoint``, a file the workers read (the job keeps a copy in its folder)."""

    def __init__(
        self,
        model: ModelVersionRef,
        out_dir: Path,
        batch_size: int,
        predictor: Predictor | None,
        checkpoint: Path | None = None,
        reference: Profile | None = None,
    ) -> None:
        self.model, self.out_dir, self.batch_size = model, out_dir, batch_size
        self.predictor, self.checkpoint, self.reference = predictor, checkpoint, reference

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "predictor": None}

    def _predictor(self) -> Predictor:
        if self.predictor is None:
            assert self.checkpoint is not None, "a part scored away from the job needs its model"
            key = (str(self.checkpoint), self.checkpoint.stat().st_mtime)
            if key not in _PREDICTORS:
                _PREDICTORS[key] = Predictor.from_checkpoint(self.checkpoint, device="auto")
            self.predictor = _PREDICTORS[key]
        return self.predictor

    def __call__(self, part: Part) -> tuple[str, int]:
        predictor, chunk = self._predictor(), part.chunk
        keep = np.isfinite(chunk.inputs.reshape(len(chunk), -1)).all(axis=1)
        kept = chunk.inputs if keep.all() else chunk.inputs[keep]  # no copy when all are fine
        inputs = predictor.prepare(kept, chunk.normalization)
        bad = [(chunk.sample_ids[i], chunk.split, "non_finite") for i in np.flatnonzero(~keep)] + [
            (q.sample_id, q.origin, q.reason) for q in chunk.quarantined
        ]
        ids = [s for s, k in zip(chunk.sample_ids, keep, strict=True) if k]
        widths = None if chunk.widths is None else chunk.widths[keep]
        embed = self.reference is not None
        preds = predictor.predict_normalized(inputs, self.batch_size, widths, embed)
        truth = None if chunk.truth is None else [chunk.truth[i] for i in np.flatnonzero(keep)]
        table = scored_table(predictor, self.model, ids, preds, truth)
        if self.reference is not None:  # before the part: a part on disk has its profile
            from crnn.inference.monitor import row_features, write_part_profile

            columns = row_features(predictor, inputs, preds, self.reference)
            write_part_profile(self.out_dir, part.chunk_id, columns)
        write_part(self.out_dir, part.chunk_id, table, bad)
        return part.chunk_id, len(ids)


def scored_table(
    predictor: Predictor,
    model: ModelVersionRef,
    ids: list[str],
    preds: Predictions,
    truth: list[str | None] | None,
) -> pa.Table:
    """One part's rows: see :func:`score_schema`."""
    n = len(ids)
    return pa.table(
        {
            "sample_id": ids,
            "prediction": preds.outputs,
            "confidence": np.asarray(preds.confidence, dtype=np.float32),
            "char_confidence": preds.char_confidence or pa.nulls(n, pa.list_(pa.float32())),
            "truth": truth or pa.nulls(n, pa.string()),
            "model_name": [model.name] * n,
            "model_version": [model.version] * n,
            "run_id": [model.run_id] * n,
        },
        schema=score_schema(predictor.task.kind.prediction[1]),
    )


def write_part(
    out_dir: Path, chunk_id: str, table: pa.Table, bad: Sequence[tuple[str, ...]]
) -> None:
    """A chunk's scored rows, after its quarantined ones: a part on disk means its chunk is
    complete."""
    if bad:
        rows = list(zip(*bad, strict=True))
        quarantine = pa.table(dict(zip(QUARANTINE_SCHEMA.names, rows, strict=True)))
        with atomic_path(out_dir / QUARANTINE_DIR / f"part-{chunk_id}.parquet") as tmp:
            pq.write_table(quarantine.cast(QUARANTINE_SCHEMA), tmp)
    with atomic_path(out_dir / f"part-{chunk_id}.parquet") as tmp:
        pq.write_table(table, tmp)
