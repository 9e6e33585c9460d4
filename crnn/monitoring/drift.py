"""The comparison: what a scoring job scored against the model's reference profile.

Each numeric feature gets a two-sample Kolmogorov-Smirnov test, each categorical one a chi-square
test of its frequencies (effect: PSI), and the projected embeddings one multivariate test: the
maximum mean discrepancy with a Gaussian kernel (median bandwidth), its p-value by permutation.
False alarms are held to ``alpha`` for the whole job: half of it goes to the embedding test, the
other half is split evenly over the features (Bonferroni). A feature moves only when its
p-value passes and its effect passes the floor (``min_ks``, ``min_psi``): a job of millions of
rows detects a trivial shift with a tiny p-value, and should not alarm on it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from crnn.monitoring.profile import EMBEDDING_PREFIX, Profile

NO_REFERENCE = "no reference"


@dataclass(frozen=True)
class FeatureTest:
    feature: str
    test: str  # ks | chi2 | mmd
    statistic: float  # the KS statistic, the PSI or the MMD^2
    p_value: float
    moved: bool


@dataclass
class Drift:
    """A job's verdict: ``detected`` when any test moved; ``reference`` False when the model
    version has no profile (registered before profiles, or with monitoring off)."""

    detected: bool = False
    reference: bool = True
    rows: int = 0  # rows compared
    alpha: float = 0.0
    moved: list[FeatureTest] = field(default_factory=list)
    tests: list[FeatureTest] = field(default_factory=list)
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        return drift_line(self.to_dict())


def drift_line(drift: dict[str, Any]) -> str:
    """A job's drift (:meth:`Drift.to_dict`) in one line, for the console summary."""
    if not drift.get("reference", False):
        return f"drift: {NO_REFERENCE} ({drift.get('note') or 'none given'})"
    tests, moved = drift["tests"], drift["moved"]
    if not drift["detected"]:
        return f"drift: none ({len(tests)} tests over {drift['rows']} rows, alpha {drift['alpha']})"
    shown = ", ".join(
        f"{t['feature']} ({t['test']} {t['statistic']:.3g}, p {t['p_value']:.2g})" for t in moved
    )
    return f"drift: DETECTED in {len(moved)} of {len(tests)} tests: {shown}"


def drift_metrics(drift: dict[str, Any]) -> dict[str, float]:
    """A job's drift as ``drift_*`` product metrics (MLflow: ``drift/...``): detected (0/1), how
    many tests moved, and each test's statistic; none without a reference."""
    if not drift.get("reference", False):
        return {}
    out = {"drift_detected": float(drift["detected"]), "drift_moved": float(len(drift["moved"]))}
    out.update({f"drift_{t['feature']}": float(t["statistic"]) for t in drift["tests"]})
    return out


def no_reference(why: str) -> Drift:
    return Drift(reference=False, note=why)


def compare(profile: Profile, columns: dict[str, np.ndarray], seed: int = 0) -> Drift:
    """Test ``columns`` (per-sample features of the scored rows, as the profile's) against the
    reference ``profile``."""
    cfg = profile.monitoring
    features = [n for n in [*profile.numeric, *profile.categorical] if n in columns]
    dims = [c for c in columns if c.startswith(EMBEDDING_PREFIX)]
    share = cfg.alpha / 2 if profile.embedding is not None and dims else cfg.alpha
    per_feature = share / max(len(features), 1)
    tests = []
    for name in features:
        if name in profile.numeric:
            tests.append(ks_test(name, profile.numeric[name], columns[name], per_feature, cfg))
        else:
            counts = profile.categorical[name]
            tests.append(chi2_test(name, counts, columns[name], per_feature, cfg.min_psi))
    if profile.embedding is not None and dims:
        observed = np.column_stack([columns[c] for c in sorted(dims, key=_dim)])
        reference = np.asarray(profile.embedding.sample, np.float64)
        rng = np.random.default_rng(seed)
        tests.append(mmd_test(reference, observed, cfg.alpha - share, cfg, rng))
    rows = len(next(iter(columns.values()))) if columns else 0
    moved = [t for t in tests if t.moved]
    return Drift(bool(moved), True, rows, cfg.alpha, moved, tests)


def _dim(column: str) -> int:
    return int(column[len(EMBEDDING_PREFIX) :])


def ks_test(
    name: str, reference: list[float], values: np.ndarray, alpha: float, cfg: Any
) -> FeatureTest:
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    if not len(values) or not reference:
        return FeatureTest(name, "ks", 0.0, 1.0, False)
    result = stats.ks_2samp(reference, values)
    d, p = float(result.statistic), float(result.pvalue)
    return FeatureTest(name, "ks", d, p, p < alpha and d >= cfg.min_ks)


def chi2_test(
    name: str, counts: list[int], values: np.ndarray, alpha: float, min_psi: float
) -> FeatureTest:
    observed = np.bincount(np.asarray(values, np.int64), minlength=len(counts))
    reference = np.zeros(len(observed), np.int64)
    reference[: len(counts)] = counts
    table = np.vstack([reference, observed])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return FeatureTest(name, "chi2", 0.0, 1.0, False)
    p = float(stats.chi2_contingency(table).pvalue)
    psi = population_stability(table[0], table[1])
    return FeatureTest(name, "chi2", psi, p, p < alpha and psi >= min_psi)


def population_stability(reference: np.ndarray, observed: np.ndarray, eps: float = 1e-4) -> float:
    """The population stability index of two count vectors over the same categories."""
    p = np.maximum(reference / reference.sum(), eps)
    q = np.maximum(observed / observed.sum(), eps)
    return float(((q - p) * np.log(q / p)).sum())


def mmd_test(
    reference: np.ndarray, observed: np.ndarray, alpha: float, cfg: Any, rng: np.random.Generator
) -> FeatureTest:
    """MMD^2 (biased) of a Gaussian kernel between the two samples (up to ``cfg.mmd_rows``
    a side), its p-value the share of ``cfg.permutations`` relabelings as large."""
    observed = observed[np.isfinite(observed).all(axis=1)]
    if len(observed) > cfg.mmd_rows:
        observed = observed[rng.choice(len(observed), cfg.mmd_rows, replace=False)]
    if len(observed) < 2 or len(reference) < 2:
        return FeatureTest("embedding", "mmd", 0.0, 1.0, False)
    z = np.vstack([reference, observed]).astype(np.float64)
    sq = (z * z).sum(axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * z @ z.T, 0.0)
    positive = d2[d2 > 0]
    kernel = np.exp(-d2 / (np.median(positive) if len(positive) else 1.0))
    n, m = len(reference), len(observed)
    signs = np.concatenate([np.full(n, 1.0 / n), np.full(m, -1.0 / m)])
    weights = np.vstack([signs, *(rng.permutation(signs) for _ in range(cfg.permutations))])
    values = ((weights @ kernel) * weights).sum(axis=1)
    mmd2 = float(values[0])
    p = float((1 + (values[1:] >= mmd2).sum()) / (1 + cfg.permutations))
    return FeatureTest("embedding", "mmd", mmd2, p, p < alpha)
