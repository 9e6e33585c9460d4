"""`crnn deploy`: the planned deployments (:mod:`flows.runtime.deployment_plan`) applied to a
Prefect server.

Each deployment runs on a named process work pool, starts in ``workdir`` (a pull step) and has a
concurrency limit of 1 with the configured collision strategy, so two runs of one deployment
never overlap. The server's upsert replaces a deployment's schedules wholesale; deployments
this file made earlier (tagged ``crnn-schedule``) that it no longer has lose their schedules,
which Prefect would otherwise keep firing. Unchanged deployments are left alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crnn.errors import UserError
from flows.runtime.deployment_plan import COLLISION, MANAGED_TAG, SCHEDULE_SLUG, Planned

FLOWS = ("retrain", "score")


@dataclass(frozen=True)
class Change:
    deployment: str
    action: str  # created | updated | unchanged | cleared
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.action:<9} {self.deployment}" + (f"  ({self.detail})" if self.detail else "")


def pull_steps(workdir: Path) -> list[dict[str, Any]]:
    return [{"prefect.deployments.steps.set_working_directory": {"directory": str(workdir)}}]


def desired(p: Planned, pool: str, workdir: Path) -> dict[str, Any]:
    """What a deployment should be, in the terms it is compared in."""
    s = p.schedule
    return {
        "work_pool": pool,
        "entrypoint": p.entrypoint,
        "pull_steps": pull_steps(workdir),
        "parameters": p.parameters,
        "tags": sorted(p.tags),
        "concurrency_limit": 1,
        "collision_strategy": COLLISION[p.collision],
        "triggers": p.triggers,
        "schedules": [
            {
                "cron": s.cron,
                "interval": None if s.interval is None else float(s.interval),
                "timezone": s.timezone,
                "active": s.enabled,
            }
        ],
    }


def current(dep: Any) -> dict[str, Any]:
    """The same view of a deployment read from the server."""
    options = dep.concurrency_options
    limit = dep.global_concurrency_limit
    return {
        "work_pool": dep.work_pool_name,
        "entrypoint": dep.entrypoint,
        "pull_steps": dep.pull_steps,
        "parameters": dep.parameters,
        "tags": sorted(dep.tags),
        "concurrency_limit": limit.limit if limit is not None else None,
        "collision_strategy": str(options.collision_strategy.value) if options else None,
        "schedules": [_schedule_view(s) for s in dep.schedules],
    }


def _schedule_view(s: Any) -> dict[str, Any]:
    interval = getattr(s.schedule, "interval", None)
    return {
        "cron": getattr(s.schedule, "cron", None),
        "interval": None if interval is None else interval.total_seconds(),
        "timezone": getattr(s.schedule, "timezone", None),
        "active": s.active,
    }


def apply(planned: list[Planned], pool: str, workdir: Path) -> list[Change]:
    """Create or update every planned deployment on the server in PREFECT_API_URL; clear the
    schedules of managed deployments the file no longer has. Returns what changed."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        _require_server(client)
        changes = [_ensure_pool(client, pool)]
        for p in planned:
            changes.append(_apply_one(client, p, pool, workdir))
        wanted = {p.full_name for p in planned}
        changes += _clear_unplanned(client, wanted)
    return [c for c in changes if c is not None]


def _require_server(client: Any) -> None:
    from prefect.settings import get_current_settings

    from flows.runtime.server_process import require_api

    api_url = get_current_settings().api.url
    if not api_url:
        raise UserError(
            "crnn deploy needs a Prefect server: set PREFECT_API_URL (e.g. "
            "http://127.0.0.1:4200/api), or use `crnn serve` on a machine without one"
        )
    require_api(api_url)


def _ensure_pool(client: Any, pool: str) -> Change | None:
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    try:
        client.read_work_pool(pool)
        return None
    except ObjectNotFound:
        pass
    try:
        client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
    except ObjectAlreadyExists:  # a worker started on the pool made it meanwhile: it is there
        return None
    return Change(f"work pool {pool}", "created", "type process")


