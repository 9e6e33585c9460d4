"""Batch scoring: one model version over new data, in chunks, idempotent and resumable.

Input is either a source the pipelines read (the model's own source config, bundled in its
checkpoint, pointed at new data with ``path``) or an existing shard set. The model's bundled
preprocessing (normalization statistics, charset / labels, feature parameters) is applied; the
training pipeline's config is never needed.

Output is a folder of Parquet parts, one per input chunk, each written atomically, with the sample
id, prediction, confidence (per character too, for a line model), the truth where the input gave
one, and the model name, version and run id on every row: the folder reads as one Parquet dataset
(``pd.read_parquet(DIR)``, ``pyarrow.dataset``), because everything else has a name those readers
skip. ``_job.json`` pins the job (model version, input); a re-run skips the parts already there,
so a crashed or stopped job (Ctrl-C, SIGTERM: after the part being written) finishes with
exactly one row per valid input row. Rejected records go to ``_quarantine/part-*.parquet`` with a
reason; ``_summary.json`` holds the totals and the metrics against the truths
(:mod:`crnn.inference.review`); ``_review.csv``, when asked, the rows under a confidence
threshold. Needs torch, numpy and pyarrow only; MLflow (resolving ``NAME@ALIAS``, the
scoring run) lives in :mod:`crnn.tracking` and the ``score`` flow.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from crnn import interrupt
from crnn.atomic import atomic_path, atomic_write_text
from crnn.data.loader import input_views, load_manifest
from crnn.data.shards import verified_path
from crnn.engine.checkpoint import Checkpoint
from crnn.errors import UserError
from crnn.inference.predictor import Predictions, Predictor
from crnn.inference.review import REVIEW_FILE, against_truth, write_review
from crnn.types.records import Chunk, ModelVersionRef, SourceFeatures

SPLITS = ("train", "val", "test")
__all__ = ["ModelVersionRef", "ScoreSummary", "read_scores", "score"]  # and the rest below

JOB_FILE = "_job.json"  # a leading "_" or ".": skipped by Parquet dataset readers
QUARANTINE_DIR = "_quarantine"
SUMMARY_FILE = "_summary.json"
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


@dataclass
class ScoreSummary:
    model: ModelVersionRef
    input: str
    output: str
    rows_in: int = 0
    rows_scored: int = 0
    rows_quarantined: int = 0
    quarantined_by_reason: dict[str, int] = field(default_factory=dict)
    chunks_scored: int = 0
    chunks_skipped: int = 0  # already done by an earlier attempt
    seconds: float = 0.0
    rows_per_s: float = 0.0  # rows scored by this attempt / its seconds
    # rows under --review-below, listed in REVIEW_FILE (None: no threshold asked)
    rows_for_review: int | None = None
    review_file: str | None = None
    # metrics over the rows the input gave a truth for (``rows``: how many); empty: none did
    against_truth: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def source_chunks(data: Any, chunk_rows: int) -> Iterator[tuple[str, Chunk]]:
    """Every record a source reads (all its splits), in chunks with stable ids."""
    from crnn.data.catalog import open_source

    source = open_source(data)
    for split in SPLITS:
        for k, chunk in enumerate(source.chunks(split, chunk_rows)):
            yield f"{split}-{k:05d}", chunk


def input_chunks(
    ckpt: Checkpoint,
    model: ModelVersionRef,
    input_path: str | None,
    shards: str | None,
    chunk_rows: int,
) -> Iterator[tuple[str, Chunk]]:
    """What a job scores: a shard set; new data at ``input_path`` read with the checkpoint's
    bundled source config and features; or, for embedded sources, the source's own data."""
    if shards:
        return shard_chunks(Path(shards))
    source = ckpt.preprocessing.source
    if not source:
        raise UserError(
            f"{model.name} version {model.version} carries no source config; score a shard set "
            "with --shards"
        )
    if not input_path:
        return source_chunks(source_config(source), chunk_rows)
    if "path" not in source and ckpt.preprocessing.image_model:  # images a user has, any size
        return image_chunks(Path(input_path), ckpt, chunk_rows)
    if "path" not in source:
        raise UserError(f"{model.name}'s source {source['source']!r} reads no path: drop --input")
    features = ckpt.preprocessing.features
    return new_chunks(source_config({**source, "path": input_path}), features, chunk_rows)


