"""Normalization fit on the training split only; stored with the shards, bundled with the model."""

from __future__ import annotations

from typing import Any

import numpy as np

METHODS = ("minmax", "symmetric", "standardize", "none")


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
        self._sum = 0.0
        self._sumsq = 0.0
        self._count = 0

    def partial_fit(self, x: np.ndarray) -> Normalizer:
        x64 = np.asarray(x, dtype=np.float64)
        self._min = min(self._min, float(x64.min()))
        self._max = max(self._max, float(x64.max()))
        self._sum += float(x64.sum())
        self._sumsq += float(np.square(x64).sum())
        self._count += x64.size
        return self

    def fit(self, x: np.ndarray) -> Normalizer:
        return Normalizer(self.method).partial_fit(x)._copy_into(self)

    def _copy_into(self, other: Normalizer) -> Normalizer:
        other.__dict__.update(self.__dict__)
        return other

    @property
    def stats_(self) -> dict[str, Any]:
        if self._count == 0:
            raise RuntimeError("Normalizer is not fitted: call fit or partial_fit first")
        mean = self._sum / self._count
        var = max(self._sumsq / self._count - mean * mean, 0.0)
        return {
            "method": self.method,
            "min": self._min,
            "max": self._max,
            "mean": mean,
            "std": float(np.sqrt(var)),
            "count": self._count,
        }

    @classmethod
    def from_stats(cls, stats: dict[str, Any]) -> Normalizer:
        """Rebuild a fitted normalizer from ``stats_`` (as stored in a manifest or checkpoint)."""
        norm = cls(stats["method"])
        norm._min, norm._max, norm._count = stats["min"], stats["max"], int(stats["count"])
        norm._sum = stats["mean"] * norm._count
        norm._sumsq = (stats["std"] ** 2 + stats["mean"] ** 2) * norm._count
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
