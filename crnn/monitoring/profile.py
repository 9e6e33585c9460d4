"""The reference profile: typed, versioned, plain JSON (:data:`PROFILE_FILE`), written atomically
beside the checkpoint at training and logged with the model version.

It holds, per numeric feature, a random sample of the reference values (what a two-sample test
needs) and a summary a person reads (mean, std, percentiles); per categorical feature (an integer
column: a predicted class), the counts by category; the PCA fit on the reference embeddings and a
sample of them projected; and the ``monitoring:`` settings the comparison uses.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from crnn.atomic import atomic_write_text
from crnn.config.monitoring import MonitoringConfig
from crnn.errors import UserError, format_version

PROFILE_VERSION = 1
PROFILE_FILE = "reference_profile.json"
EMBEDDING_PREFIX = "embedding_"  # the columns of the projected embeddings: embedding_0, ...


@dataclass(frozen=True)
class Embedding:
    """The PCA of the penultimate-layer embeddings, fit on the reference, and a sample of the
    reference projected by it."""

    mean: list[float]
    components: list[list[float]]  # (dims, D)
    sample: list[list[float]]  # (rows, dims)

    def project(self, x: np.ndarray) -> np.ndarray:
        """Embeddings (N, D) in the reference's PCA dimensions (N, dims)."""
        centred = np.asarray(x, np.float32) - np.asarray(self.mean, np.float32)
        return centred @ np.asarray(self.components, np.float32).T

    def columns(self, x: np.ndarray) -> dict[str, np.ndarray]:
        projected = self.project(x)
        return {f"{EMBEDDING_PREFIX}{i}": projected[:, i] for i in range(projected.shape[1])}


@dataclass(frozen=True)
class Profile:
    modality: str  # picks the input features (crnn.monitoring.features)
    rows: int  # reference rows profiled
    numeric: dict[str, list[float]]  # a sample of the reference values, by feature
    categorical: dict[str, list[int]]  # counts by category, by feature
    summary: dict[str, dict[str, float]]  # per numeric feature: mean, std, p05, p50, p95
    embedding: Embedding | None
    monitoring: MonitoringConfig

    def to_dict(self) -> dict[str, Any]:
        e = self.embedding
        return {
            "format_version": PROFILE_VERSION,
            "modality": self.modality,
            "rows": self.rows,
            "numeric": self.numeric,
            "categorical": self.categorical,
            "summary": self.summary,
            "embedding": None if e is None else vars(e),
            "monitoring": self.monitoring.model_dump(mode="json"),
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any], where: str = "profile") -> Profile:
        format_version(raw, "reference profile", where, PROFILE_VERSION, UserError)
        e = raw.get("embedding")
        return cls(
            modality=str(raw["modality"]),
            rows=int(raw["rows"]),
            numeric={k: [float(v) for v in vs] for k, vs in raw["numeric"].items()},
            categorical={k: [int(v) for v in vs] for k, vs in raw["categorical"].items()},
            summary=dict(raw.get("summary") or {}),
            embedding=None if e is None else Embedding(e["mean"], e["components"], e["sample"]),
            monitoring=MonitoringConfig.model_validate(raw.get("monitoring") or {}),
        )

    def save(self, path: Path) -> Path:
        atomic_write_text(path, json.dumps(self.to_dict()))
        return path


def load_profile(path: Path) -> Profile:
    """A profile file; a damaged one, or of a newer format, fails in one line."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
        return Profile.from_dict(raw, str(path))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{path}: not a reference profile this tool wrote ({exc})") from None


def fit_profile(
    columns: dict[str, np.ndarray],
    embeddings: np.ndarray | None,
    modality: str,
    cfg: MonitoringConfig,
    seed: int = 0,
) -> Profile:
    """The profile of reference rows: ``columns`` (per-sample features; integer arrays are
    categories) and ``embeddings`` (N, D) of the same rows."""
    rng = np.random.default_rng(seed)
    rows = len(next(iter(columns.values()))) if columns else 0
    numeric, categorical, summary = {}, {}, {}
    for name, values in columns.items():
        if np.issubdtype(values.dtype, np.integer):
            categorical[name] = np.bincount(values.astype(np.int64)).tolist()
            continue
        kept = values[np.isfinite(values)].astype(np.float64)
        if len(kept) > cfg.reference_rows:
            kept = rng.choice(kept, cfg.reference_rows, replace=False)
        numeric[name] = np.sort(kept).tolist()
        summary[name] = describe(kept)
    embedding = None
    if embeddings is not None and len(embeddings) >= 3:
        embedding = fit_embedding(embeddings, cfg, rng)
    return Profile(modality, rows, numeric, categorical, summary, embedding, cfg)


def describe(values: np.ndarray) -> dict[str, float]:
    if not len(values):
        return {}
    p05, p50, p95 = np.percentile(values, [5, 50, 95])
    stats = {"mean": values.mean(), "std": values.std(), "p05": p05, "p50": p50, "p95": p95}
    return {k: float(v) for k, v in stats.items()}


def fit_embedding(x: np.ndarray, cfg: MonitoringConfig, rng: np.random.Generator) -> Embedding:
    """A PCA of the reference embeddings (N, D) to ``cfg.embedding_dims``, and up to
    ``cfg.mmd_rows`` of them projected."""
    from sklearn.decomposition import PCA

    x = np.asarray(x, np.float64)
    dims = max(1, min(cfg.embedding_dims, x.shape[1], len(x) - 1))
    pca = PCA(n_components=dims, random_state=0).fit(x)
    kept = x if len(x) <= cfg.mmd_rows else x[rng.choice(len(x), cfg.mmd_rows, replace=False)]
    mean, components = pca.mean_.tolist(), pca.components_.tolist()
    sample = Embedding(mean, components, []).project(kept)
    return Embedding(mean, components, sample.astype(np.float64).tolist())
