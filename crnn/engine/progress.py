"""Console output for people: a progress bar per epoch (rich, on stderr); where stderr is a file
(a job's log), a line every half minute instead, since a bar is not drawn there."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)

from crnn.engine.callbacks import TrainCallback, TrainResult

stderr = Console(stderr=True)
HEARTBEAT_S = 30.0  # a line this often where no bar is drawn


class ConsoleProgress(TrainCallback):
    """One progress bar per epoch, then a line with the epoch's validation metrics."""

    def __init__(self, console: Console = stderr, heartbeat_s: float = HEARTBEAT_S) -> None:
        self.console = console
        self.progress: Progress | None = None
        self.task: TaskID | None = None
        self.epochs = 0
        self.steps = 0
        self.loss: float | None = None  # the last loss read back; None: none yet
        self.heartbeat_s = heartbeat_s
        self.said_at = time.monotonic()

    def on_train_start(self, epochs: int, steps_per_epoch: int) -> None:
        self.epochs, self.steps = epochs, steps_per_epoch
        if not self.console.is_terminal:  # a log file: say that training began
            self.console.print(f"training: {epochs} epochs of {steps_per_epoch} batches")
            self.said_at = time.monotonic()

    def loss_text(self) -> str:
        return "…" if self.loss is None else f"{self.loss:.4f}"  # not 0.0000 before the first

    def on_resume(self, epoch: int, step: int) -> None:
        done = f"after batch {step} of {self.steps}" if step else "from its start"
        self.console.print(f"resumed from last.pt: epoch {epoch}, {done}")

    def on_step(self, epoch: int, step: int) -> None:
        self.on_batch_end(epoch, step, None)

    def on_batch_end(self, epoch: int, step: int, loss: float | None) -> None:
        if self.progress is None:
            self.progress = Progress(
                TextColumn(f"epoch {epoch}/{self.epochs}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]}"),
                TimeRemainingColumn(),
                console=self.console,
                transient=True,
            )
            self.progress.start()
            self.task = self.progress.add_task("train", total=self.steps, loss=self.loss_text())
        assert self.task is not None
        if loss is not None:  # every step the bar and its time estimate move; the loss waits
            self.loss = loss
        self.progress.update(self.task, completed=step, loss=self.loss_text())
        if not self.console.is_terminal and time.monotonic() - self.said_at >= self.heartbeat_s:
            where = f"epoch {epoch}/{self.epochs}: batch {step} of {self.steps}"
            self.console.print(f"{where}, loss {self.loss_text()}")
            self.said_at = time.monotonic()

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
        shown = "  ".join(
            f"{k} {v:.0f}" if float(v).is_integer() else f"{k} {v:.4f}"
            for k, v in metrics.items()
            if k != "lr"
        )
        self.console.print(f"epoch {epoch}/{self.epochs}  {shown}")

    def on_train_abort(self, error: BaseException) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def on_train_end(self, result: TrainResult) -> None:
        if self.progress is not None:
            self.progress.stop()
        how = "early stop" if result.stopped_early else "done"
        self.console.print(
            f"training {how}: best {result.monitor} {result.best_score:.4f} at epoch "
            f"{result.best_epoch} ({result.seconds:.0f} s)"
        )
