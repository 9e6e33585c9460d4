"""What training reports to: the callback hooks, the result, and the fan-out that times them.

The engine (:mod:`crnn.engine.train`) logs nothing itself; the console and MLflow are callbacks.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class TrainCallback:
    """Hooks called by :func:`train`; override what you need."""

    def on_train_start(self, epochs: int, steps_per_epoch: int) -> None: ...

    def on_resume(self, epoch: int, step: int) -> None:
        """Training continues from ``last.pt``: epoch ``epoch``, after ``step`` batches."""

    def on_step(self, epoch: int, step: int) -> None:
        """Every step, without its loss (reading it back from the device would stall a GPU)."""

    def on_batch_end(self, epoch: int, step: int, loss: float) -> None:
        """Every ``training.log_every_steps`` steps: the mean loss since the last call."""

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None: ...

    def on_train_end(self, result: TrainResult) -> None: ...

    def on_train_abort(self, error: BaseException) -> None:
        """Training stopped by ``error`` (an interrupt, a failure): release what is shown."""


@dataclass
class TrainResult:
    best_checkpoint: Path
    last_checkpoint: Path
    best_epoch: int
    best_score: float
    monitor: str
    epochs_run: int
    stopped_early: bool
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)
    setup: dict[str, str] = field(default_factory=dict)  # device, precision, what the RNN ran in
    callback_seconds: float = 0.0  # of ``seconds``, spent in callbacks (logging, progress)


class TimedCallbacks(TrainCallback):
    """Calls the callbacks in order and adds up the time they take."""

    def __init__(self, callbacks: Sequence[TrainCallback]) -> None:
        self.callbacks, self.seconds = list(callbacks), 0.0

    def _each(self, hook: str, *args: Any) -> None:
        started = time.perf_counter()
        try:
            for cb in self.callbacks:
                getattr(cb, hook)(*args)
        finally:
            self.seconds += time.perf_counter() - started

    def on_train_start(self, epochs: int, steps_per_epoch: int) -> None:
        self._each("on_train_start", epochs, steps_per_epoch)

    def on_resume(self, epoch: int, step: int) -> None:
        self._each("on_resume", epoch, step)

    def on_step(self, epoch: int, step: int) -> None:
        self._each("on_step", epoch, step)

    def on_batch_end(self, epoch: int, step: int, loss: float) -> None:
        self._each("on_batch_end", epoch, step, loss)

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        self._each("on_epoch_end", epoch, metrics)

    def on_train_end(self, result: TrainResult) -> None:
        self._each("on_train_end", result)

    def on_train_abort(self, error: BaseException) -> None:
        self._each("on_train_abort", error)
