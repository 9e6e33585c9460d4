"""The `score` flow: a registered model over new data, as a batch job.

The model spec (``NAME@ALIAS`` / ``NAME/VERSION``) is resolved to one version at the start and
pinned in the output folder; a re-run of a crashed job keeps that version and skips the chunks
already written. The job is logged as a run of the scoring experiment.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from crnn.config import TrackingConfig
from crnn.config.schedule import fill, out_fields
from crnn.errors import UserError
from crnn.inference.scoring import ScoreSummary, input_chunks, job_plan, pinned_model, score
from crnn.types.records import ModelVersionRef
from flows.drift_events import act_on_drift
from flows.notices import notify_failed_run

SCORING_EXPERIMENT = "scoring"


def input_spec(input_path: str | None, shards: str | None) -> str:
    if shards:
        return f"shards:{Path(shards).resolve()}"
    return f"source:{Path(input_path).resolve()}" if input_path else "source:(embedded)"


@task(name="resolve-model", cache_policy=NO_CACHE)
def resolve_task(
    model: str, tracking_uri: str, workspace: str, out: str, spec: str
) -> ModelVersionRef:
    from crnn.tracking.scoring import resolve_model

    pinned = pinned_model(Path(out), spec)
    if pinned is not None and "@" in model and model.split("@")[0] == pinned.name:
        return pinned  # a re-run finishes with the version it started with, wherever the alias is
    return resolve_model(_ctx(tracking_uri, None, workspace), model)


@task(name="score", cache_policy=NO_CACHE)
def score_task(
    ref: ModelVersionRef,
    tracking_uri: str,
    workspace: str,
    input_path: str | None,
    shards: str | None,
    out: str,
    spec: str,
    chunk_rows: int,
    batch_size: int,
    on_chunk: Any = None,
    review_below: float | None = None,
    cluster: str | None = None,
) -> ScoreSummary:
    from crnn.engine.checkpoint import load_checkpoint
    from crnn.inference.monitor import profile_beside
    from crnn.inference.predictor import Predictor
    from crnn.tracking.scoring import download_checkpoint

    with tempfile.TemporaryDirectory(prefix="crnn-score-") as tmp, fanned_out(cluster) as mapper:
        checkpoint = download_checkpoint(_ctx(tracking_uri, None, workspace), ref, Path(tmp))
        ckpt = load_checkpoint(checkpoint)
        predictor = Predictor(ckpt, device="auto")
        chunks = input_chunks(ckpt, ref, input_path, shards, chunk_rows)
        plan = job_plan(shards, chunk_rows)
        fan_out = None if mapper is None else (mapper, checkpoint)
        args = (on_chunk, plan, review_below, fan_out, profile_beside(checkpoint))
        return score(predictor, ref, chunks, Path(out), spec, batch_size, *args)


@contextmanager
def fanned_out(cluster: str | None) -> Iterator[Any]:
    """A mapper over ``cluster`` (:mod:`crnn.cluster`) for the job's parts; None: this process."""
    if not cluster:
        yield None
        return
    from crnn.cluster import connect

    with connect(cluster) as mapper:
        yield mapper


@task(name="log-scoring-run", cache_policy=NO_CACHE)
def log_task(summary: ScoreSummary, tracking_uri: str, workspace: str, experiment: str) -> str:
    from crnn.tracking.scoring import log_scoring_run

    return log_scoring_run(_ctx(tracking_uri, experiment, workspace), summary)