def image_chunks(root: Path, ckpt: Checkpoint, chunk_rows: int) -> Iterator[tuple[str, Chunk]]:
    """Image files under ``root`` for a model trained on embedded images: fitted to its height
    (line models: any width) or size, pixel range and polarity (:mod:`crnn.data.user_images`)."""
    from crnn.data.user_images import image_file_chunks

    prep = ckpt.preprocessing
    parts = image_file_chunks(root, chunk_rows, prep.input_shape, prep.features, prep.any_width)
    for k, (batch, widths, ids, bad) in enumerate(parts):
        yield f"new-{k:05d}", Chunk("new", ids, batch, widths=widths, quarantined=bad)


def source_config(raw: dict[str, Any]) -> Any:
    from pydantic import TypeAdapter

    from crnn.config import SourceConfig

    return TypeAdapter(SourceConfig).validate_python(raw)


def new_chunks(data: Any, features: SourceFeatures, chunk_rows: int) -> Iterator[tuple[str, Chunk]]:
    """New data at ``data.path`` (labels not needed), read with the model's bundled source config
    and features; see :func:`crnn.data.sources.new_data_chunks`."""
    from crnn.data.catalog import new_data_chunks

    for k, chunk in enumerate(new_data_chunks(data, features, chunk_rows)):
        yield f"{chunk.split}-{k:05d}", chunk


def shard_chunks(manifest_path: Path) -> Iterator[tuple[str, Chunk]]:
    """The samples of a shard set, a shard per chunk, as normalized in the shards."""
    manifest = load_manifest(manifest_path)
    root = Path(manifest_path)
    root = root.parent if root.is_file() else root
    shape = tuple(manifest.input_shape)
    for record in manifest.shards:
        path = verified_path(root, record)  # a damaged or changed shard is not scored
        table = pq.read_table(path, columns=["sample_id", "input"])
        views = input_views(table.column("input"), shape)
        x = np.concatenate(views) if len(views) != 1 else views[0]
        ids = table.column("sample_id").to_pylist()
        chunk = Chunk(record.split, ids, x, normalization=manifest.normalization)
        yield Path(record.path).stem, chunk


@dataclass
class _Prepared:
    chunk_id: str
    chunk: Chunk
    keep: np.ndarray  # rows with finite inputs
    inputs: torch.Tensor | None  # the kept rows, normalized for the model; None: chunk done


def _prepare(
    predictor: Predictor, chunks: Iterator[tuple[str, Chunk]], out_dir: Path
) -> Iterator[_Prepared]:
    for chunk_id, chunk in chunks:
        if (out_dir / f"part-{chunk_id}.parquet").is_file():
            yield _Prepared(chunk_id, chunk, np.zeros(0, bool), None)
            continue
        keep = np.isfinite(chunk.inputs.reshape(len(chunk), -1)).all(axis=1)
        inputs = chunk.inputs if keep.all() else chunk.inputs[keep]
        yield _Prepared(chunk_id, chunk, keep, predictor.prepare(inputs, chunk.normalization))


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


def score(
    predictor: Predictor,
    model: ModelVersionRef,
    chunks: Iterator[tuple[str, Chunk]],
    out_dir: Path,
    input_spec: str,
    batch_size: int = 256,
    on_chunk: Callable[[str, int], None] | None = None,
    plan: dict[str, Any] | None = None,
    review_below: float | None = None,
) -> ScoreSummary:
    """Score every chunk not already in ``out_dir``; see the module docstring.

    ``on_chunk(chunk_id, rows)`` is called after each part is written (progress, tests).
    ``review_below``: list the rows less confident than this in ``_review.csv``.
    """
    out_dir = Path(out_dir)
    pin_job(out_dir, model, input_spec, plan or {})
    summary = ScoreSummary(model, input_spec, str(out_dir))
    started = time.perf_counter()
    scored_now = rows_in = 0
    for item in prefetched(_prepare(predictor, chunks, out_dir)):
        chunk_id, chunk, keep = item.chunk_id, item.chunk, item.keep
        interrupt.check(f"scoring part {chunk_id}")  # Ctrl-C: the parts written are kept
        rows_in += len(chunk) + len(chunk.quarantined)  # counted from the input, every attempt
        if item.inputs is None:
            summary.chunks_skipped += 1
            continue
        bad = [(chunk.sample_ids[i], chunk.split, "non_finite") for i in np.flatnonzero(~keep)] + [
            (q.sample_id, q.origin, q.reason) for q in chunk.quarantined
        ]
        ids = [s for s, k in zip(chunk.sample_ids, keep, strict=True) if k]
        widths = None if chunk.widths is None else chunk.widths[keep]
        preds = predictor.predict_normalized(item.inputs, batch_size, widths)
        truth = None if chunk.truth is None else [chunk.truth[i] for i in np.flatnonzero(keep)]
        table = scored_table(predictor, model, ids, preds, truth)
        write_part(out_dir, chunk_id, table, bad)
        summary.chunks_scored += 1
        scored_now += len(ids)
        if on_chunk is not None:
            on_chunk(chunk_id, len(ids))
    summary.seconds = time.perf_counter() - started
    summary.rows_per_s = scored_now / max(summary.seconds, 1e-9)
    count_output(out_dir, summary)
    summary.rows_in = rows_in
    scores = read_scores(out_dir)
    summary.against_truth = against_truth(scores, predictor.task)
    if review_below is not None:
        summary.rows_for_review = write_review(out_dir, scores, review_below)
        summary.review_file = str(out_dir / REVIEW_FILE)
    atomic_write_text(out_dir / SUMMARY_FILE, json.dumps(summary.to_dict(), indent=2))
    check_accounted(out_dir, summary)
    return summary


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


