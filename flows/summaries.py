"""What a run says when it ends: the summaries `crnn run` and `crnn sweep` print (or `--json`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crnn.config import PipelineConfig
from crnn.data.loader import load_manifest
from crnn.data.preprocess import ShardSet
from crnn.engine.callbacks import TrainResult
from crnn.inference.evaluate import EvalReport
from crnn.secrets import redact
from crnn.workspace import Workspace

if TYPE_CHECKING:
    from crnn.tracking.ref import SweepRef, TrackingRef
    from crnn.tracking.registry import RegistrationResult


def run_summary(
    cfg: PipelineConfig,
    workspace: Workspace,
    shards: ShardSet,
    ref: TrackingRef,
    trained: TrainResult,
    report: EvalReport,
    registration: RegistrationResult,
) -> dict[str, Any]:
    from crnn.tracking.runs import run_url_hint

    return {
        "pipeline": cfg.name,
        "workspace": str(workspace.root),
        "shards": shards_summary(shards),
        "training": {
            "best_epoch": trained.best_epoch,
            "epochs_run": trained.epochs_run,
            "seconds": round(trained.seconds, 1),
            "checkpoint": str(trained.best_checkpoint),
            "setup": trained.setup,
        },
        # compute time of each stage; the rest of a flow's wall time is tracking + orchestration
        "timings": {
            "preprocess": shards.seconds,
            "train": trained.seconds - trained.callback_seconds,
            "train_callbacks": trained.callback_seconds,
            "evaluate": report.seconds,
        },
        "metrics": report.metrics,
        "mlflow": {
            "tracking_uri": redact(ref.tracking_uri),
            "experiment": ref.experiment_name,
            "run_id": ref.run_id,
            "resumed": ref.resumed,
            "ui": run_url_hint(ref.context()),
        },
        "registry": registration.summary(),
    }


def skipped_summary(
    cfg: PipelineConfig, workspace: Workspace, shards: ShardSet, last_version: str
) -> dict[str, Any]:
    reason = (
        f"no new data: shard set {shards.digest[:16]} and the training config equal those of "
        f"{cfg.registry.model_name} version {last_version}; nothing registered (force: true "
        "in the schedule retrains anyway)"
    )
    return {
        "pipeline": cfg.name,
        "workspace": str(workspace.root),
        "skipped": True,
        "reason": reason,
        "shards": shards_summary(shards),
        "registry": {"model_name": cfg.registry.model_name, "last_version": last_version},
    }


def shards_summary(shards: ShardSet) -> dict[str, Any]:
    quarantine = load_manifest(shards.manifest_path).quarantine
    return {
        "digest": shards.digest,
        "manifest": str(shards.manifest_path),
        "reused": shards.reused,
        "quarantined": quarantine.total,
        "quarantined_by_reason": dict(quarantine.by_reason),
    }


def sweep_summary(
    cfg: PipelineConfig,
    workspace: Workspace,
    shards: ShardSet,
    ref: SweepRef,
    result: dict[str, Any],
) -> dict[str, Any]:
    from crnn.tracking.runs import run_url_hint

    return {
        "pipeline": cfg.name,
        "workspace": str(workspace.root),
        "shards": shards_summary(shards),
        "study": ref.study,
        "trials_lost_and_rerun": ref.lost,
        "trials_finished_before": ref.finished,
        **result,
        "mlflow": {
            "tracking_uri": redact(ref.parent.tracking_uri),
            "experiment": ref.parent.experiment_name,
            "parent_run_id": ref.parent.run_id,
            "ui": run_url_hint(ref.parent.context()),
        },
    }
