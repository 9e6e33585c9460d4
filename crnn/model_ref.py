"""A concrete registered model version: what a scoring job pins and every scored row carries.
Its own module (no dependencies), so naming a model never imports the scoring engine."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelVersionRef:
    """The concrete model a job uses: resolved once, at the start, and pinned in job.json."""

    name: str
    version: str
    run_id: str
