"""What a run says when it ends: the summaries `crnn run` and `crnn sweep` print (or `--json`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, NotRequired, TypedDict, final

from crnn.config import PipelineConfig
from crnn.data.loader import load_manifest
from crnn.data.preprocess import ShardSet
from crnn.engine.callbacks import TrainResult
from crnn.inference.evaluate import EvalReport
from crnn.secrets import redact
from crnn.sweep.results import SweepResult
from crnn.workspace import Workspace

if TYPE_CHECKING:
    from crnn.tracking.ref import SweepRef, TrackingRef
    from crnn.tracking.registry import RegistrationResult, RegistrationSummary


class ShardsSummary(TypedDict):
    digest: str
    manifest: str
    reused: bool
    quarantined: int
    quarantined_by_reason: dict[str, int]


class TrainingSummary(TypedDict):
    best_epoch: int
    epochs_run: int
    seconds: float
    checkpoint: str
    setup: dict[str, str]


class StageTimings(TypedDict):
    """Compute time of each stage; the rest of a flow's wall time is tracking + orchestration."""

    preprocess: float
    train: float
    train_callbacks: float
    evaluate: float


class BaselineSummary(TypedDict):
    """The model beside the classical baseline fit in the same run, on one test metric."""

    name: str  # svc, tfidf, mfcc
    metric: str  # the gate metric where the baseline scores it, else test_accuracy
    model: float
    baseline: float


class RunPlace(TypedDict):
    tracking_uri: str
    experiment: str
    run_id: str
    resumed: bool
    ui: str


@final
class RunSummary(TypedDict):
    """What `crnn run` prints (``--json``: this, as JSON) and the retrain flow returns."""

    pipeline: str
    workspace: str
    shards: ShardsSummary
    training: TrainingSummary
    timings: StageTimings
    metrics: dict[str, float]
    baseline: NotRequired[BaselineSummary]  # classification runs with evaluation.baseline
    mlflow: RunPlace
    registry: RegistrationSummary


@final
class SkippedSummary(TypedDict):
    """A scheduled run with nothing new to train on."""

    pipeline: str
    workspace: str
    skipped: bool
    reason: str
    shards: ShardsSummary
    registry: dict[str, str | None]  # model_name, last_version


class SweepPlace(TypedDict):
    tracking_uri: str
    experiment: str
    parent_run_id: str
    ui: str


class SweepSummary(SweepResult):
    """What `crnn sweep` prints and the sweep flow returns: what it found, where, on what."""

    pipeline: str
    workspace: str
    shards: ShardsSummary
    trials_lost_and_rerun: int
    trials_finished_before: int
    mlflow: SweepPlace


def run_summary(
    cfg: PipelineConfig,
    workspace: Workspace,
    shards: ShardSet,
    ref: TrackingRef,
    trained: TrainResult,
    report: EvalReport,
    registration: RegistrationResult,
) -> RunSummary:
    from crnn.tracking.runs import run_url_hint

    summary: RunSummary = {
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
    side = baseline_summary(cfg, report.metrics)
    if side is not None:
        summary["baseline"] = side
    return summary


def baseline_summary(cfg: PipelineConfig, metrics: dict[str, float]) -> BaselineSummary | None:
    """The model and its classical baseline on the gate metric (test_accuracy where the gate
    metric is one the baseline does not score); None without a baseline in ``metrics``."""
    from crnn.metric_names import baseline_metric

    name = cfg.evaluation.baseline
    if not name:
        return None
    for metric in (str(cfg.registry.metric), "test_accuracy"):
        key = baseline_metric(name, metric)
        if key in metrics and metric in metrics:
            return {
                "name": name,
                "metric": metric,
                "model": metrics[metric],
                "baseline": metrics[key],
            }
    return None


def skipped_summary(
    cfg: PipelineConfig, workspace: Workspace, shards: ShardSet, last_version: str
) -> SkippedSummary:
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


def shards_summary(shards: ShardSet) -> ShardsSummary:
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
    result: SweepResult,
) -> SweepSummary:
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
