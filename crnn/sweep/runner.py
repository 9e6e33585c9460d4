"""Runs a sweep's trials: asks the study for the next trial, starts it in a process of its own
(:mod:`crnn.sweep.trial`), ``parallel`` at a time, and tells the study what became of each.

Each trial process gets an equal share of the machine (torch threads, loader workers; one GPU
each where there are several), dies with the sweep's process, and writes its output to a log of
its own. A stop (Ctrl-C, SIGTERM) stops the running trials at their next step; they are queued
again, so the next ``crnn sweep`` runs them anew. No trial starts after the time budget.

Where a trial runs is the launcher's business (:mod:`crnn.sweep.launch`): here, or as a task on
a cluster's workers, the study (its storage) coordinating either way. A trial whose worker died
is lost like one of a killed sweep: FAIL, ``crnn.lost``, and queued again, here at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from crnn import interrupt
from crnn.config import SweepConfig
from crnn.sweep.launch import Launcher, Share, TrialRun, machine_share
from crnn.sweep.space import distributions
from crnn.sweep.study import DEFAULT, LOST, OWNER, RETRY_OF, finished, this_owner, waiting

POLL_S = 0.2
STOP_WAIT_S = 60.0  # for a stopped trial to reach its next step and end its run
__all__ = ["Launcher", "Share", "machine_share", "run_trials"]


@dataclass
class Running:
    trial: optuna.Trial
    run: TrialRun
    slot: int
    started: float = field(default_factory=time.perf_counter)


def run_trials(
    study: Any,
    sweep: SweepConfig,
    launcher: Launcher,
    said: Callable[[FrozenTrial, dict[str, Any]], None],
) -> None:
    """Trials until ``sweep.trials`` have finished (complete, pruned or failed), the grid is
    done or the time budget is spent; ``said`` is told of each trial that ends."""
    space = distributions(sweep)
    deadline = time.monotonic() + sweep.timeout_minutes * 60 if sweep.timeout_minutes else None
    running: dict[int, Running] = {}
    owner = this_owner()
    try:
        while True:
            while _may_start(study, sweep, running, deadline):
                trial = study.ask(space)
                trial.set_user_attr(OWNER, owner)
                slot = min(set(range(sweep.parallel)) - {r.slot for r in running.values()})
                running[trial.number] = Running(trial, launcher.start(trial, slot), slot)
            if not running:
                return
            for number, run in list(running.items()):
                outcome = run.run.poll()
                if outcome is not None:
                    del running[number]
                    said(*_tell(study, run, outcome))
            interrupt.check("a sweep trial")
            time.sleep(POLL_S)
    except BaseException:
        _stop(study, running, said)
        raise


def _may_start(
    study: Any, sweep: SweepConfig, running: dict[int, Running], deadline: float | None
) -> bool:
    if len(running) >= sweep.parallel or interrupt.requested() is not None:
        return False
    if deadline is not None and time.monotonic() >= deadline:
        return False
    if sweep.sampler == "grid" and not waiting(study):
        return False  # every grid point has been asked for
    done = len(finished(study.get_trials(deepcopy=False)))
    return done + len(running) < sweep.trials


def _tell(study: Any, run: Running, result: dict[str, Any]) -> tuple[FrozenTrial, dict[str, Any]]:
    """What became of the trial (its process's result), told to the study."""
    result["wall_s"] = round(time.perf_counter() - run.started, 1)
    trial, state = run.trial, result["state"]
    for key in ("run_id", "checkpoint", "best_epoch", "epochs_run", "wall_s", "error", "worker"):
        if key in result:
            trial.set_user_attr(f"crnn.{key}", result[key])
    if state == "complete":
        frozen = study.tell(trial, result["value"])
    elif state == "pruned":
        frozen = study.tell(trial, state=TrialState.PRUNED)
    elif state == "interrupted":
        frozen = _lose(study, trial, "stopped with the sweep")
    elif state == "lost":  # its cluster worker died: it runs again, as after a killed sweep
        frozen = _lose(study, trial, str(result.get("error", "lost")))
    else:
        frozen = study.tell(trial, state=TrialState.FAIL)
    return frozen, result


def _lose(study: Any, trial: optuna.Trial, why: str) -> FrozenTrial:
    """FAIL, marked lost, and queued again: the next sweep runs it anew."""
    trial.set_user_attr(LOST, why)
    frozen = study.tell(trial, state=TrialState.FAIL)
    attrs = {RETRY_OF: trial.number, DEFAULT: frozen.user_attrs.get(DEFAULT, False)}
    study.enqueue_trial(frozen.params, user_attrs=attrs)
    return frozen


def _stop(
    study: Any, running: dict[int, Running], said: Callable[[FrozenTrial, dict[str, Any]], None]
) -> None:
    """The sweep stops: its running trials stop at their next step (a cluster's tasks are
    cancelled) and are queued again."""
    for run in running.values():
        run.run.stop()
    for run in running.values():
        said(*_tell(study, run, run.run.stopped(STOP_WAIT_S)))
