"""The Optuna study of a sweep: where it is stored, its sampler and pruner, the trials it starts
with, and the trials a killed sweep left behind."""

from __future__ import annotations

import os
import socket
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import optuna
from optuna.pruners import BasePruner, MedianPruner, NopPruner, SuccessiveHalvingPruner
from optuna.samplers import BaseSampler, RandomSampler, TPESampler
from optuna.trial import FrozenTrial, TrialState

from crnn.config import PipelineConfig, SweepConfig
from crnn.errors import UserError
from crnn.secrets import redact
from crnn.sweep.space import grid_points, own_params

STORAGE_ENV = "CRNN_SWEEP_STORAGE"  # the storage URL; children read it here, never in argv
JOURNAL = "sweeps/optuna.journal"  # in the workspace: every study of every pipeline
OWNER, LOST, RETRY_OF, DEFAULT = "crnn.owner", "crnn.lost", "crnn.retry_of", "crnn.default"

optuna.logging.set_verbosity(optuna.logging.WARNING)  # the sweep says what happens itself
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def storage_url(sweep: SweepConfig) -> str | None:
    """The team's database when one is named (CRNN_SWEEP_STORAGE, else ``sweep.storage``);
    None for the workspace's journal file."""
    return os.environ.get(STORAGE_ENV) or sweep.storage


def open_storage(url: str | None, workspace: Path) -> optuna.storages.BaseStorage:
    """A journal file in the workspace (safe for parallel local processes: it takes a file lock
    for each write), or the database at ``url`` (PostgreSQL: many machines)."""
    if url is None:
        from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

        path = workspace / JOURNAL
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = JournalFileOpenLock(str(path))
        return optuna.storages.JournalStorage(JournalFileBackend(str(path), lock_obj=lock))
    try:
        return optuna.storages.RDBStorage(url)
    except Exception as exc:  # a wrong URL, a database down: one line, without the password
        raise UserError(
            f"sweep storage {redact(url)} cannot be opened ({type(exc).__name__}); check "
            f"sweep.storage or {STORAGE_ENV}"
        ) from None


def sampler(sweep: SweepConfig) -> BaseSampler:
    """TPE (with a constant liar, so parallel trials spread out) after ``startup_trials``
    random ones; random; or, for a grid, random over a queue holding every grid point."""
    if sweep.sampler == "tpe":
        return TPESampler(
            seed=sweep.seed, n_startup_trials=sweep.startup_trials, constant_liar=True
        )
    return RandomSampler(seed=sweep.seed)


def pruner(sweep: SweepConfig) -> BasePruner:
    """Median (a trial worse than the median of finished trials at the same epoch stops) or
    successive halving; both wait ``warmup_epochs`` epochs (and median ``startup_trials``)."""
    if sweep.pruner == "median":
        return MedianPruner(
            n_startup_trials=sweep.startup_trials, n_warmup_steps=sweep.warmup_epochs
        )
    if sweep.pruner == "successive_halving":
        return SuccessiveHalvingPruner(min_resource=sweep.warmup_epochs)
    return NopPruner()


def open_study(cfg: PipelineConfig, name: str, storage: optuna.storages.BaseStorage) -> Any:
    """The study ``name``, created with its first trials queued when new: the pipeline as it is
    (trial 0), the configured ``enqueue`` ones, and for a grid every grid point."""
    sweep = cfg.sweep
    assert sweep is not None and sweep.direction is not None
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        sampler=sampler(sweep),
        pruner=pruner(sweep),
        direction=sweep.direction,
        load_if_exists=True,
    )
    if not study.get_trials(deepcopy=False):
        study.set_user_attr("pipeline", cfg.name)
        study.enqueue_trial(own_params(cfg), user_attrs={DEFAULT: True})
        for params in sweep.enqueue:
            study.enqueue_trial(dict(params), skip_if_exists=True)
        for params in grid_points(sweep) if sweep.sampler == "grid" else ():
            study.enqueue_trial(params, skip_if_exists=True)
    return study


def this_owner() -> dict[str, Any]:
    """Who runs a trial: the sweep's process, as :mod:`crnn.tracking.liveness` tells it."""
    import psutil

    started = psutil.Process().create_time()
    return {"host": socket.gethostname(), "pid": os.getpid(), "started": started}


def recover_lost_trials(study: Any) -> list[FrozenTrial]:
    """Trials left RUNNING by a sweep process that is gone from this host (killed, crashed):
    each marked FAIL (``crnn.lost``) and queued again with its parameters, so the sweep runs it
    anew. Trials of live processes and of other hosts are left as they are."""
    from crnn.tracking.liveness import alive

    lost = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = trial.user_attrs.get(OWNER) or {}
        if owner.get("host") != socket.gethostname():
            continue
        if alive(int(owner.get("pid", 0)), float(owner.get("started", 0.0))):
            continue
        study._storage.set_trial_user_attr(trial._trial_id, LOST, "its sweep process died")
        study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        attrs = {RETRY_OF: trial.number, DEFAULT: trial.user_attrs.get(DEFAULT, False)}
        study.enqueue_trial(trial.params, user_attrs=attrs)
        lost.append(trial)
    return lost


def finished(trials: Iterable[FrozenTrial]) -> list[FrozenTrial]:
    """Trials that count against the budget: complete, pruned, or failed by their own error
    (not lost with a dead sweep process: those run again)."""
    done = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    return [t for t in trials if t.state in done and LOST not in t.user_attrs]


def waiting(study: Any) -> int:
    return len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