def check_accounted(out_dir: Path, summary: ScoreSummary) -> None:
    """Every input row is in the output, scored or quarantined, and nothing else is."""
    accounted = summary.rows_scored + summary.rows_quarantined
    if accounted != summary.rows_in:
        raise UserError(
            f"{out_dir}: {summary.rows_in} rows in, {summary.rows_scored} scored and "
            f"{summary.rows_quarantined} quarantined: {summary.rows_in - accounted:+d} rows not "
            "accounted for (the folder holds parts of other input); delete it and score again"
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


def job_plan(shards: str | None, chunk_rows: int) -> dict[str, Any]:
    """What decides which rows each part holds: a shard per part, or ``chunk_rows`` a part."""
    return {"parts": "one per shard"} if shards else {"parts": "chunks", "chunk_rows": chunk_rows}


def pin_job(
    out_dir: Path, model: ModelVersionRef, input_spec: str, plan: dict[str, Any] | None = None
) -> None:
    """Record the job in ``out_dir``, or check a re-run is the same job, cut into parts the
    same way (``plan``: :func:`job_plan`): parts are named by their place in the input, so a
    re-run cut otherwise would skip rows or score them twice."""
    job = {"model": asdict(model), "input": input_spec, "plan": plan or {}}
    path = out_dir / JOB_FILE
    if path.is_file():
        earlier = json.loads(path.read_text(encoding="utf-8"))
        if {**earlier, "plan": job["plan"]} == job and earlier.get("plan") != job["plan"]:
            raise UserError(
                f"{out_dir} holds a job cut into parts otherwise ({_plan_words(earlier)}); "
                f"re-run it the same way, or choose another --out"
            )
        if earlier != job:
            raise UserError(
                f"{out_dir} holds the output of another job (model "
                f"{earlier['model']['name']} version {earlier['model']['version']}, input "
                f"{earlier['input']}); choose another --out or delete it"
            )
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(job, indent=2))


def _plan_words(job: dict[str, Any]) -> str:
    plan = job.get("plan") or {}
    if "chunk_rows" in plan:
        return f"--chunk-rows {plan['chunk_rows']}"
    return str(plan.get("parts", "an earlier version's plan"))


def pinned_model(out_dir: Path, input_spec: str) -> ModelVersionRef | None:
    """The model version an earlier attempt of this job used, so a re-run keeps it even if the
    alias has moved since."""
    path = Path(out_dir) / JOB_FILE
    if not path.is_file():
        return None
    job = json.loads(path.read_text(encoding="utf-8"))
    return ModelVersionRef(**job["model"]) if job.get("input") == input_spec else None


def count_output(out_dir: Path, summary: ScoreSummary) -> None:
    """Totals over every part (this attempt's and earlier ones')."""
    scored = sum(pq.read_metadata(p).num_rows for p in out_dir.glob("part-*.parquet"))
    reasons: dict[str, int] = {}
    for q in (out_dir / QUARANTINE_DIR).glob("part-*.parquet"):
        for reason in pq.read_table(q, columns=["reason"]).column("reason").to_pylist():
            reasons[reason] = reasons.get(reason, 0) + 1
    summary.rows_scored = scored
    summary.rows_quarantined = sum(reasons.values())
    summary.quarantined_by_reason = reasons


def read_scores(out_dir: Path) -> pa.Table:
    """All scored rows of a job."""
    parts = sorted(Path(out_dir).glob("part-*.parquet"))
    if not parts:
        return SCORE_SCHEMA.empty_table()
    # parts an earlier version wrote may lack the newer columns: they read as nulls
    return pa.concat_tables([pq.read_table(p) for p in parts], promote_options="default")
