"""A sweep in MLflow: one parent run per study (its trials are child runs, ``mlflow.parentRunId``)
holding the space, the sampler and pruner, and at the end the best trial's parameters and score
beside the pipeline as it is, a table of every trial and Optuna's plots."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from mlflow.entities import Metric, Param
from mlflow.exceptions import MlflowException

import crnn
from crnn.config import PipelineConfig
from crnn.errors import UserError
from crnn.secrets import redact
from crnn.tracking.runs import SWEEP_STUDY_TAG, TrackingContext, _now, git_commit

ROLE_TAG, PARENT = "crnn.sweep.role", "parent"
BEST_PREFIX = "best."  # the best trial's values, as params of the parent run
BEST_TRIAL_TAG, BEST_RUN_TAG = "crnn.sweep.best_trial", "crnn.sweep.best_run"
REGISTERED_TAG = "crnn.sweep.registered"  # NAME/VERSION the sweep's best trial became
SWEEP_RUN_TAG = "crnn.sweep_run"  # on a model version, a pipeline run: the sweep it came from


def start_sweep_run(
    ctx: TrackingContext, cfg: PipelineConfig, study: str, shard_digest: str, overrides: list[str]
) -> str:
    """The sweep's parent run: what is searched and how, as params; the space as an artifact."""
    assert cfg.sweep is not None
    changed = " ".join(redact(o) for o in overrides)
    run = ctx.client().create_run(
        ctx.experiment_id,
        run_name=" ".join(p for p in ("sweep", cfg.name, shard_digest[:8], changed) if p)[:240],
        tags={
            "pipeline": cfg.name,
            SWEEP_STUDY_TAG: study,
            ROLE_TAG: PARENT,
            "crnn.version": crnn.__version__,
            "mlflow.source.git.commit": git_commit(),
            "crnn.data_digest": shard_digest,
            "crnn.overrides": changed or "none",
        },
    )
    sweep = cfg.sweep.model_dump(mode="json", exclude={"space", "enqueue", "storage"})
    params = {f"sweep.{k}": str(v) for k, v in sweep.items()}
    params["sweep.storage"] = redact(cfg.sweep.storage) if cfg.sweep.storage else "workspace"
    for path, param in cfg.sweep.space.items():
        params[f"sweep.space.{path}"] = json.dumps(param.model_dump(mode="json", exclude_none=True))
    run_id: str = run.info.run_id
    ctx.client().log_batch(run_id, params=[Param(k, v[:6000]) for k, v in params.items()])
    space = {"space": flatten_space(cfg), "enqueue": [dict(t) for t in cfg.sweep.enqueue]}
    ctx.client().log_text(run_id, yaml.safe_dump(space, sort_keys=False), "sweep/space.yaml")
    return run_id


def flatten_space(cfg: PipelineConfig) -> dict[str, Any]:
    assert cfg.sweep is not None
    return {p: v.model_dump(mode="json", exclude_none=True) for p, v in cfg.sweep.space.items()}


def run_status(ctx: TrackingContext, run_id: str | None) -> str | None:
    """RUNNING, FINISHED, FAILED, KILLED; None for no such run (deleted, another store)."""
    if not run_id:
        return None
    try:
        return str(ctx.client().get_run(run_id).info.status)
    except MlflowException:
        return None


def log_sweep_result(
    ctx: TrackingContext, run_id: str, summary: Mapping[str, Any], table: Any, plots: list[Path]
) -> None:
    """The best trial's values (params ``best.<path>``) and score beside the default's, the
    counts, each trial's score by trial number, the table and the plots."""
    client, metric, ts = ctx.client(), summary["metric"], _now()
    best, default = summary["best"], summary["default"]
    values = {f"sweep/trials_{s}": summary[f"trials_{s}"] for s in ("complete", "pruned", "failed")}
    values[f"sweep/best_{metric}"] = best["value"]
    if default is not None:
        values[f"sweep/default_{metric}"] = default["value"]
        values["sweep/gain"] = summary["gain"]
    metrics = [Metric(k, float(v), ts, 0) for k, v in values.items()]
    metrics += [
        Metric(f"sweep/trial_{metric}", float(r["value"]), ts, int(r["trial"]))
        for r in summary["trials"]
        if r["state"] == "complete"
    ]
    params = [Param(BEST_PREFIX + k, json.dumps(v)) for k, v in best["params"].items()]
    client.log_batch(run_id, metrics=metrics, params=params)
    client.set_tag(run_id, BEST_TRIAL_TAG, str(best["trial"]))
    client.set_tag(run_id, BEST_RUN_TAG, str(best["run_id"]))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "trials.csv"
        table.to_csv(path, index=False)
        client.log_artifact(run_id, str(path), "sweep")
    client.log_text(run_id, json.dumps(summary, indent=1, default=str), "sweep/summary.json")
    for plot in plots:
        client.log_artifact(run_id, str(plot), "sweep/plots")


def best_overrides(ctx: TrackingContext, pipeline: str, ref: str) -> tuple[str, list[str]]:
    """The sweep run ``ref`` (a run id, or ``latest``: the pipeline's newest finished sweep) and
    its best trial's values as ``--set`` overrides; one line when there is none."""
    client = ctx.client()
    if ref == "latest":
        runs = client.search_runs(
            [ctx.experiment_id],
            filter_string=f"tags.pipeline = '{pipeline}' and tags.`{ROLE_TAG}` = '{PARENT}' "
            "and attributes.status = 'FINISHED'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        if not runs:
            raise UserError(f"pipeline {pipeline!r} has no finished sweep; run `crnn sweep` first")
        run = runs[0]
    else:
        try:
            run = client.get_run(ref)
        except MlflowException:
            raise UserError(f"--from-sweep {ref}: no such run in this store") from None
    if run.data.tags.get(ROLE_TAG) != PARENT or run.data.tags.get("pipeline") != pipeline:
        raise UserError(f"--from-sweep {ref}: not a sweep of pipeline {pipeline!r}")
    params = run.data.params
    best = {k.removeprefix(BEST_PREFIX): v for k, v in params.items() if k.startswith(BEST_PREFIX)}
    if not best:
        raise UserError(f"--from-sweep {ref}: the sweep has not finished; no best trial yet")
    return run.info.run_id, [f"{k}={v}" for k, v in sorted(best.items())]


def sweep_overrides(cfg: PipelineConfig, workspace: Path, ref: str) -> tuple[str, list[str]]:
    """:func:`best_overrides` in the pipeline's own store."""
    from crnn.tracking.runs import open_tracking

    return best_overrides(open_tracking(cfg.tracking, workspace), cfg.name, ref)
