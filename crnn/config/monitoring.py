"""Drift monitoring (``monitoring:``): the reference profile a training run stores with its model,
and the thresholds every scoring job compares its inputs and outputs with (:mod:`crnn.monitoring`).

The thresholds are stored in the profile, beside the checkpoint: a scoring job reads them from the
model version it scores, as it reads the normalization statistics, without pipelines.yaml."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from crnn.config.base import Frozen


class MonitoringConfig(Frozen):
    enabled: bool = Field(
        True,
        description="Build a reference profile at training and test every scoring job against "
        "it; false: no profile (scoring says so in one line).",
    )
    reference_rows: int = Field(
        2000,
        ge=20,
        le=100_000,
        description="Held-out rows profiled at training (the val split; train when val is empty).",
    )
    embedding_dims: int = Field(
        8, ge=1, le=64, description="PCA dimensions the penultimate-layer embeddings keep."
    )
    alpha: float = Field(
        0.01,
        gt=0,
        lt=0.5,
        description="Family-wise false-alarm rate of one job: Bonferroni over all its tests.",
    )
    min_ks: float = Field(
        0.1,
        ge=0,
        le=1,
        description="Smallest KS statistic that counts as moved: large jobs do not alarm on "
        "trivial shifts.",
    )
    min_psi: float = Field(
        0.1, ge=0, description="Smallest PSI of a categorical output (class) that counts as moved."
    )
    mmd_rows: int = Field(
        400, ge=20, le=5000, description="Embedding rows a side in the MMD test (a random subset)."
    )
    permutations: int = Field(
        500,
        ge=50,
        le=10_000,
        description="Permutations of the MMD test's p-value (its smallest is 1 / (1 + this)).",
    )
    on_drift: Literal["retrain", "notify", "nothing"] = Field(
        "nothing",
        description="When a scoring job finds drift (its flow run emits the Prefect event "
        "crnn.drift.detected either way): retrain: `crnn deploy` makes the event start a run of "
        "the pipeline's retrain deployment; notify: send a notice (`notifications:`); nothing.",
    )
