"""Where a pipeline's work runs: this process, or a Dask cluster's workers (:mod:`crnn.cluster`)."""

from __future__ import annotations

from pydantic import Field

from crnn.config.base import Frozen


class ExecutionConfig(Frozen):
    cluster: str | None = Field(
        None,
        description="A Dask scheduler (tcp://HOST:PORT) or local:N (N worker processes here) that "
        "preprocesses the chunks; --cluster and CRNN_CLUSTER override it; null: this process.",
    )
