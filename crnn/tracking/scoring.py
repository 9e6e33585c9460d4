"""The MLflow side of batch scoring: resolve ``NAME@ALIAS`` / ``NAME/VERSION`` to one version, fetch
its checkpoint, and record the job as a run in the scoring experiment."""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import TYPE_CHECKING

import mlflow
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException

from crnn.errors import UserError
from crnn.model_ref import ModelVersionRef
from crnn.secrets import redact
from crnn.tracking.runs import TrackingContext, _now

if TYPE_CHECKING:  # the scoring engine (torch) is not needed to name a model
    from crnn.scoring import ScoreSummary

SPEC = re.compile(r"^(?P<name>[^@/]+)(?:@(?P<alias>[\w-]+)|/(?P<version>\d+))$")


def _not_found(ctx: TrackingContext, spec: str, name: str, alias: str | None) -> str:
    """Why ``spec`` resolves to nothing, in one line: no such model, or no version holds the
    alias (a model no version of which passed the gate has no champion)."""
    try:
        ctx.client().get_registered_model(name)
    except MlflowException:
        names = [m.name for m in ctx.client().search_registered_models(max_results=1000)]
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return (
            f"model {name!r} is not in the registry at {redact(ctx.tracking_uri)}{hint}; "
            "`crnn models` lists what is"
        )
    if alias:
        return (
            f"model {name!r} has no version with the alias {alias!r} yet; train one with "
            f"`crnn run` or choose one with `crnn promote {name} VERSION`"
        )
    return f"model {spec!r}: no such version; see the Models page of the MLflow UI"


def resolve_model(ctx: TrackingContext, spec: str) -> ModelVersionRef:
    """``NAME@ALIAS`` or ``NAME/VERSION`` -> the concrete version, now (never again mid-job)."""
    m = SPEC.match(spec.strip())
    if m is None:
        raise UserError(
            f"model {spec!r}: write NAME@ALIAS (e.g. crnn-digits@champion) or NAME/VERSION"
        )
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
    }
    params = {
        "model_name": m.name,
        "model_version": m.version,
        "input": summary.input[:6000],
        "output": summary.output[:6000],
    }
    client.log_batch(
        run_id,
        metrics=[Metric(k, float(v), ts, 0) for k, v in metrics.items()],
        params=[Param(k, v) for k, v in params.items()],
        tags=[RunTag("mlflow.runName", f"score-{m.name}-v{m.version}")],
    )
    from crnn.scoring import SUMMARY_FILE

    summary_file = Path(summary.output) / SUMMARY_FILE
    if summary_file.is_file():
        client.log_artifact(run_id, str(summary_file))
    client.set_terminated(run_id, "FINISHED")
    return run_id
