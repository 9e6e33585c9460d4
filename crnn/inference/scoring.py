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
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from crnn import interrupt
from crnn.atomic import atomic_path, atomic_write_text
from crnn.data.loader import input_views, load_manifest
from crnn.data.shards import verified_path
from crnn.engine.checkpoint import Checkpoint
from crnn.errors import UserError
from crnn.inference.monitor import job_drift
from crnn.inference.parts import (
    QUARANTINE_DIR,
    QUARANTINE_SCHEMA,
    SCORE_SCHEMA,
    Mapper,
    Part,
    PartScorer,
    in_process,
    prefetched,
    score_schema,
    write_part,
)
from crnn.inference.predictor import Predictor
from crnn.inference.review import REVIEW_FILE, against_truth, write_review
from crnn.monitoring import Profile
from crnn.types.records import Chunk, ModelVersionRef, SourceFeatures

SPLITS = ("train", "val", "test")
__all__ = [  # and the rest below; the part-level names are re-exported from crnn.inference.parts
    "QUARANTINE_DIR",
    "QUARANTINE_SCHEMA",
    "ModelVersionRef",
    "ScoreSummary",
    "prefetched",
    "read_scores",
    "score",
    "score_schema",
    "write_part",
]

JOB_FILE = "_job.json"  # a leading "_" or ".": skipped by Parquet dataset readers
SUMMARY_FILE = "_summary.json"
MODEL_FILE = "_model.pt"  # the model cluster workers score with (a fanned-out job only)


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
    # what was scored against the model's reference profile (crnn.monitoring.Drift.to_dict)
    drift: dict[str, Any] = field(default_factory=dict)

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
    fan_out: tuple[Mapper, Path] | None = None,
    reference: Profile | None = None,
) -> ScoreSummary:
    """Score every chunk not already in ``out_dir``; see the module docstring.

    ``on_chunk(chunk_id, rows)`` is called after each part is written (progress, tests).
    ``review_below``: list the rows less confident than this in ``_review.csv``.
    ``fan_out``: (a mapper over a cluster's workers, the model's checkpoint file): the parts are
    scored there (:mod:`crnn.cluster`) with the copy of the model the job keeps in its folder,
    and read and accounted for here.
    ``reference``: the model's reference profile; the job's drift against it is in the summary
    and ``_drift.json`` (none: "no reference").
    """
    out_dir = Path(out_dir)
    pin_job(out_dir, model, input_spec, plan or {})
    if fan_out is not None:
        fan_out = (fan_out[0], keep_model(out_dir, fan_out[1]))
    summary = ScoreSummary(model, input_spec, str(out_dir))
    started = time.perf_counter()
    seen = {"rows_in": 0}

    def parts() -> Iterator[Part]:
        for chunk_id, chunk in chunks:
            interrupt.check(f"scoring part {chunk_id}")  # Ctrl-C: the parts written are kept
            seen["rows_in"] += len(chunk) + len(chunk.quarantined)  # from the input, every time
            if (out_dir / f"part-{chunk_id}.parquet").is_file():
                summary.chunks_skipped += 1
                continue
            yield Part(chunk_id, chunk)

    mapper, checkpoint = fan_out or (in_process, None)
    here = None if fan_out else predictor
    scorer = PartScorer(model, out_dir, batch_size, here, checkpoint, reference)
    scored_now = 0
    for chunk_id, rows in mapper(scorer, parts()):
        summary.chunks_scored += 1
        scored_now += rows
        if on_chunk is not None:
            on_chunk(chunk_id, rows)
    summary.seconds = time.perf_counter() - started
    summary.rows_per_s = scored_now / max(summary.seconds, 1e-9)
    count_output(out_dir, summary)
    summary.rows_in = seen["rows_in"]
    return finish_job(out_dir, summary, predictor, review_below, reference)


def finish_job(
    out_dir: Path,
    summary: ScoreSummary,
    predictor: Predictor,
    review_below: float | None,
    reference: Profile | None,
) -> ScoreSummary:
    """What is said of the job's whole output: against the truth given, the rows to review, its
    drift, ``_summary.json``; then every input row is checked to be accounted for."""
    scores = read_scores(out_dir)
    summary.against_truth = against_truth(scores, predictor.task)
    if review_below is not None:
        summary.rows_for_review = write_review(out_dir, scores, review_below)
        summary.review_file = str(out_dir / REVIEW_FILE)
    summary.drift = job_drift(out_dir, reference).to_dict()
    atomic_write_text(out_dir / SUMMARY_FILE, json.dumps(summary.to_dict(), indent=2))
    check_accounted(out_dir, summary)
    return summary


def keep_model(out_dir: Path, checkpoint: Path) -> Path:
    """The job's own copy of its model (``_model.pt``), which cluster workers read: written once,
    atomically; the job pinned in ``_job.json`` is the one it belongs to."""
    kept = out_dir / MODEL_FILE
    if not kept.is_file():
        with atomic_path(kept) as tmp:
            shutil.copyfile(checkpoint, tmp)
    return kept


def check_accounted(out_dir: Path, summary: ScoreSummary) -> None:
    """Every input row is in the output, scored or quarantined, and nothing else is."""
    accounted = summary.rows_scored + summary.rows_quarantined
    if accounted != summary.rows_in:
        raise UserError(
            f"{out_dir}: {summary.rows_in} rows in, {summary.rows_scored} scored and "
            f"{summary.rows_quarantined} quarantined: {summary.rows_in - accounted:+d} rows not "
            "accounted for (the folder holds parts of other input); delete it and score again"
        )


CHUNK_ROWS = 4096  # rows a part when a job is cut into chunks and neither flag nor plan says


def planned_chunk_rows(out_dir: Path, given: int | None) -> int:
    """Rows a part: ``given`` (``--chunk-rows``), else what the job in ``out_dir`` recorded when
    it was first cut (so a re-run without the flag resumes it), else :data:`CHUNK_ROWS`."""
    if given is not None:
        return given
    path = Path(out_dir) / JOB_FILE
    if path.is_file():
        recorded = json.loads(path.read_text(encoding="utf-8")).get("plan") or {}
        if isinstance(recorded.get("chunk_rows"), int):
            return int(recorded["chunk_rows"])
    return CHUNK_ROWS


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
