"""The `sweep` flow: preprocess once -> open the study (continuing a killed sweep) -> trials in
parallel processes, each a child MLflow run -> the best trial evaluated on the test split and
registered through the gate as challenger -> the parent run's summary, table and plots.

Only the best trial ever sees the test split, and only the gate moves ``champion``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from crnn import interrupt
from crnn.config import PipelineConfig, load_pipeline
from crnn.data.preprocess import ShardSet
from crnn.engine.callbacks import TrainResult
from crnn.errors import UserError
from crnn.sweep.results import SweepResult, TrialRow
from crnn.tracking.ref import SweepRef, TrackingRef
from crnn.workspace import Workspace, resolve_workspace
from flows.runtime.local_prefect import current_flow_run_id
from flows.summaries import SweepSummary, sweep_summary
from flows.tasks import (
    evaluate_task,
    log_model_task,
    preprocess_task,
    reap_dead_runs_of,
    register_task,
)

PARENT_ATTR = "crnn.parent_run_id"  # the study's MLflow parent run


def _study(cfg: PipelineConfig, workspace: Workspace, name: str) -> Any:
    from crnn.sweep.study import open_storage, open_study, storage_url

    assert cfg.sweep is not None
    return open_study(cfg, name, open_storage(storage_url(cfg.sweep), workspace.root))


@task(name="open-sweep", cache_policy=NO_CACHE)
def open_sweep_task(
    cfg: PipelineConfig, workspace: Workspace, shards: ShardSet, overrides: tuple[str, ...]
) -> SweepRef:
    """The study of this pipeline, space and shard set (new, or continued: trials a killed sweep
    left running are queued again) and its parent run (reopened while the study is not done)."""
    from crnn.sweep.space import study_name
    from crnn.sweep.study import finished, recover_lost_trials
    from crnn.tracking import open_tracking
    from crnn.tracking.runs import reopen_run
    from crnn.tracking.sweeps import run_status, start_sweep_run

    ctx = open_tracking(cfg.tracking, workspace.root)
    reap_dead_runs_of(ctx, workspace)  # the runs of a killed sweep: FAILED, said so
    name = study_name(cfg, shards.digest)
    study = _study(cfg, workspace, name)
    lost = recover_lost_trials(study)
    done = len(finished(study.get_trials(deepcopy=False)))
    parent = study.user_attrs.get(PARENT_ATTR)
    status = run_status(ctx, parent)
    assert cfg.sweep is not None
    if status is None or (status == "FINISHED" and done < cfg.sweep.trials):
        parent = start_sweep_run(ctx, cfg, name, shards.digest, list(overrides))
        study.set_user_attr(PARENT_ATTR, parent)
    elif status != "FINISHED":
        reopen_run(ctx, parent)
    ref = TrackingRef(ctx.tracking_uri, ctx.experiment_id, ctx.experiment_name, parent)
    return SweepRef(name, ref, len(lost), done)


@task(name="trials", cache_policy=NO_CACHE)
def trials_task(
    cfg: PipelineConfig,
    config_path: str,
    workspace: Workspace,
    shards: ShardSet,
    sweep: SweepRef,
    overrides: tuple[str, ...],
    progress: bool,
) -> None:
    """The trials, ``sweep.parallel`` processes at a time, on the shards built above: here, or
    as tasks on the cluster CRNN_CLUSTER (``--cluster``), else ``execution.cluster``, names."""
    from crnn.cluster import cluster_address
    from crnn.sweep.runner import Launcher, run_trials

    assert cfg.sweep is not None
    p = sweep.parent
    common = {
        "config": str(Path(config_path).resolve()),
        "pipeline": cfg.name,
        "study": sweep.study,
        "manifest": str(shards.manifest_path),
        "shard_digest": shards.digest,
        "tracking": {
            "tracking_uri": p.tracking_uri,
            "experiment_id": p.experiment_id,
            "experiment_name": p.experiment_name,
        },
        "parent_run_id": p.run_id,
    }
    folder = workspace.root / "sweeps" / sweep.study
    launcher = Launcher(common, list(overrides), cfg.training, folder, cfg.sweep.parallel)
    said = _say_trial(cfg.sweep.metric or "", sweep.finished) if progress else lambda *a: None
    study = _study(cfg, workspace, sweep.study)
    address = cluster_address(None) or cfg.execution.cluster
    if not address:
        run_trials(study, cfg.sweep, launcher, said)
        return
    with cluster_pool(address, cfg, workspace, shards) as launcher.pool:
        run_trials(study, cfg.sweep, launcher, said)


@contextmanager
def cluster_pool(
    address: str, cfg: PipelineConfig, workspace: Workspace, shards: ShardSet
) -> Iterator[Any]:
    """The trials' processes on the cluster's workers; one line when a worker cannot see what
    a trial reads and writes: the shards, the study's journal (a shared workspace) or its
    database's file."""
    from crnn.cluster.processes import tasks
    from crnn.sweep.study import JOURNAL, storage_url

    assert cfg.sweep is not None
    url = storage_url(cfg.sweep)
    needed = [shards.manifest_path]  # the workspace
    if url is None:
        needed.append(workspace.root / JOURNAL)
    if url is not None and url.startswith("sqlite:///"):
        needed.append(Path(url.removeprefix("sqlite:///")))
    with tasks(address) as pool:
        unseen = pool.unseen(needed)
        if unseen:
            worker, missing = next(iter(unseen.items()))
            raise UserError(
                f"--cluster {address}: worker {worker} cannot see {missing[0]}; a sweep on a "
                "cluster needs the workspace on a file system its workers share and the study "
                "there or in a database they reach (sweep.storage)"
            )
        yield pool


