"""The deployments pipelines.yaml asks for: one `retrain` deployment per scheduled pipeline and
one `score` deployment per scoring job, with their schedules, parameters and overlap rules.

``crnn deploy`` applies this plan to a Prefect server's work pool
(:mod:`flows.runtime.deployments`) and ``crnn serve`` runs it in one local process
(:mod:`flows.runtime.serve_schedules`): both read it from here.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from crnn.config import PipelineConfig, PipelinesFile, ScheduleBase
from crnn.config.schedule import fill

MANAGED_TAG = "crnn-schedule"  # every deployment made from pipelines.yaml carries it
SCHEDULE_SLUG = "pipelines-yaml"
ENTRYPOINTS = {"retrain": "flows.retrain.retrain", "score": "flows.score.score_flow"}
COLLISION = {"cancel_new": "CANCEL_NEW", "enqueue": "ENQUEUE"}


@dataclass(frozen=True)
class Planned:
    """One deployment as pipelines.yaml describes it."""

    flow: str  # "retrain" or "score"
    name: str  # the deployment's name: the pipeline, or pipeline-job
    pipeline: str
    schedule: ScheduleBase
    collision: str  # cancel_new | enqueue
    parameters: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    retrain_on_drift_of: str | None = None  # a model whose drift event starts a run

    @property
    def triggers(self) -> list[dict[str, str]]:
        """The events that start a run, in the terms deployments compare them in."""
        from flows.drift_events import DRIFT_EVENT, model_resource

        model = self.retrain_on_drift_of
        return [{"event": DRIFT_EVENT, "resource": model_resource(model)}] if model else []

    @property
    def full_name(self) -> str:
        return f"{self.flow}/{self.name}"

    @property
    def entrypoint(self) -> str:
        return ENTRYPOINTS[self.flow]

    @property
    def tags(self) -> list[str]:
        return [MANAGED_TAG, f"pipeline:{self.pipeline}"]

    def prefect_schedule(self) -> Any:
        """The schedule as Prefect's client schema (cron in its zone, or an interval)."""
        from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule

        s = self.schedule
        if s.cron is not None:
            return CronSchedule(cron=s.cron, timezone=s.timezone)
        assert s.interval is not None
        return IntervalSchedule(interval=timedelta(seconds=float(s.interval)), timezone=s.timezone)

    def next_runs(self, n: int = 3, after: datetime | None = None) -> list[datetime]:
        """The next ``n`` start times in UTC, computed by Prefect's own schedule code."""
        from prefect.server.schemas import schedules

        s = self.schedule
        server_schedule: Any = (
            schedules.CronSchedule(cron=s.cron, timezone=s.timezone)
            if s.cron is not None
            else schedules.IntervalSchedule(
                interval=timedelta(seconds=float(s.interval or 0)), timezone=s.timezone
            )
        )
        start = after or datetime.now(UTC)
        dates = asyncio.run(server_schedule.get_dates(n=n, start=start))
        return [datetime.fromtimestamp(d.timestamp(), UTC) for d in dates]

    def to_dict(self, n_next: int = 3) -> dict[str, Any]:
        s = self.schedule
        return {
            "deployment": self.full_name,
            "entrypoint": self.entrypoint,
            "schedule": {
                "cron": s.cron,
                "interval_seconds": s.interval,
                "timezone": s.timezone,
                "active": s.enabled,
            },
            "next_runs_utc": [d.isoformat() for d in self.next_runs(n_next)],
            "parameters": self.parameters,
            "concurrency": {"limit": 1, "collision_strategy": COLLISION[self.collision]},
            "tags": self.tags,
            "triggers": self.triggers,
        }


def plan(config: PipelinesFile, config_path: Path, workdir: Path | None = None) -> list[Planned]:
    """Every scheduled retraining and scoring job of ``config``, in file order. Parameters name
    the config file relative to ``workdir`` (where runs start) when it lies inside it, else by
    its absolute path."""
    shown = _relative(str(config_path), workdir)
    planned: list[Planned] = []
    for name, pipeline in config.pipelines.items():
        if pipeline.schedule is not None:
            planned.append(_retrain(name, pipeline, shown))
        for job_name, job in pipeline.scoring.items():
            planned.append(
                Planned(
                    flow="score",
                    name=f"{name}-{job_name}",
                    pipeline=name,
                    schedule=job,
                    collision=job.collision,
                    parameters={
                        "model": job.model,
                        "out": _under_workspace(fill(job.out, pipeline=name, job=job_name)),
                        "input_path": job.input and _relative(job.input, workdir),
                        "config_path": shown,
                        "pipeline": name,
                        "chunk_rows": job.chunk_rows,
                        "batch_size": job.batch_size,
                        "timezone": job.timezone,
                    },
                    description=f"Scoring job {job_name!r} of pipeline {name!r}: {job.model}",
                )
            )
    return planned


def _under_workspace(out: str) -> str:
    """A scoring job's output folder as the run resolves it: relative stays relative (under the
    workspace where the run runs, :func:`flows.score.job_folder`), ``~`` expanded."""
    expanded = os.path.expanduser(out)
    return str(Path(expanded).resolve()) if os.path.isabs(expanded) else out


def _relative(path: str, workdir: Path | None) -> str:
    """``path`` relative to ``workdir`` when inside it (a worker may have the project elsewhere),
    else absolute."""
    resolved = Path(path).expanduser().resolve()
    if workdir is not None and resolved.is_relative_to(workdir):
        return os.path.relpath(resolved, workdir)
    return str(resolved)


def _retrain(name: str, pipeline: PipelineConfig, config_path: str) -> Planned:
    schedule = pipeline.schedule
    assert schedule is not None
    return Planned(
        flow="retrain",
        name=name,
        pipeline=name,
        schedule=schedule,
        collision=schedule.collision,
        parameters={
            "pipeline": name,
            "config_path": config_path,
            "overrides": list(schedule.overrides),
            "progress": False,
            "if_changed": not schedule.force,
            **({"from_sweep": schedule.from_sweep} if schedule.from_sweep else {}),
        },
        description=f"Scheduled retraining of pipeline {name!r}: {pipeline.description}",
        retrain_on_drift_of=pipeline.registry.model_name
        if pipeline.monitoring.on_drift == "retrain"
        else None,
    )


def describe(planned: list[Planned]) -> str:
    """A human-readable listing: deployment, when, the next runs, what it runs with."""
    if not planned:
        return "no schedules in the pipelines file (add `schedule:` or `scoring:` to a pipeline)"
    lines = []
    for p in planned:
        nxt = ", ".join(d.strftime("%Y-%m-%d %H:%M UTC") for d in p.next_runs(3))
        lines.append(f"{p.full_name}: {p.schedule.describe()}; overlap: {p.collision}")
        lines.append(f"    next: {nxt}")
        params = ", ".join(f"{k}={v!r}" for k, v in p.parameters.items() if v not in (None, []))
        lines.append(f"    parameters: {params}")
        lines += [f"    also on: {t['event']} about {t['resource']}" for t in p.triggers]
    return "\n".join(lines)
