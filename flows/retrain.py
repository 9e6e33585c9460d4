"""The `retrain` flow: preprocess -> train -> evaluate (beside logging the model) -> register,
for one named pipeline.

Tasks are thin wrappers over library functions. They pass references (manifest paths, digests,
checkpoint paths, MLflow run ids), never arrays. Caching is by data digest inside the library, so
Prefect's own input hashing is off.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.states import Completed

from crnn import interrupt
from crnn.config import PipelineConfig, load_pipeline
from crnn.data.loader import load_manifest
from crnn.data.preprocess import ShardSet
from crnn.engine.callbacks import TrainCallback, TrainResult
from crnn.engine.train import train_on_shards
from crnn.errors import UserError
from crnn.secrets import redact
from crnn.tracking.ref import TrackingRef
from crnn.workspace import Workspace, resolve_workspace
from flows.notices import notify_failed_run
from flows.runtime.local_prefect import current_flow_run_id
from flows.summaries import RunSummary, run_summary, skipped_summary
from flows.tasks import (
    evaluate_task,
    log_model_task,
    preprocess_task,
    reap_dead_runs_of,
    reap_lost_runs_of,
    register_task,
)

# no task retries: MLflow's client retries transient failures by the one policy (crnn.retry)


@task(
    name="start-run",
    cache_policy=NO_CACHE,
)
def start_run_task(
    cfg: PipelineConfig,
    workspace: Workspace,
    config_text: str,
    resume: bool = False,
    shards: ShardSet | None = None,
    overrides: tuple[str, ...] = (),
    tags: dict[str, str] | None = None,
) -> TrackingRef:
    """A new MLflow run (with ``tags``); with ``resume``, the pipeline's latest interrupted run
    instead, when its checkpoint belongs to this data and training setup
    (:mod:`crnn.engine.resume`)."""
    from crnn.tracking import open_tracking, start_run
    from crnn.tracking.runs import find_resumable_run, reopen_run, settings_used

    ctx = open_tracking(cfg.tracking, workspace.root)
    reap_dead_runs_of(ctx, workspace)
    if resume:
        run_id = find_resumable_run(ctx, cfg.name)
        last = workspace.run_dir(run_id) / "checkpoints" / "last.pt" if run_id else None
        if run_id is None or last is None or not last.is_file() or shards is None:
            raise UserError(
                f"pipeline {cfg.name!r}: no interrupted run with a checkpoint to resume in "
                f"{workspace.root}; run without --resume"
            )
        from crnn.engine.resume import check_checkpoint

        check_checkpoint(last, shards.manifest_path, cfg.model, cfg.training)  # or one line
        reopen_run(ctx, run_id)
        return TrackingRef(ctx.tracking_uri, ctx.experiment_id, ctx.experiment_name, run_id, True)
    digest = shards.digest if shards else ""
    used = settings_used(cfg, load_manifest(shards.manifest_path)) if shards else None
    run_id = start_run(ctx, cfg, config_text, overrides, digest, used, tags=tags)
    return TrackingRef(ctx.tracking_uri, ctx.experiment_id, ctx.experiment_name, run_id)


@task(
    name="log-datasets",
    cache_policy=NO_CACHE,
)
def log_datasets_task(ref: TrackingRef, shards: ShardSet) -> None:
    from crnn.tracking import log_dataset_inputs

    log_dataset_inputs(
        ref.context(), ref.run_id, shards.manifest_path, load_manifest(shards.manifest_path)
    )


@task(name="train", cache_policy=NO_CACHE)
def train_task(
    cfg: PipelineConfig, shards: ShardSet, ref: TrackingRef, workspace: Workspace, progress: bool
) -> TrainResult:
    """Train on the shard set; checkpoints go to the run's folder in the workspace. With
    ``training.devices > 1`` the training runs under torchrun, rank 0 logging into this run; with
    ``training.distributed``, on several machines (the others run `crnn join`)."""
    checkpoints = workspace.run_dir(ref.run_id) / "checkpoints"
    if cfg.training.devices > 1 or cfg.training.distributed is not None:
        from crnn.distributed import launch

        tracking = {
            "tracking_uri": ref.tracking_uri,
            "experiment_id": ref.experiment_id,
            "experiment_name": ref.experiment_name,
            "run_id": ref.run_id,
            "system_metrics_interval": cfg.tracking.system_metrics_interval,
        }
        return launch(
            shards.manifest_path,
            cfg.model,
            cfg.training,
            checkpoints,
            resume=ref.resumed,
            tracking=tracking,
            progress=progress,
            node_spec=workspace.node_spec(cfg.name),  # where `crnn join` finds it
        )
    from crnn.tracking import MlflowCallback

    interval = cfg.tracking.system_metrics_interval
    callbacks: list[TrainCallback] = [MlflowCallback(ref.context(), ref.run_id, interval)]
    if progress:
        from crnn.engine.progress import ConsoleProgress

        callbacks.append(ConsoleProgress())
    return train_on_shards(
        shards.manifest_path, cfg.model, cfg.training, checkpoints, callbacks, resume=ref.resumed
    )


@task(
    name="check-new-data",
    cache_policy=NO_CACHE,
)
def unchanged_task(cfg: PipelineConfig, workspace: Workspace, shards: ShardSet) -> str | None:
    """The last version this pipeline registered, when it was trained on these shards with this
    training config: then there is nothing new to train on."""
    from crnn.tracking import open_tracking
    from crnn.tracking.registry import unchanged_since

    assert cfg.registry.model_name is not None
    ctx = open_tracking(cfg.tracking, workspace.root)
    return unchanged_since(
        ctx, cfg.registry.model_name, cfg.name, shards.digest, cfg.training_digest()
    )


@flow(
    name="retrain", log_prints=False, on_failure=[notify_failed_run], on_crashed=[notify_failed_run]
)
def retrain(
    pipeline: str | None = None,
    config_path: str = "pipelines.yaml",
    overrides: list[str] | None = None,
    progress: bool = True,
    resume: bool = False,
    if_changed: bool = False,
    from_sweep: str | None = None,
) -> RunSummary:
    """Retrain one named pipeline end to end; returns a JSON-able summary.

    With ``from_sweep`` (a sweep's parent run id, or ``latest``), the sweep's best values come
    first among the overrides (``overrides`` still win), and the run is tagged with the sweep.

    With ``resume``, an interrupted run of the same config continues from its last checkpoint,
    in the same MLflow run. With ``if_changed`` (scheduled runs), a pipeline whose shard set and
    training config equal those of the last version it registered ends at once with "no new
    data", registering nothing (the flow run's state says so too).
    """
    overrides, tags = adopt_sweep(config_path, pipeline, from_sweep, list(overrides or ()))
    config_file, cfg = load_pipeline(config_path, pipeline, overrides)
    workspace = resolve_workspace(config_file.workspace, Path(config_path))
    reap_lost_runs_of(cfg, workspace)  # a run a lost worker left RUNNING: Crashed, said so
    shards = preprocess_task(cfg, workspace)
    interrupt.check("the end of preprocessing")
    if if_changed and not resume:
        last = unchanged_task(cfg, workspace, shards)
        if last is not None:
            summary = skipped_summary(cfg, workspace, shards, last)
            # a returned state is the run's final state; a caller still gets the summary
            return Completed(name="Skipped", message=summary["reason"], data=summary)  # type: ignore[return-value]
    return train_and_register(cfg, workspace, shards, progress, resume, tuple(overrides), tags)


def adopt_sweep(
    config_path: str, pipeline: str | None, from_sweep: str | None, overrides: list[str]
) -> tuple[list[str], dict[str, str]]:
    """The overrides with a sweep's best values first, and the tag naming the sweep."""
    if not from_sweep:
        return overrides, {}
    from crnn.tracking.sweeps import SWEEP_RUN_TAG, sweep_overrides

    config_file, cfg = load_pipeline(config_path, pipeline, overrides)
    workspace = resolve_workspace(config_file.workspace, Path(config_path))
    run_id, best = sweep_overrides(cfg, workspace.root, from_sweep)
    return [*best, *overrides], {SWEEP_RUN_TAG: run_id}


def train_and_register(
    cfg: PipelineConfig,
    workspace: Workspace,
    shards: ShardSet,
    progress: bool,
    resume: bool,
    overrides: tuple[str, ...] = (),
    tags: dict[str, str] | None = None,
) -> RunSummary:
    """The run itself: start (or reopen) the MLflow run, train, evaluate beside logging the
    model, register through the gate; the run is marked failed if any of it fails."""
    config_text = redact(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    from crnn.tracking.liveness import run_lifetime

    ref = start_run_task(cfg, workspace, config_text, resume, shards, overrides, tags)
    run_dir = workspace.run_dir(ref.run_id)
    with run_lifetime(ref.context(), ref.run_id, run_dir, current_flow_run_id()):
        if not ref.resumed:  # a resumed run has its dataset inputs already
            log_datasets_task(ref, shards)
        trained = train_task(cfg, shards, ref, workspace, progress)
        # logging the model needs only the checkpoint: it runs beside evaluation
        logging_model = log_model_task.submit(cfg, shards, trained, ref)
        try:
            report = evaluate_task(cfg, shards, trained, ref, workspace)
        except BaseException:
            logging_model.wait()  # nothing writes to the run once it is marked failed
            raise
        interrupt.check("after training, before registering")
        registration = register_task(cfg, shards, report, ref, logging_model.result())
    return run_summary(cfg, workspace, shards, ref, trained, report, registration)
