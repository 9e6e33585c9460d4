"""Console output for people: a progress bar per epoch (rich, on stderr)."""

from __future__ import annotations

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


class ConsoleProgress(TrainCallback):
    """One progress bar per epoch, then a line with the epoch's validation metrics."""

    def __init__(self, console: Console = stderr) -> None:
        self.console = console
        self.progress: Progress | None = None
        self.task: TaskID | None = None
        self.epochs = 0
        self.steps = 0

    def on_train_start(self, epochs: int, steps_per_epoch: int) -> None:
        self.epochs, self.steps = epochs, steps_per_epoch

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
                TextColumn("loss {task.fields[loss]:.4f}"),
                TimeRemainingColumn(),
                console=self.console,
                transient=True,
            )
            self.progress.start()
            self.task = self.progress.add_task("train", total=self.steps, loss=loss or 0.0)
        assert self.task is not None
        if loss is None:  # every step: the bar and its time estimate move, the loss waits
            self.progress.update(self.task, completed=step)
        else:
            self.progress.update(self.task, completed=step, loss=loss)

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
