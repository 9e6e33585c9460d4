"""Runs a sweep's trials: asks the study for the next trial, starts it in a process of its own
(:mod:`crnn.sweep.trial`), ``parallel`` at a time, and tells the study what became of each.

Each trial process gets an equal share of the machine (torch threads, loader workers; one GPU
each where there are several), dies with the sweep's process, and writes its output to a log of
its own. A stop (Ctrl-C, SIGTERM) stops the running trials at their next step; they are queued
again, so the next ``crnn sweep`` runs them anew. No trial starts after the time budget.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from crnn import interrupt
from crnn.config import SweepConfig, TrainingConfig
from crnn.lifetime import die_with_parent
from crnn.sweep.space import distributions, overrides
from crnn.sweep.study import DEFAULT, LOST, OWNER, RETRY_OF, finished, this_owner, waiting

POLL_S = 0.2
WORKERS = "training.loader.workers"  # set for each trial from its share of the machine
STOP_WAIT_S = 60.0  # for a stopped trial to reach its next step and end its run


@dataclass(frozen=True)
class Share:
    """What one trial process gets of the machine."""

    threads: int
    workers: int
    gpu: str | None = None  # CUDA_VISIBLE_DEVICES of the trial, where there are several GPUs


def machine_share(parallel: int, training: TrainingConfig, slot: int) -> Share:
    """An equal share of the CPUs for each of ``parallel`` trials: torch threads, and loader
    workers only where a share has cores to spare (1 thread, 0 workers each on 2 cores)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    per = max(1, (cores or 1) // parallel)
    workers = min(training.loader.workers, per // 4)
    gpus = _gpus() if training.device in ("auto", "cuda") else 0
    return Share(max(1, per - workers), workers, str(slot % gpus) if gpus > 1 else None)


def _gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


@dataclass
class Running:
    trial: optuna.Trial
    proc: subprocess.Popen[bytes]
    result: Path
    slot: int
    started: float = field(default_factory=time.perf_counter)


@dataclass
class Launcher:
    """How to start a trial process: what every trial shares (the spec's common part), where
    its files go, and the training config that sizes its share of the machine."""

    common: dict[str, Any]
    user_overrides: list[str]
    training: TrainingConfig
    folder: Path
    parallel: int

    def start(self, trial: optuna.Trial, slot: int) -> Running:
        share = machine_share(self.parallel, self.training, slot)
        params = overrides(trial.params)
        spec = {
            **self.common,
            "trial_id": trial._trial_id,
            "number": trial.number,
            "params_overrides": params,
            # the user's --set, then the trial's values, then its share of the machine
            "overrides": [*self.user_overrides, *params, f"{WORKERS}={share.workers}"],
            "threads": share.threads,
            "parent_pid": os.getpid(),
            "result": str(self.folder / f"trial-{trial.number}.result.json"),
        }
        self.folder.mkdir(parents=True, exist_ok=True)
        spec_path = self.folder / f"trial-{trial.number}.json"
        spec_path.write_text(json.dumps(spec, indent=1), encoding="utf-8")
        Path(spec["result"]).unlink(missing_ok=True)
        env = {**os.environ, "OMP_NUM_THREADS": str(share.threads), "PYTHONUNBUFFERED": "1"}
        if share.gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = share.gpu
        parent = os.getpid()
        with open(self.folder / f"trial-{trial.number}.log", "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "crnn.sweep.trial", str(spec_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                preexec_fn=lambda: die_with_parent(signal.SIGTERM, parent),
            )
        return Running(trial, proc, Path(spec["result"]), slot)


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
                running[trial.number] = launcher.start(trial, slot)
            if not running:
                return
            for number in [n for n, r in running.items() if r.proc.poll() is not None]:
                said(*_tell(study, running.pop(number)))
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


def _tell(study: Any, run: Running) -> tuple[FrozenTrial, dict[str, Any]]:
    """What the trial's process wrote, told to the study."""
    try:
        result = json.loads(run.result.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        code = run.proc.returncode
        result = {"state": "failed", "error": f"the trial process ended with exit code {code}"}
    result["wall_s"] = round(time.perf_counter() - run.started, 1)
    trial, state = run.trial, result["state"]
    for key in ("run_id", "checkpoint", "best_epoch", "epochs_run", "wall_s", "error"):
        if key in result:
            trial.set_user_attr(f"crnn.{key}", result[key])
    if state == "complete":
        frozen = study.tell(trial, result["value"])
    elif state == "pruned":
        frozen = study.tell(trial, state=TrialState.PRUNED)
    elif state == "interrupted":
        frozen = _lose(study, trial, "stopped with the sweep")
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
    """The sweep stops: its running trials stop at their next step and are queued again."""
    for run in running.values():
        if run.proc.poll() is None:
            run.proc.send_signal(signal.SIGTERM)
    for run in running.values():
        try:
            run.proc.wait(timeout=STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            run.proc.kill()
            run.proc.wait()
        said(*_tell(study, run))
