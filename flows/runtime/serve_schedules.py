"""`crnn serve`: the schedules of pipelines.yaml run by one long-lived local process.

The planned deployments (:mod:`flows.runtime.deployment_plan`) are served by a Prefect runner in
this process: each run starts in a subprocess, with the same concurrency limit and collision
strategy as a deployed one. Prefect needs a server to keep schedules: with PREFECT_API_URL set that
server is used; without it one is started on 127.0.0.1 with its database in the workspace, and
stopped with this process. Ctrl-C or SIGTERM stops cleanly; the schedules are then paused (Prefect's
runner does that) unless ``pause_on_shutdown`` is off; serving again resumes them."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from flows.runtime.deployment_plan import COLLISION, Planned, describe
from flows.runtime.kept_server import SERVER_HOME  # the served schedules and their runs
from flows.runtime.server_process import local_server, quiet_prefect_sdk


@dataclass(frozen=True)
class Served:
    deployments: int
    api_url: str
    paused: bool
    own_server: bool

    def goodbye(self) -> str:
        where = "the local Prefect server (stopped)" if self.own_server else self.api_url
        if not self.deployments:
            return "crnn serve: stopped"
        if self.paused:
            return (
                f"crnn serve: stopped; the schedules of {self.deployments} deployment(s) are "
                f"paused on {where}. `crnn serve` resumes them."
            )
        return f"crnn serve: stopped; the schedules stay active on {where}"


def serve_schedules(
    planned: list[Planned],
    workspace: Path,
    port: int,
    pause_on_shutdown: bool = True,
    say: Callable[[str], None] = print,
) -> Served:
    """Serve ``planned`` until Ctrl-C / SIGTERM (against PREFECT_API_URL, else a local server)."""
    configured = os.environ.get("PREFECT_API_URL")
    if configured:
        _run(planned, configured, pause_on_shutdown, say)
        return Served(len(planned), configured, pause_on_shutdown, own_server=False)
    home = workspace / SERVER_HOME
    say(f"starting a local Prefect server on 127.0.0.1:{port} (state in {home})")
    with local_server(home, port, home / "server.log") as api_url:
        os.environ["PREFECT_API_URL"] = api_url  # read by Prefect when it is first imported
        quiet_prefect_sdk()
        say(f"Prefect UI: http://127.0.0.1:{port}")
        _run(planned, api_url, pause_on_shutdown, say)
    return Served(len(planned), api_url, pause_on_shutdown, own_server=True)


def _run(
    planned: list[Planned], api_url: str, pause_on_shutdown: bool, say: Callable[[str], None]
) -> None:
    from prefect import serve
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        deployments = [runner_deployment(p) for p in planned]
        say(f"serving {len(deployments)} deployment(s) from the pipelines file:")
        say(describe(planned))
        say("Ctrl-C or SIGTERM stops")
        serve(*deployments, pause_on_shutdown=pause_on_shutdown, print_starting_message=False)


def runner_deployment(p: Planned) -> Any:
    """``p`` as a deployment this process serves (no work pool)."""
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
    from prefect.deployments.runner import EntrypointType
    from prefect.schedules import Cron, Interval
    from prefect.utilities.importtools import import_object

    from flows.drift_events import drift_trigger

    s = p.schedule
    schedule = (
        Cron(s.cron, timezone=s.timezone, active=s.enabled)
        if s.cron is not None
        else Interval(
            timedelta(seconds=float(s.interval or 0)), timezone=s.timezone, active=s.enabled
        )
    )
    flow = import_object(p.entrypoint)
    return flow.to_deployment(
        name=p.name,
        schedules=[schedule],
        parameters=p.parameters,
        tags=p.tags,
        description=p.description,
        concurrency_limit=ConcurrencyLimitConfig(
            limit=1, collision_strategy=ConcurrencyLimitStrategy(COLLISION[p.collision])
        ),
        entrypoint_type=EntrypointType.MODULE_PATH,
        paused=False,  # serving again resumes what the last stop paused
        triggers=[drift_trigger(p.retrain_on_drift_of)] if p.retrain_on_drift_of else [],
    )