def _apply_one(client: Any, p: Planned, pool: str, workdir: Path) -> Change:
    from prefect.exceptions import ObjectNotFound

    want = desired(p, pool, workdir)
    try:
        existing = client.read_deployment_by_name(p.full_name)
    except ObjectNotFound:
        existing = None
    if existing is not None:
        have = {**current(existing), "triggers": _triggers_of(client, existing.id)}
        differs = sorted(k for k in want if want[k] != have.get(k))
        if not differs:
            return Change(p.full_name, "unchanged")
    _create_or_replace(client, p, pool, workdir)
    if existing is None:
        return Change(p.full_name, "created", p.schedule.describe())
    return Change(p.full_name, "updated", ", ".join(differs))


def _create_or_replace(client: Any, p: Planned, pool: str, workdir: Path) -> None:
    from prefect.client.schemas.actions import DeploymentScheduleCreate
    from prefect.client.schemas.objects import ConcurrencyLimitStrategy, ConcurrencyOptions
    from prefect.utilities.callables import parameter_schema
    from prefect.utilities.importtools import import_object

    flow = import_object(p.entrypoint)
    deployment_id = client.create_deployment(  # an upsert: the schedules are replaced whole
        flow_id=client.create_flow_from_name(p.flow),
        name=p.name,
        work_pool_name=pool,
        entrypoint=p.entrypoint,
        pull_steps=pull_steps(workdir),
        parameters=p.parameters,
        parameter_openapi_schema=parameter_schema(flow.fn).model_dump(),
        enforce_parameter_schema=True,
        tags=p.tags,
        description=p.description,
        concurrency_limit=1,
        concurrency_options=ConcurrencyOptions(
            collision_strategy=ConcurrencyLimitStrategy(COLLISION[p.collision])
        ),
        schedules=[
            DeploymentScheduleCreate(
                schedule=p.prefect_schedule(), active=p.schedule.enabled, slug=SCHEDULE_SLUG
            )
        ],
        paused=False,
    )
    _replace_triggers(client, deployment_id, p)


def _replace_triggers(client: Any, deployment_id: Any, p: Planned | None) -> None:
    """The deployment's drift trigger as ``p`` has it (None: none): the automations made for it
    earlier are deleted and made again, as Prefect's own ``deploy`` does."""
    for automation in _drift_automations(client, deployment_id):
        client.delete_automation(automation.id)
    if p is None or p.retrain_on_drift_of is None:
        return
    from flows.drift_events import drift_trigger

    trigger = drift_trigger(p.retrain_on_drift_of)
    trigger.set_deployment_id(deployment_id)
    client.create_automation(trigger.as_automation())


def _drift_automations(client: Any, deployment_id: Any) -> list[Any]:
    """The automations that run the deployment on a drift event (the server does not give back
    which resource owns an automation: they are found by their action and event)."""
    from flows.drift_events import DRIFT_EVENT

    found = []
    for automation in client.read_resource_related_automations(
        f"prefect.deployment.{deployment_id}"
    ):
        runs_it = any(
            getattr(a, "deployment_id", None) == deployment_id for a in automation.actions
        )
        if runs_it and DRIFT_EVENT in (getattr(automation.trigger, "expect", None) or ()):
            found.append(automation)
    return found


def _triggers_of(client: Any, deployment_id: Any) -> list[dict[str, str]]:
    """The deployment's drift triggers, in the terms of :attr:`Planned.triggers`."""
    found = []
    for automation in _drift_automations(client, deployment_id):
        match = getattr(automation.trigger, "match", None)
        resource = match.get("prefect.resource.id") if match is not None else None
        shown = ",".join(resource) if isinstance(resource, list) else str(resource)
        found += [{"event": e, "resource": shown} for e in sorted(automation.trigger.expect)]
    return found


def _clear_unplanned(client: Any, wanted: set[str]) -> list[Change]:
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterTags

    managed = client.read_deployments(
        deployment_filter=DeploymentFilter(tags=DeploymentFilterTags(all_=[MANAGED_TAG]))
    )
    flows = {f.id: f.name for f in client.read_flows()}
    changes = []
    for dep in managed:
        name = f"{flows.get(dep.flow_id, '?')}/{dep.name}"
        if name in wanted or not dep.schedules:
            continue
        for schedule in dep.schedules:
            client.delete_deployment_schedule(dep.id, schedule.id)
        _replace_triggers(client, dep.id, None)  # nor does a drift event start it
        changes.append(Change(name, "cleared", "no longer in the pipelines file"))
    return changes