def _say_trial(metric: str, before: int) -> Any:
    def said(trial: Any, result: dict[str, Any]) -> None:
        params = " ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.params.items()
        )
        state = result["state"]
        if state == "complete":
            what = f"{metric} {result['value']:.4f}"
        elif state == "pruned":
            what = f"pruned after epoch {result.get('epochs_run')}"
        elif state == "interrupted":
            what = "stopped; it runs again next time"
        else:
            what = f"failed: {result.get('error', '')}"
        print(f"trial {trial.number:>3} {state:<11} {what}  ({params}; {result['wall_s']} s)")

    return said


@task(name="best-trial", cache_policy=NO_CACHE)
def best_trial_task(cfg: PipelineConfig, workspace: Workspace, sweep: SweepRef) -> SweepResult:
    """The sweep's summary; one line when no trial completed."""
    from crnn.sweep.report import summary

    assert cfg.sweep is not None and cfg.sweep.metric and cfg.sweep.direction
    result = summary(_study(cfg, workspace, sweep.study), cfg.sweep.metric, cfg.sweep.direction)
    if result["best"] is None:
        failed = [r for r in result["trials"] if r["error"]]
        first = failed[0] if failed else None
        why = f"; the first failure: trial {first['trial']}: {first['error']}" if first else ""
        raise UserError(
            f"sweep {sweep.study}: no trial completed ({result['trials_pruned']} pruned, "
            f"{result['trials_failed']} failed){why}; logs in "
            f"{workspace.root / 'sweeps' / sweep.study}"
        )
    return result


