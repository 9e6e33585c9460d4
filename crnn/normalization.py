"""Normalization fit on the training split only; stored with the shards, bundled with the model."""

from __future__ import annotations

from typing import TypedDict

import numpy as np

METHODS = ("minmax", "symmetric", "standardize", "none")


class NormalizationStats(TypedDict):
    """A fitted normalizer, as manifests and checkpoints keep it (JSON)."""

    method: str
    min: float
    max: float
    mean: float
    std: float
    count: int


class Normalizer:
    """Scales raw inputs: ``minmax`` to [0, 1], ``symmetric`` to [-1, 1], ``standardize`` to z.

    Streaming: call :meth:`partial_fit` on each training chunk, then :meth:`transform` anything.
    Learned statistics live in ``stats_`` (a plain dict: JSON for manifests, safe in checkpoints).
    """

    def __init__(self, method: str = "minmax") -> None:
        if method not in METHODS:
            raise ValueError(f"unknown normalization {method!r}; known: {', '.join(METHODS)}")
        self.method = method
        self._min = np.inf
        self._max = -np.inf
        self._mean = 0.0
        self._m2 = 0.0  # sum of squared deviations from the mean
        self._count = 0

    def partial_fit(self, x: np.ndarray) -> Normalizer:
        """Fold a chunk in with Chan et al.'s pairwise update of (count, mean, M2): exact to
        float64 rounding whatever the offset of the data (sums of squares are not)."""
        x64 = np.asarray(x, dtype=np.float64)
        n = x64.size
        if n == 0:
            return self
        self._min = min(self._min, float(x64.min()))
        self._max = max(self._max, float(x64.max()))
        mean = float(x64.mean())
        m2 = float(np.square(x64 - mean).sum())
        total = self._count + n
        delta = mean - self._mean
        self._mean += delta * n / total
        self._m2 += m2 + delta * delta * self._count * n / total
        self._count = total
        return self

    def fit(self, x: np.ndarray) -> Normalizer:
        return Normalizer(self.method).partial_fit(x)._copy_into(self)

    def _copy_into(self, other: Normalizer) -> Normalizer:
        other.__dict__.update(self.__dict__)
        return other

    @property
    def stats_(self) -> NormalizationStats:
        if self._count == 0:
            raise RuntimeError("Normalizer is not fitted: call fit or partial_fit first")
        return {
            "method": self.method,
            "min": self._min,
            "max": self._max,
            "mean": self._mean,
            "std": float(np.sqrt(max(self._m2 / self._count, 0.0))),
            "count": self._count,
        }

    @classmethod
    def from_stats(cls, stats: NormalizationStats) -> Normalizer:
        """Rebuild a fitted normalizer from ``stats_`` (as stored in a manifest or checkpoint)."""
        norm = cls(stats["method"])
        norm._min, norm._max, norm._count = stats["min"], stats["max"], int(stats["count"])
        norm._mean = float(stats["mean"])
        norm._m2 = float(stats["std"]) ** 2 * norm._count
        return norm

    def scale_offset(self) -> tuple[float, float]:
        """(scale, offset) with ``transform(x) == x * scale + offset``."""
        s = self.stats_
        if self.method == "none":
            return 1.0, 0.0
        if self.method == "standardize":
            scale = 1.0 / max(s["std"], 1e-12)
            return scale, -s["mean"] * scale
        span = max(s["max"] - s["min"], 1e-12)
        if self.method == "minmax":
            return 1.0 / span, -s["min"] / span
        return 2.0 / span, -2.0 * s["min"] / span - 1.0  # symmetric

    def transform(self, x: np.ndarray) -> np.ndarray:
        scale, offset = self.scale_offset()
        out = np.asarray(x, dtype=np.float32) * np.float32(scale)
        out += np.float32(offset)
        return out

    def inverse_transform(self, x: np.ndarray) -> np.ndarray:
        """Back to source units (for display and input examples)."""
        scale, offset = self.scale_offset()
        return ((np.asarray(x, dtype=np.float32) - np.float32(offset)) / np.float32(scale)).astype(
            np.float32
        )
