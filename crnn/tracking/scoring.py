"""The MLflow side of batch scoring: resolve ``NAME@ALIAS`` / ``NAME/VERSION`` to one version, fetch
its checkpoint, and record the job as a run in the scoring experiment."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import mlflow
from mlflow.entities import Param, RunTag
from mlflow.exceptions import MlflowException

from crnn.errors import UserError
from crnn.monitoring import drift_metrics
from crnn.tracking.model_ref import no_such_alias, no_such_model, parse_spec
from crnn.tracking.runs import TrackingContext, _now, as_metrics
from crnn.types.records import ModelVersionRef

if TYPE_CHECKING:  # the scoring engine (torch) is not needed to name a model
    from crnn.inference.scoring import ScoreSummary


def _not_found(ctx: TrackingContext, spec: str, name: str, alias: str | None) -> str:
    """Why ``spec`` resolves to nothing, in one line: no such model, or no version holds the
    alias."""
    try:
        ctx.client().get_registered_model(name)
    except MlflowException:
        names = [m.name for m in ctx.client().search_registered_models(max_results=1000)]
        return no_such_model(name, ctx.tracking_uri, names)
    if alias:
        return no_such_alias(name, alias)
    return f"model {spec!r}: no such version; see the Models page of the MLflow UI"


def resolve_model(ctx: TrackingContext, spec: str) -> ModelVersionRef:
    """``NAME@ALIAS`` or ``NAME/VERSION`` -> the concrete version, now (never again mid-job)."""
    m = parse_spec(spec)
    client = ctx.client()
    try:
        if m["alias"]:
            mv = client.get_model_version_by_alias(m["name"], m["alias"])
        else:
            mv = client.get_model_version(m["name"], m["version"])
    except MlflowException:
        raise UserError(_not_found(ctx, spec, m["name"], m["alias"])) from None
    return ModelVersionRef(str(mv.name), str(mv.version), str(mv.run_id or ""))


def download_checkpoint(ctx: TrackingContext, ref: ModelVersionRef, dst: Path) -> Path:
    """The version's weights + preprocessing (a state_dict checkpoint, loaded weights_only)."""
    uri = ctx.client().get_model_version_download_uri(ref.name, ref.version)
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dst)))
    found = sorted(local.rglob("*.pt"))
    if not found:
        raise UserError(f"{ref.name} version {ref.version}: no checkpoint in its model artifacts")
    return found[0]


def log_scoring_run(ctx: TrackingContext, summary: ScoreSummary) -> str:
    """One run per scoring job attempt in ``ctx``'s experiment: what, with which model, how many."""
    client = ctx.client()
    m = summary.model
    now = _now()
    run = client.create_run(
        ctx.experiment_id,
        start_time=now - int(summary.seconds * 1000),  # the job's own duration, not logging's
        run_name=f"score-{m.name}-v{m.version}",
        tags={
            "crnn.job": "score",
            "crnn.model_uri": f"models:/{m.name}/{m.version}",
            "crnn.model_run_id": m.run_id,
            "crnn.model_name": m.name,
            "crnn.model_version": m.version,
            # the run page renders the note: a link to the model version the job used
            "mlflow.note.content": f"Scored with [{m.name} version {m.version}]"
            f"(#/models/{m.name}/versions/{m.version}); trained in run {m.run_id}.",
        },
    )
    run_id: str = run.info.run_id
    ts = _now()
    metrics = {
        "rows_in": summary.rows_in,
        "rows_scored": summary.rows_scored,
        "rows_quarantined": summary.rows_quarantined,
        "chunks_scored": summary.chunks_scored,
        "chunks_skipped": summary.chunks_skipped,
        "rows_per_s": summary.rows_per_s,
        "seconds": summary.seconds,
        **{f"quarantined_{k}": v for k, v in summary.quarantined_by_reason.items()},
        **{f"truth_{k}": v for k, v in summary.against_truth.items()},  # truth_cer, truth_rows
    }
    if summary.rows_for_review is not None:
        metrics["rows_for_review"] = summary.rows_for_review
    params = {
        "model_name": m.name,
        "model_version": m.version,
        "input": summary.input[:6000],
        "output": summary.output[:6000],
    }
    scoring = {f"scoring_{k}": v for k, v in metrics.items()}
    client.log_batch(
        run_id,
        metrics=as_metrics({**scoring, **drift_metrics(summary.drift)}, ts),
        params=[Param(k, v) for k, v in params.items()],
        tags=[RunTag("mlflow.runName", f"score-{m.name}-v{m.version}")],
    )
    from crnn.inference.scoring import SUMMARY_FILE

    summary_file = Path(summary.output) / SUMMARY_FILE
    review = [Path(summary.review_file)] if summary.review_file else []
    for kept in [summary_file, *review]:
        if kept.is_file():
            client.log_artifact(run_id, str(kept))
    if summary.drift:
        client.log_dict(run_id, summary.drift, "drift.json")
    client.set_terminated(run_id, "FINISHED")
    return run_id
