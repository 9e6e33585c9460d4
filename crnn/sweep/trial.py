"""One sweep trial, in a process of its own (``python -m crnn.sweep.trial SPEC``): train the
pipeline with the trial's parameters on the sweep's shards, as a child MLflow run of the sweep's
parent run, reporting each epoch's validation metric to the study's pruner.

It never builds shards (the parent did, once) and never reads the test split. It writes what
became of it to the spec's ``result`` file: ``complete`` (with the score), ``pruned``,
``interrupted`` (the sweep stopped it: it runs again next time), ``failed`` (with why) or
``lost`` (started a second time: a cluster ran it again after its worker died; it is queued).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import optuna

from crnn import interrupt
from crnn.atomic import atomic_write_text
from crnn.engine.callbacks import TrainCallback
from crnn.errors import UserError
from crnn.interrupt import Interrupted
from crnn.lifetime import die_with_parent
from crnn.sweep.study import DEFAULT

PARENT_TAG, TRIAL_TAG = "mlflow.parentRunId", "crnn.sweep.trial"
PRUNED_TAG = "pruned"
STARTED = "crnn.started"  # where the trial's process started: a second start is a lost trial
OBJECTIVE = "sweep/objective"  # a trial's score, on its own run


class Pruning(TrainCallback):
    """Reports each epoch's ``metric`` to the trial; stops training when the pruner says so.
    Trial 0, the pipeline as it is, always runs to its end: it is what the sweep's gain is
    measured against."""

    def __init__(self, trial: optuna.Trial, metric: str) -> None:
        self.trial, self.metric, self.epoch = trial, metric, 0
        self.prunable = not trial.user_attrs.get(DEFAULT, False)

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        self.epoch = epoch
        self.trial.report(float(metrics[self.metric]), epoch)
        if self.prunable and self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {epoch}")


def run_trial(spec: dict[str, Any]) -> dict[str, Any]:
    """Train one trial as ``spec`` says; what became of it (see the module docstring)."""
    from crnn.config import load_pipeline
    from crnn.sweep.study import open_storage, pruner, storage_url
    from crnn.tracking import TrackingContext
    from crnn.workspace import resolve_workspace

    config_file, cfg = load_pipeline(spec["config"], spec["pipeline"], spec["overrides"])
    assert cfg.sweep is not None and cfg.sweep.metric is not None
    workspace = resolve_workspace(config_file.workspace, Path(spec["config"]))
    storage = open_storage(storage_url(cfg.sweep), workspace.root)
    study = optuna.load_study(study_name=spec["study"], storage=storage, pruner=pruner(cfg.sweep))
    trial = optuna.trial.Trial(study, spec["trial_id"])
    if STARTED in trial.user_attrs:  # run again by a cluster whose worker died: lost, queued anew
        before = trial.user_attrs[STARTED]
        return {"state": "lost", "error": f"its process on {before['host']} died with its worker"}
    trial.set_user_attr(STARTED, {"host": socket.gethostname(), "pid": os.getpid()})
    ctx = TrackingContext(**spec["tracking"])
    run_id = start_trial_run(ctx, cfg, spec)
    trial.set_user_attr("crnn.run_id", run_id)
    result = train_trial(ctx, run_id, cfg, workspace, spec, Pruning(trial, cfg.sweep.metric))
    return {**result, "run_id": run_id}


def start_trial_run(ctx: Any, cfg: Any, spec: dict[str, Any]) -> str:
    import yaml

    from crnn.data.loader import load_manifest
    from crnn.secrets import redact
    from crnn.tracking import log_dataset_inputs, start_run
    from crnn.tracking.runs import SWEEP_STUDY_TAG, settings_used

    manifest_path = Path(spec["manifest"])
    manifest = load_manifest(manifest_path)
    config_text = redact(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    tags = {
        PARENT_TAG: spec["parent_run_id"],
        SWEEP_STUDY_TAG: spec["study"],
        TRIAL_TAG: str(spec["number"]),
    }
    run_id = start_run(
        ctx,
        cfg,
        config_text,
        spec["params_overrides"],
        spec["shard_digest"],
        settings_used(cfg, manifest),
        name=f"trial {spec['number']}",
        tags=tags,
    )
    log_dataset_inputs(ctx, run_id, manifest_path, manifest)
    return run_id


def train_trial(
    ctx: Any, run_id: str, cfg: Any, workspace: Any, spec: dict[str, Any], pruning: Pruning
) -> dict[str, Any]:
    """Train in the child run; the run ends FINISHED, KILLED (pruned: tagged so; or stopped)
    or FAILED."""
    from crnn.engine.train import train_on_shards
    from crnn.tracking import MlflowCallback
    from crnn.tracking.liveness import run_lifetime

    checkpoints = workspace.run_dir(run_id) / "checkpoints"
    callbacks = [MlflowCallback(ctx, run_id, cfg.tracking.system_metrics_interval), pruning]
    stopped_by = (Interrupted, optuna.TrialPruned)  # a pruned trial's run ends KILLED
    try:
        with run_lifetime(ctx, run_id, workspace.run_dir(run_id), stopped_by=stopped_by):
            trained = train_on_shards(
                Path(spec["manifest"]), cfg.model, cfg.training, checkpoints, callbacks
            )
            best = next(h for h in trained.history if int(h["epoch"]) == trained.best_epoch)
            value = float(best[cfg.sweep.metric])
            ctx.client().log_metric(run_id, OBJECTIVE, value)
    except optuna.TrialPruned:
        ctx.client().set_tag(run_id, PRUNED_TAG, "true")
        return {"state": "pruned", "epochs_run": pruning.epoch}
    except Interrupted:
        return {"state": "interrupted", "epochs_run": pruning.epoch}
    except Exception as exc:
        return {"state": "failed", "error": one_line(exc), "epochs_run": pruning.epoch}
    return {
        "state": "complete",
        "value": value,
        "checkpoint": str(trained.best_checkpoint),
        "best_epoch": trained.best_epoch,
        "epochs_run": trained.epochs_run,
        "seconds": round(trained.seconds, 1),
    }


def one_line(exc: BaseException) -> str:
    from crnn.secrets import redact

    text = str(exc).strip().splitlines()
    return redact(f"{type(exc).__name__}: {text[0] if text else ''}")[:500]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="one trial of `crnn sweep`")
    parser.add_argument("spec", type=Path)
    spec = json.loads(parser.parse_args(argv).spec.read_text(encoding="utf-8"))
    die_with_parent(signal.SIGTERM, spec["parent_pid"])  # a killed sweep stops its trials
    import torch

    torch.set_num_threads(int(spec["threads"]))
    with interrupt.graceful():
        try:
            result = run_trial(spec)
        except UserError as exc:
            result = {"state": "failed", "error": str(exc)}
    atomic_write_text(Path(spec["result"]), json.dumps(result, indent=1))
    return 0 if result["state"] != "failed" else 1


if __name__ == "__main__":
    sys.exit(main())