@flow(
    name="score", log_prints=False, on_failure=[notify_failed_run], on_crashed=[notify_failed_run]
)
def score_flow(
    model: str,
    out: str,
    tracking_uri: str | None = None,
    workspace: str | None = None,
    input_path: str | None = None,
    shards: str | None = None,
    chunk_rows: int = 4096,
    batch_size: int = 256,
    experiment: str = SCORING_EXPERIMENT,
    on_chunk: Any = None,
    config_path: str = "pipelines.yaml",
    pipeline: str | None = None,
    timezone: str = "UTC",
    review_below: float | None = None,
    cluster: str | None = None,
) -> dict[str, Any]:
    """Score ``input_path`` (new data in the model's source format; none: the source's own data)
    or a shard set with ``model``; returns the job summary and the scoring run id.

    ``out`` (a relative one: under the workspace) may be a template ({date}, {datetime},
    {flow_run_id}, {flow_run_name}): each run then writes its own folder, dated by its scheduled
    start in ``timezone``. Without ``tracking_uri`` / ``workspace`` they are resolved where the
    run runs, from ``config_path`` and ``pipeline`` (MLFLOW_TRACKING_URI wins): no store address
    is kept in a deployment.
    ``review_below``: list the rows less confident than this in the output's ``_review.csv``.
    ``cluster``: score the parts on this Dask cluster (``tcp://HOST:PORT`` or ``local:N``).
    """
    if tracking_uri is None or workspace is None:
        tracking_uri, workspace = _store_of(config_path, pipeline)
    out = job_folder(run_folder(out, timezone), workspace)
    spec = input_spec(input_path, shards)
    ref = resolve_task(model, tracking_uri, workspace, out, spec)
    summary = score_task(
        ref,
        tracking_uri,
        workspace,
        input_path,
        shards,
        out,
        spec,
        chunk_rows,
        batch_size,
        on_chunk,
        review_below,
        cluster,
    )
    drift_artifact(summary.drift)
    act_on_drift(summary.drift, ref, config_path, pipeline)  # the event; a notice if asked
    run_id = log_task(summary, tracking_uri, workspace, experiment)
    return {**summary.to_dict(), "mlflow_run_id": run_id}


def drift_artifact(drift: dict[str, Any]) -> None:
    """The job's drift as a table artifact of the flow run (a row per test; none without a
    reference), described by its one-line verdict."""
    from prefect.artifacts import create_table_artifact

    from crnn.monitoring import drift_line

    rows = [
        {k: t[k] for k in ("feature", "test", "statistic", "p_value", "moved")}
        for t in drift.get("tests", [])
    ]
    create_table_artifact(table=rows, key="drift", description=drift_line(drift))


def job_folder(out: str, workspace: str) -> str:
    """Where the job writes: ``out``, a relative one under ``workspace`` (on a team, the shared
    workspace every worker mounts; never the checkout a worker happens to run in)."""
    expanded = Path(out).expanduser()
    return str(expanded if expanded.is_absolute() else Path(workspace) / expanded)


def run_folder(out: str, timezone: str) -> str:
    """``out`` with this flow run's fields filled in (a plain folder stays as it is)."""
    try:
        if not out_fields(out):
            return out
    except ValueError as exc:
        raise UserError(f"--out / out: {exc}; escape a literal brace as {{{{ or }}}}") from None
    from prefect.runtime import flow_run

    started = flow_run.scheduled_start_time or datetime.now(UTC)
    local = started.astimezone(ZoneInfo(timezone))
    return fill(
        out,
        date=local.strftime("%Y-%m-%d"),
        datetime=local.strftime("%Y-%m-%dT%H%M%S"),
        flow_run_id=str(flow_run.id),
        flow_run_name=str(flow_run.name),
    )


def _store_of(config_path: str, pipeline: str | None) -> tuple[str, str]:
    from crnn.config import load_pipeline
    from crnn.tracking.uri import resolve_tracking_uri
    from crnn.workspace import resolve_workspace

    if not Path(config_path).is_file() and os.environ.get("MLFLOW_TRACKING_URI"):
        from crnn.tracking.uri import USER_TRACKING_URI
        from crnn.workspace import state_outside_a_project

        assert USER_TRACKING_URI is not None
        return USER_TRACKING_URI, str(state_outside_a_project())  # outside a project
    config_file, cfg = load_pipeline(config_path, pipeline, ())
    ws = resolve_workspace(config_file.workspace, Path(config_path))
    return resolve_tracking_uri(cfg.tracking, ws.root), str(ws.root)


def _ctx(tracking_uri: str, experiment: str | None, workspace: str) -> Any:
    from crnn.tracking import open_tracking

    cfg = TrackingConfig(tracking_uri=tracking_uri, experiment=experiment or SCORING_EXPERIMENT)
    return open_tracking(cfg, Path(workspace))
