"""How a sweep's trial is started: the same process (``python -m crnn.sweep.trial SPEC``) here,
or as a task on a cluster's workers (a pool such as :class:`crnn.cluster.processes.ClusterTasks`,
handed in by the flow: this package never imports Dask).

A :class:`TrialJob` is the trial's command, sized to the cores it is given: here an equal share
of this machine for each of ``parallel`` trials, on a worker that worker's own share. The runner
sees a :class:`TrialRun` either way: ``poll()`` (its outcome once it ended), ``stop()``,
``stopped(timeout)``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import optuna

from crnn.config import TrainingConfig
from crnn.errors import LostWork
from crnn.lifetime import start_logged
from crnn.sweep.space import overrides

WORKERS = "training.loader.workers"  # set for each trial from its share of the machine


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
    gpus = _gpus() if training.device in ("auto", "cuda") else 0
    share = cores_share(per, training.loader.workers)
    return Share(share.threads, share.workers, str(slot % gpus) if gpus > 1 else None)


def cores_share(cores: int, loader_workers: int) -> Share:
    """``cores`` split between torch threads and (up to ``loader_workers``) loader workers."""
    workers = min(loader_workers, cores // 4)
    return Share(max(1, cores - workers), workers)


def _gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


@dataclass
class TrialJob:
    """One trial's process, picklable (it travels to a cluster worker): its spec, less what
    the place it runs decides (threads, loader workers, parent, result file)."""

    spec: dict[str, Any]
    folder: Path
    loader_workers: int
    gpu: str | None = None
    result: Path | None = None  # this attempt's, once :meth:`command` named it

    def command(self, cores: int, attempt: str = "") -> tuple[list[str], dict[str, str], Path]:
        share = cores_share(cores, self.loader_workers)
        name = f"trial-{self.spec['number']}{'.' + attempt if attempt else ''}"
        self.result = self.folder / f"{name}.result.json"
        spec = {
            **self.spec,
            "overrides": [*self.spec["overrides"], f"{WORKERS}={share.workers}"],
            "threads": share.threads,
            "parent_pid": os.getpid(),
            "result": str(self.result),
        }
        self.folder.mkdir(parents=True, exist_ok=True)
        spec_path = self.folder / f"{name}.json"
        spec_path.write_text(json.dumps(spec, indent=1), encoding="utf-8")
        self.result.unlink(missing_ok=True)
        env = {**os.environ, "OMP_NUM_THREADS": str(share.threads), "PYTHONUNBUFFERED": "1"}
        if self.gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = self.gpu
        argv = [sys.executable, "-m", "crnn.sweep.trial", str(spec_path)]
        return argv, env, self.folder / f"trial-{self.spec['number']}.log"

    def outcome(self, code: int) -> dict[str, Any]:
        """What the trial's process wrote; failed, with its exit code, when it wrote nothing."""
        try:
            assert self.result is not None
            return dict(json.loads(self.result.read_text(encoding="utf-8")))
        except (OSError, ValueError, AssertionError):
            return {"state": "failed", "error": f"the trial process ended with exit code {code}"}


class TrialRun(Protocol):
    def poll(self) -> dict[str, Any] | None: ...
    def stop(self) -> None: ...
    def stopped(self, timeout: float) -> dict[str, Any]: ...


class RemoteTask(Protocol):
    def done(self) -> bool: ...
    def result(self) -> dict[str, Any]: ...
    def cancel(self) -> None: ...


class ProcessPool(Protocol):
    """Where trial processes run beyond this machine (:class:`crnn.cluster.processes`)."""

    def run_process(self, job: TrialJob) -> RemoteTask: ...


@dataclass
class LocalRun:
    """A trial process on this machine, dying with the sweep's process."""

    job: TrialJob
    proc: subprocess.Popen[bytes]

    @classmethod
    def start(cls, job: TrialJob, cores: int) -> LocalRun:
        argv, env, log = job.command(cores)
        return cls(job, start_logged(argv, env, log))

    def poll(self) -> dict[str, Any] | None:
        code = self.proc.poll()
        return None if code is None else self.job.outcome(code)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def stopped(self, timeout: float) -> dict[str, Any]:
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return self.job.outcome(self.proc.returncode)


@dataclass
class ClusterRun:
    """A trial process run as a cluster task; a lost task is a lost trial (queued again)."""

    task: RemoteTask

    def poll(self) -> dict[str, Any] | None:
        if not self.task.done():
            return None
        try:
            return self.task.result()
        except LostWork as exc:
            return {"state": "lost", "error": str(exc)}

    def stop(self) -> None:
        self.task.cancel()  # the worker stops the trial's process (SIGTERM)

    def stopped(self, timeout: float) -> dict[str, Any]:
        return {"state": "interrupted"}


@dataclass
class Launcher:
    """How to start a trial: what every trial shares (the spec's common part), where its files
    go, the training config that sizes its share, and the pool it runs on (None: here)."""

    common: dict[str, Any]
    user_overrides: list[str]
    training: TrainingConfig
    folder: Path
    parallel: int
    pool: ProcessPool | None = None

    def start(self, trial: optuna.Trial, slot: int) -> TrialRun:
        params = overrides(trial.params)
        spec = {
            **self.common,
            "trial_id": trial._trial_id,
            "number": trial.number,
            "params_overrides": params,
            # the user's --set, then the trial's values (then its share of the machine)
            "overrides": [*self.user_overrides, *params],
        }
        if self.pool is not None:
            job = TrialJob(spec, self.folder, self.training.loader.workers)
            return ClusterRun(self.pool.run_process(job))
        share = machine_share(self.parallel, self.training, slot)
        job = TrialJob(spec, self.folder, self.training.loader.workers, share.gpu)
        return LocalRun.start(job, share.threads + share.workers)
