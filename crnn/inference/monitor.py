"""Drift monitoring around a model (:mod:`crnn.monitoring` holds the statistics).

At training, :func:`build_reference` profiles held-out rows of the shard set with the trained
model and writes the reference profile beside its checkpoint. In a scoring job, each part's
per-sample features (:func:`row_features`) are written with the part, under ``_profile/``, where
the part is scored (here or on a cluster worker); :func:`job_drift` reads them all back, every
part's, this attempt's and earlier ones', and compares them with the reference: ``_drift.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from crnn.atomic import atomic_path, atomic_write_text
from crnn.config.monitoring import MonitoringConfig
from crnn.data.loader import input_views, load_manifest
from crnn.data.shards import Manifest
from crnn.inference.predictor import Predictions, Predictor
from crnn.monitoring import (
    PROFILE_FILE,
    Drift,
    Profile,
    compare,
    fit_profile,
    input_features,
    load_profile,
    no_reference,
)

PROFILE_DIR = "_profile"  # per part: the features of its rows (a leading "_": readers skip it)
DRIFT_FILE = "_drift.json"
NOT_PROFILED = (
    "this model version has no reference profile: registered before drift monitoring, or "
    "trained with monitoring.enabled false"
)


def row_features(
    predictor: Predictor, inputs: torch.Tensor, preds: Predictions, reference: Profile
) -> dict[str, np.ndarray]:
    """The per-sample features ``reference`` is made of, for rows the model read as ``inputs``
    and predicted ``preds`` (with embeddings)."""
    columns = input_features(reference.modality, inputs.numpy())
    columns.update(predictor.task.output_features(preds.outputs, preds.confidence))
    if reference.embedding is not None and preds.embeddings is not None:
        columns.update(reference.embedding.columns(preds.embeddings))
    return columns


def write_part_profile(out_dir: Path, chunk_id: str, columns: dict[str, np.ndarray]) -> None:
    with atomic_path(out_dir / PROFILE_DIR / f"part-{chunk_id}.parquet") as tmp:
        pq.write_table(pa.table(columns), tmp)


def job_drift(out_dir: Path, reference: Profile | None, seed: int = 0) -> Drift:
    """The drift of everything the job in ``out_dir`` scored, against ``reference`` (None: the
    model version has none), written to ``_drift.json``."""
    if reference is None:
        drift = no_reference(NOT_PROFILED)
    else:
        parts = sorted((Path(out_dir) / PROFILE_DIR).glob("part-*.parquet"))
        tables = [pq.read_table(p) for p in parts]
        table = pa.concat_tables(tables, promote_options="default") if tables else pa.table({})
        columns = {name: table.column(name).to_numpy() for name in table.column_names}
        drift = compare(reference, columns, seed)
    atomic_write_text(Path(out_dir) / DRIFT_FILE, json.dumps(drift.to_dict(), indent=2))
    return drift


def profile_beside(checkpoint: Path) -> Profile | None:
    """The reference profile logged with a model version (beside its checkpoint), if any."""
    found = sorted(Path(checkpoint).parent.rglob(PROFILE_FILE))
    return load_profile(found[0]) if found else None


def build_reference(
    checkpoint: Path, manifest_path: Path, cfg: MonitoringConfig, seed: int = 0
) -> Path | None:
    """The reference profile of the model of ``checkpoint`` (:func:`reference_profile`),
    written beside it; None when monitoring is off."""
    if not cfg.enabled:
        return None
    predictor = Predictor.from_checkpoint(checkpoint, device="auto")
    profile = reference_profile(predictor, Path(manifest_path), cfg, seed)
    return profile.save(Path(checkpoint).with_name(PROFILE_FILE))


def reference_profile(
    predictor: Predictor, manifest_path: Path, cfg: MonitoringConfig, seed: int = 0
) -> Profile:
    """Profile up to ``cfg.reference_rows`` held-out rows of the shard set (val; train when
    val is empty: original rows only) with ``predictor``'s model."""
    manifest = load_manifest(manifest_path)
    x = reference_rows(manifest, manifest_path, cfg.reference_rows, seed)
    inputs = predictor.prepare(x, manifest.normalization)
    preds = predictor.predict_normalized(inputs, embed=True)
    columns = input_features(modality_of(manifest), inputs.numpy())
    columns.update(predictor.task.output_features(preds.outputs, preds.confidence))
    return fit_profile(columns, preds.embeddings, modality_of(manifest), cfg, seed)


def modality_of(manifest: Manifest) -> str:
    return str(manifest.source.get("modality", "image"))  # manifests before it: image


def reference_rows(manifest: Manifest, manifest_path: Path, rows: int, seed: int) -> np.ndarray:
    """A seeded random subset of up to ``rows`` original rows of the val split (else train)."""
    root = manifest_path.parent if manifest_path.is_file() else manifest_path
    split = "val" if manifest.splits.get("val", {}).get("rows", 0) else "train"
    shards = [r for r in manifest.shards if r.split == split]
    total = sum(r.rows for r in shards)
    rng = np.random.default_rng(seed)
    shape = tuple(manifest.input_shape)
    kept = []
    for record in shards:
        table = pq.read_table(root / record.path, columns=["input", "aug"])
        views = input_views(table.column("input"), shape)
        x = np.concatenate(views) if len(views) != 1 else views[0]
        x = x[table.column("aug").to_numpy() == 0]
        take = min(len(x), int(np.ceil(rows * record.rows / max(total, 1))))
        kept.append(x[np.sort(rng.choice(len(x), take, replace=False))])
    return np.concatenate(kept) if kept else np.zeros((0, *shape), np.float32)
