"""Preprocessing: source -> normalization (fit on train) -> augmentation -> shards + manifest.

The shard set is named by a digest of (source digest, preprocessing config, code version); the same
digest is the cache key: running again with the same inputs reuses the shards.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

import crnn
from crnn import interrupt
from crnn.config import PreprocessingConfig, SourceConfig
from crnn.data.catalog import open_source
from crnn.data.prepared import ChunkPrep, Mapper, Placed, Prepared
from crnn.data.publish import build_lock, publish, staging_dir
from crnn.data.quarantine import (
    count_quarantined,
    drop_unseen_labels,
    validate_chunk,
    write_quarantine,
)
from crnn.data.shards import (
    MANIFEST_NAME,
    Manifest,
    ShardWriter,
    verify_shards,
    write_manifest,
)
from crnn.data.sources import SPLITS, Source
from crnn.data.user_images import ImageProfile
from crnn.errors import DataError
from crnn.normalization import Normalizer
from crnn.tasks import task_for
from crnn.tasks.base import Task
from crnn.types.records import Chunk, Quarantined, SourceFeatures, SourceInfo

log = logging.getLogger(__name__)

CHUNK_ROWS = 2048
REJECTED = "rejected"  # under the shards folder: quarantines of builds that failed on them


@dataclass(frozen=True)
class ShardSet:
    """A reference to a shard set on disk (what tasks pass around instead of arrays)."""

    manifest_path: Path
    digest: str
    reused: bool
    seconds: float = 0.0  # to build or to check for reuse

    @property
    def root(self) -> Path:
        return self.manifest_path.parent


@cache
def code_version() -> str:
    """Package version + a hash of the data code: shards are rebuilt when that code changes."""
    h = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return f"{crnn.__version__}+{h.hexdigest()[:12]}"


def shard_set_digest(source_digest: str, cfg: PreprocessingConfig, version: str) -> str:
    payload = json.dumps(
        {"source": source_digest, "preprocessing": cfg.model_dump(mode="json"), "code": version},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def preprocess(
    data_cfg: SourceConfig,
    cfg: PreprocessingConfig,
    shards_root: Path,
    mapper: Mapper | None = None,
) -> ShardSet:
    """Build (or reuse) the shard set of ``data_cfg`` preprocessed by ``cfg`` in ``shards_root``.

    Concurrent callers with one digest are safe (:mod:`crnn.data.publish`): one builds, the others
    wait and reuse; the set's folder appears complete or not at all. ``mapper``: runs the per-chunk
    work (:mod:`crnn.data.prepared`) on a cluster's workers; the shard set is the same.
    """
    source = open_source(data_cfg)
    info = source.info()
    digest = shard_set_digest(info.digest, cfg, code_version())
    root = shards_root / digest[:16]
    found = _complete_set(root, digest)  # a published set never changes: no lock to read it
    if found is not None:
        return found
    with build_lock(shards_root, root.name):
        found = _complete_set(root, digest, quiet=True)  # published by the one we waited for
        if found is not None:
            return found
        staging = staging_dir(shards_root, root.name)
        try:
            rejected = shards_root / REJECTED / root.name
            _build(source, info, cfg, digest, (staging, rejected), mapper)
            publish(staging, root)
        finally:
            shutil.rmtree(staging, ignore_errors=True)  # a failed build leaves nothing behind
    return ShardSet(root / MANIFEST_NAME, digest, reused=False)


def _build(
    source: Source,
    info: SourceInfo,
    cfg: PreprocessingConfig,
    digest: str,
    folders: tuple[Path, Path],
    mapper: Mapper | None = None,
) -> Path:
    """Write the shards and, last, the manifest of ``source`` into the empty folder ``root``
    (``folders``: root, rejected). A build that fails on its quarantine keeps the quarantined
    records in ``rejected``."""
    root, rejected = folders
    fit = fit_train_statistics(source, info, cfg.normalization)
    normalizer, task, train_rows = fit.normalizer, fit.task, fit.rows
    writer = ShardWriter(
        root,
        info.input_shape,
        task,
        cfg.shard_rows,
        shuffled={"train": train_rows * (1 + cfg.augmentation.copies)},  # order never leaks
        seed=cfg.shuffle_seed,
    )
    counts, quarantined = _write_splits(source, info, cfg, (normalizer, task), writer, mapper)
    written = sum(c["original"] for c in counts.values())
    quarantine_path, records_in = _check_quarantine(root, quarantined, written, info, cfg, rejected)
    manifest = Manifest(
        digest=digest,
        source={
            "name": info.name,
            "description": info.description,
            "digest": info.digest,
            "config": info.config,
            "modality": info.modality,
        },
        preprocessing=cfg.model_dump(mode="json"),
        code_version=code_version(),
        input_shape=list(info.input_shape),
        target=task.spec,
        normalization=normalizer.stats_,
        features={**info.features, **fit.features},
        splits=counts,
        shards=writer.close(),
        order=writer.order(),
        quarantine=count_quarantined(quarantined, records_in, quarantine_path),
    )
    return write_manifest(root, manifest)


def _write_splits(
    source: Source,
    info: SourceInfo,
    cfg: PreprocessingConfig,
    fitted: tuple[Normalizer, Task],
    writer: ShardWriter,
    mapper: Mapper | None = None,
) -> tuple[dict[str, dict[str, int]], list[Quarantined]]:
    """Every split, chunk by chunk: validated, normalized and augmented (:class:`ChunkPrep`, by
    ``mapper``: here, or on a cluster's workers), then written here in the source's order.
    Returns the row counts per split and the quarantined records."""
    normalizer, task = fitted
    counts = {s: {"rows": 0, "original": 0, "augmented": 0} for s in SPLITS}
    quarantined: list[Quarantined] = []
    seen: set[int] = set()  # the classes the training split holds (SPLITS: train comes first)
    prep = ChunkPrep(normalizer, task, cfg.augmentation, info.modality)
    for done in (mapper or map)(prep, _placed(source)):
        interrupt.check(f"preprocessing ({done.chunk.split} split)")  # nothing published half-built
        quarantined += _write_prepared(done, writer, task, seen, info, counts)
        del done  # one chunk alive at a time: not this one while the next is read
    return counts, quarantined


def _placed(source: Source) -> Iterator[Placed]:
    """Every split's chunks with their places, a chunk let go before the next is read."""
    for split in SPLITS:
        for index, chunk in enumerate(source.chunks(split, CHUNK_ROWS)):
            yield Placed(index, chunk)
            del chunk


def _write_prepared(
    done: Prepared,
    writer: ShardWriter,
    task: Task,
    seen: set[int],
    info: SourceInfo,
    counts: dict[str, dict[str, int]],
) -> list[Quarantined]:
    """One prepared chunk into the shards (a validation or test row of a class no training row
    has set aside); counts updated; returns what it set aside."""
    chunk, normalized, split = done.chunk, done.normalized, done.chunk.split
    quarantined = list(done.quarantined)
    if normalized is None:
        return quarantined
    if split == "train" and chunk.labels is not None:
        seen.update(int(v) for v in np.unique(chunk.labels))
    elif split != "train" and chunk.labels is not None:
        keep = np.isin(np.asarray(chunk.labels), list(seen))
        chunk, unseen = drop_unseen_labels(chunk, seen, info.target.classes)
        quarantined += unseen
        normalized = normalized[keep]
    if not len(chunk):
        return quarantined
    _write_chunk(writer, chunk, task, 0, normalized)
    counts[split]["original"] += len(chunk)
    for copy, augmented in enumerate(done.copies, 1):
        _write_chunk(writer, chunk, task, copy, augmented)
        counts[split]["augmented"] += len(chunk)
    counts[split]["rows"] = counts[split]["original"] + counts[split]["augmented"]
    return quarantined


def _complete_set(root: Path, digest: str, quiet: bool = False) -> ShardSet | None:
    """The shard set in ``root`` when its manifest and shards check out; None when there is none
    or it is damaged (then the next build replaces it)."""
    manifest_path = root / MANIFEST_NAME
    if not manifest_path.is_file():
        return None
    try:
        manifest = Manifest.from_file(manifest_path)  # its own content checked
        verify_shards(root, manifest)
        if manifest.digest != digest:  # another set's manifest, or an edited one
            raise DataError(f"{manifest_path}: names shard set {manifest.digest[:16]}")
    except DataError as exc:
        if not quiet:
            log.warning("shard set %s does not check out, rebuilt: %s", digest[:16], exc)
        return None
    return ShardSet(manifest_path, digest, reused=True)


def _check_quarantine(
    root: Path,
    quarantined: list[Quarantined],
    written: int,
    info: SourceInfo,
    cfg: PreprocessingConfig,
    rejected: Path,
) -> tuple[Path, int]:
    """Write the quarantine file; fail in one line when nothing was read or too much was bad
    (the records then stay in ``rejected``: the build's own folder is removed). Returns the file
    and the number of input records (written + quarantined)."""
    path = write_quarantine(root, quarantined)
    records_in = written + len(quarantined)
    if records_in == 0:
        raise DataError(f"{info.description}: no input records found; check data.path")
    fraction = len(quarantined) / records_in
    if fraction > cfg.max_quarantine_fraction:
        raise DataError(
            f"{len(quarantined)} of {records_in} input records quarantined ({fraction:.1%} > "
            f"preprocessing.max_quarantine_fraction {cfg.max_quarantine_fraction:.1%}); "
            f"reasons in {write_quarantine(rejected, quarantined)}"
        )
    return path, records_in


@dataclass(frozen=True)
class TrainStatistics:
    """What is fit on the training split's valid records."""

    normalizer: Normalizer  # the input normalization
    task: Task  # bound to the target's statistics (a regression target's mean and std)
    rows: int
    features: SourceFeatures  # images: the pixel range and background later inputs are fit to


def fit_train_statistics(source: Source, info: SourceInfo, kind: str) -> TrainStatistics:
    normalizer, rows = Normalizer(kind), 0
    task = task_for(info.target)
    profile = ImageProfile()
    for chunk in source.chunks("train", CHUNK_ROWS):
        valid = validate_chunk(chunk, task)[0]
        rows += len(valid)
        if len(valid):
            normalizer.partial_fit(valid.inputs)
            task.observe(valid)
            if info.modality == "image":
                profile.observe(valid.inputs)
    fitted = task_for(task.fitted()) if rows else task
    return TrainStatistics(normalizer, fitted, rows, profile.to_features())


def _write_chunk(
    writer: ShardWriter, chunk: Chunk, task: Task, aug: int, inputs: np.ndarray
) -> None:
    ids = chunk.sample_ids if aug == 0 else [f"{s}~aug{aug}" for s in chunk.sample_ids]
    writer.write(chunk.split, ids, aug, inputs, task.columns(chunk))
