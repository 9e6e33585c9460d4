"""The Prefect tasks both flows run (retrain and sweep): build the shards, evaluate, log the model,
register through the gate; and the reaping of runs a killed process left RUNNING. Each task is a
few lines over a library function; it passes references (paths, digests, run ids), never arrays.
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from crnn.config import PipelineConfig
from crnn.data.preprocess import ShardSet, preprocess
from crnn.engine.callbacks import TrainResult
from crnn.inference.evaluate import EvalReport, evaluate_checkpoint
from crnn.tracking.ref import TrackingRef

if TYPE_CHECKING:
    from crnn.tracking.registry import RegistrationResult
from crnn.workspace import Workspace
from flows.notices import Notice, send_notice

# no task retries: MLflow's client retries transient failures by the one policy (crnn.retry)


@task(name="preprocess", cache_policy=NO_CACHE)
def preprocess_task(cfg: PipelineConfig, workspace: Workspace) -> ShardSet:
    """Build or reuse the shard set; returns its manifest path and digest."""
    from crnn.cluster import cluster_address, connect

    started = time.perf_counter()
    address = cluster_address(None) or cfg.execution.cluster  # CRNN_CLUSTER, else the config
    if address:
        with connect(address) as mapper:  # the chunks' work on the workers, written here
            shards = preprocess(cfg.data, cfg.preprocessing, workspace.shards, mapper)
    else:
        shards = preprocess(cfg.data, cfg.preprocessing, workspace.shards)
    return replace(shards, seconds=time.perf_counter() - started)


def reap_dead_runs_of(ctx: Any, workspace: Workspace) -> None:
    """Runs of this experiment left RUNNING by a process killed on this host: FAILED, with the
    reason, and their flow runs Crashed; said in one line each (on stderr: ``--json`` output
    stays parseable)."""
    from crnn.tracking.liveness import reap_dead_runs
    from flows.runtime.local_prefect import crash_flow_runs

    dead = reap_dead_runs(ctx, [ctx.experiment_id], workspace.root / "runs")
    crash_flow_runs(dead)
    for run in dead:
        print(f"marked run {run.run_id} FAILED: {run.reason}", file=sys.stderr)


def reap_lost_runs_of(cfg: PipelineConfig, workspace: Workspace) -> list[str]:
    """In a run of a deployment: the earlier runs of it a lost worker left RUNNING, Crashed,
    and their MLflow runs FAILED (:mod:`flows.runtime.lost_runs`); their flow run ids."""
    from flows.runtime.lost_runs import in_deployment, reap_lost_flow_runs

    if not in_deployment()[1]:  # `crnn run`: no deployment, no slot to have lost
        return []
    from crnn.tracking import open_tracking

    return reap_lost_flow_runs(open_tracking(cfg.tracking, workspace.root))


@task(name="evaluate", cache_policy=NO_CACHE)
def evaluate_task(
    cfg: PipelineConfig,
    shards: ShardSet,
    trained: TrainResult,
    ref: TrackingRef,
    workspace: Workspace,
) -> EvalReport:
    from crnn.tracking import log_evaluation

    started = time.perf_counter()
    report = evaluate_checkpoint(
        trained.best_checkpoint,
        shards.manifest_path,
        workspace.run_dir(ref.run_id) / "evaluation",
        cfg.evaluation,
    )
    if cfg.evaluation.baseline:  # resolved: svc, tfidf or mfcc, scored on the same split
        from crnn.inference.baselines import classical_baseline

        baseline = cfg.evaluation.baseline
        seed = cfg.training.seed
        report.metrics.update(classical_baseline(baseline, shards.manifest_path, cfg.data, seed))
    report.seconds = time.perf_counter() - started
    log_evaluation(ref.context(), ref.run_id, report)
    return report


@task(
    name="log-model",
    cache_policy=NO_CACHE,
)
def log_model_task(
    cfg: PipelineConfig, shards: ShardSet, trained: TrainResult, ref: TrackingRef
) -> str:
    """Log the best checkpoint as the run's pyfunc model, with a raw input example and the
    reference profile drift monitoring compares scoring jobs with; returns its URI. It needs
    only the checkpoint, so the flow runs it beside evaluation."""
    from crnn.data.raw import raw_example
    from crnn.inference.decoder import decoder_record, with_decoder
    from crnn.inference.monitor import build_reference
    from crnn.tracking import log_pyfunc_model

    example = raw_example(shards.manifest_path)
    best = trained.best_checkpoint  # with the evaluation's decoder, when it has its own
    model = with_decoder(best, decoder_record(cfg.evaluation.decoder), best.with_name("model.pt"))
    profile = build_reference(model, shards.manifest_path, cfg.monitoring, cfg.training.seed)
    return log_pyfunc_model(ref.context(), ref.run_id, model, example, cfg.task_kind, profile)


@task(
    name="register",
    cache_policy=NO_CACHE,
)
def register_task(
    cfg: PipelineConfig,
    shards: ShardSet,
    report: EvalReport,
    ref: TrackingRef,
    model_uri: str,
    lineage: dict[str, str] | None = None,
) -> RegistrationResult:
    """Register the logged model as challenger, and let the gate decide on champion;
    ``lineage``: more version tags (the sweep it came from)."""
    from crnn.metric_names import baseline_metric
    from crnn.tracking import register_with_gate
    from crnn.tracking.registry import PIPELINE_TAG, TRAINING_TAG, TestSet

    assert cfg.registry.metric is not None
    baseline = None
    if cfg.registry.beat_baseline and cfg.evaluation.baseline:  # NaN: no baseline could be fit
        key = baseline_metric(cfg.evaluation.baseline, cfg.registry.metric)
        baseline = report.metrics.get(key, float("nan"))
    result = register_with_gate(
        ref.context(),
        ref.run_id,
        model_uri,
        cfg.registry,
        report.metrics[cfg.registry.metric],
        shards.digest,
        TestSet.of(shards.manifest_path),
        lineage={PIPELINE_TAG: cfg.name, TRAINING_TAG: cfg.training_digest(), **(lineage or {})},
        trivial=report.metrics.get(f"trivial_{cfg.registry.metric}"),
        baseline=baseline,
    )
    if result.decision.promote:
        notice = Notice(
            "promotion",
            cfg.name,
            f"{result.model_name} version {result.version} promoted to champion "
            f"({result.decision.reason})",
            model=result.model_name,
            version=result.version,
        )
        send_notice(cfg.notifications, notice)
    return result
