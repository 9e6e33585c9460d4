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


class DistributedConfig(Frozen):
    """Training on several machines: torchrun on each, meeting at a c10d rendezvous."""

    nodes: int = Field(ge=1, le=1024, description="Machines training together.")
    procs_per_node: int = Field(1, ge=1, le=64, description="Training processes on each machine.")
    rdzv_endpoint: str = Field(
        pattern=r"^[^:\s]+:\d+$",
        description="HOST:PORT where the nodes meet (a free port on the machine that runs "
        "`crnn run`; the others run `crnn join PIPELINE`).",
    )
