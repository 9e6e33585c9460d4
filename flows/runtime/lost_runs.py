"""Runs a lost worker left RUNNING (issue 33 item 3): a worker host gone (the worker and its
flow-run process SIGKILLed, a power cut) leaves its flow run and its MLflow run RUNNING for good;
nothing on that host is left to mark them. Prefect frees the deployment's one concurrency slot
once the dead process stops renewing its lease, and the next run of the deployment starts; at its
start it marks each earlier flow run of the deployment still RUNNING Crashed, with the reason,
and the MLflow runs of that flow run (tag ``crnn.flow_run``) FAILED, then goes on.

The test of "dead" is the lease: a deployment with a concurrency limit of 1 lets one flow run
hold its slot, and this run holds it; another run still RUNNING has lost its lease, so its
process renews nothing (it is gone, or cut off for longer than a lease and its work is stale).
Runs of a deployment without that limit are never touched. The same-host case (a pid that is
gone) is :func:`crnn.tracking.liveness.reap_dead_runs`; this one needs no host in common.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any

from crnn.tracking.liveness import fail_runs_of_flow_run

REASON = (
    "its process stopped renewing the deployment's concurrency lease (its worker or host was "
    "lost); marked by the next run of the deployment, flow run {by}"
)


def in_deployment() -> tuple[str, str]:
    """The flow run this code runs in and its deployment (ids; '' outside one), read from the
    run's context, with no call to the API."""
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    run = context.flow_run if context is not None else None
    if run is None or run.deployment_id is None:
        return "", ""
    return str(run.id), str(run.deployment_id)


def lost_flow_runs(client: Any, flow_run_id: str, deployment_id: str) -> list[Any]:
    """The flow runs of deployment ``deployment_id`` other than ``flow_run_id`` still RUNNING,
    when the deployment allows one at a time (else none: several may run at once)."""
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    deployment = client.read_deployment(deployment_id)
    limit = deployment.global_concurrency_limit
    if limit is None or limit.limit != 1:
        return []
    running = client.read_flow_runs(
        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
        flow_run_filter=FlowRunFilter(
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.RUNNING]))
        ),
    )
    return [run for run in running if str(run.id) != flow_run_id]


def reap_lost_flow_runs(ctx: Any) -> list[str]:
    """In a flow run of a deployment: each of :func:`lost_flow_runs` Crashed, its MLflow runs
    in ``ctx``'s store FAILED, said in one line each (on stderr); their ids. Outside a
    deployment, or when the Prefect API does not answer, nothing."""
    from prefect.client.orchestration import get_client
    from prefect.states import Crashed

    me, deployment_id = in_deployment()
    if not deployment_id:
        return []
    reason = REASON.format(by=me)
    lost: list[str] = []
    with contextlib.suppress(Exception), get_client(sync_client=True) as client:
        for run in lost_flow_runs(client, me, deployment_id):
            client.set_flow_run_state(run.id, Crashed(message=reason), force=True)
            lost.append(str(run.id))
    for run_id in lost:
        failed = fail_runs_of_flow_run(ctx, run_id, reason)
        named = f" and its MLflow run(s) {', '.join(failed)} FAILED" if failed else ""
        print(f"marked flow run {run_id} Crashed{named}: {reason}", file=sys.stderr)
    return lost