def register_best(
    cfg: PipelineConfig,
    config_path: str,
    workspace: Workspace,
    shards: ShardSet,
    sweep: SweepRef,
    best: TrialRow,
    overrides: tuple[str, ...],
) -> dict[str, Any]:
    """The best trial, and it alone, evaluated on the test split in its own run, its model
    logged, registered as challenger (tagged with the sweep) through the gate; once per sweep."""
    from crnn.sweep.space import overrides as as_overrides
    from crnn.tracking.sweeps import REGISTERED_TAG, SWEEP_RUN_TAG

    client = sweep.parent.context().client()
    done = client.get_run(sweep.parent.run_id).data.tags.get(REGISTERED_TAG)
    if done:
        return {"already": done}
    _, best_cfg = load_pipeline(config_path, cfg.name, [*overrides, *as_overrides(best["params"])])
    checkpoint, value, run_id = Path(str(best["checkpoint"])), best["value"], best["run_id"]
    if value is None or run_id is None or not checkpoint.is_file():
        raise UserError(
            f"sweep {sweep.study}: the best trial's checkpoint {checkpoint} is gone; "
            "run the sweep again in a new workspace"
        )
    trained = TrainResult(
        best_checkpoint=checkpoint,
        last_checkpoint=checkpoint.with_name("last.pt"),
        best_epoch=int(best.get("best_epoch") or 0),
        best_score=float(value),
        monitor=str(best_cfg.training.early_stopping.monitor),
        epochs_run=int(best["epochs"] or 0),
        stopped_early=False,
        seconds=0.0,
    )
    p = sweep.parent
    ref = p.with_run(run_id)
    report = evaluate_task(best_cfg, shards, trained, ref, workspace)
    uri = log_model_task(best_cfg, shards, trained, ref)
    registration = register_task(
        best_cfg, shards, report, ref, uri, lineage={SWEEP_RUN_TAG: p.run_id}
    )
    became = f"{registration.model_name}/{registration.version}"
    client.set_tag(p.run_id, REGISTERED_TAG, became)
    return {**registration.summary(), "test_metrics": report.metrics}


@flow(name="sweep", log_prints=False)
def sweep(
    pipeline: str | None = None,
    config_path: str = "pipelines.yaml",
    overrides: list[str] | None = None,
    progress: bool = True,
) -> SweepSummary:
    """Sweep one pipeline's ``sweep:`` space; returns a JSON-able summary. Run again after a
    kill, it continues the same study: finished trials are kept, lost ones run anew."""
    given = tuple(overrides or ())
    config_file, cfg = load_pipeline(config_path, pipeline, given)
    if cfg.sweep is None:
        raise UserError(
            f"pipeline {cfg.name!r} has no sweep: block in {config_path}; add one (README: Sweeps)"
        )
    workspace = resolve_workspace(config_file.workspace, Path(config_path))
    shards = preprocess_task(cfg, workspace)  # once: every trial trains on these shards
    interrupt.check("the end of preprocessing")
    ref = open_sweep_task(cfg, workspace, shards, given)
    every_trial = (*given, *cfg.sweep.fixed_overrides())  # the user's --set, then sweep.fixed
    return run_sweep(cfg, config_path, workspace, shards, ref, every_trial, progress)


def run_sweep(
    cfg: PipelineConfig,
    config_path: str,
    workspace: Workspace,
    shards: ShardSet,
    ref: SweepRef,
    overrides: tuple[str, ...],
    progress: bool,
) -> SweepSummary:
    """Trials, the best trial through the gate, the parent run's record; the parent run ends
    FINISHED, KILLED (stopped: the next sweep continues it) or FAILED."""
    from crnn.sweep.report import plots, trials_table
    from crnn.tracking.liveness import run_lifetime
    from crnn.tracking.sweeps import log_sweep_result

    p = ref.parent
    with run_lifetime(p.context(), p.run_id, workspace.run_dir(p.run_id), current_flow_run_id()):
        trials_task(cfg, config_path, workspace, shards, ref, overrides, progress)
        result = best_trial_task(cfg, workspace, ref)
        interrupt.check("after the trials, before registering")
        assert result["best"] is not None  # best_trial_task says so in one line otherwise
        result["registry"] = register_best(
            cfg, config_path, workspace, shards, ref, result["best"], overrides
        )
        study = _study(cfg, workspace, ref.study)
        pictures = plots(study, workspace.run_dir(p.run_id) / "plots")
        log_sweep_result(p.context(), p.run_id, result, trials_table(result["trials"]), pictures)
    return sweep_summary(cfg, workspace, shards, ref, result)
