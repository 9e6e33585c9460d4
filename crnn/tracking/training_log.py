"""Training's metrics into its MLflow run, off the hot path (:class:`MlflowCallback`)."""

from __future__ import annotations

import contextlib
import time
from typing import Any

import mlflow
from mlflow.entities import Metric, RunTag

from crnn.engine.callbacks import TrainCallback, TrainResult
from crnn.metric_names import tracked
from crnn.tracking.runs import MLFLOW_METRICS_BATCH, TrackingContext, _now, as_metrics


class MlflowCallback(TrainCallback):
    """Training metrics, off the hot path: step losses are buffered (one point per
    ``log_every_steps`` read-back) and sent with the epoch's metrics in one asynchronous
    ``log_batch`` per epoch; system metrics (CPU, memory, GPU) are sampled by MLflow's monitor
    thread while training runs."""

    def __init__(
        self, ctx: TrackingContext, run_id: str, system_metrics_interval: float | None = 10.0
    ) -> None:
        self.client = ctx.client()
        self.ctx, self.run_id = ctx, run_id
        self.interval = system_metrics_interval
        self.steps_per_epoch = 0
        self.buffer: list[Metric] = []
        self.pending: list[Any] = []  # async operations, awaited at the end of training
        self.monitor: Any = None
        self.seconds = 0.0  # time spent in these hooks: the tracking overhead of training

    def on_train_start(self, epochs: int, steps_per_epoch: int) -> None:
        started = time.perf_counter()
        self.steps_per_epoch = steps_per_epoch
        if self.interval:
            self.monitor = start_system_metrics(self.ctx, self.run_id, self.interval)
        self.seconds += time.perf_counter() - started

    def on_batch_end(self, epoch: int, step: int, loss: float) -> None:
        global_step = (epoch - 1) * self.steps_per_epoch + step
        self.buffer.append(Metric(tracked("train_loss_step"), float(loss), _now(), global_step))

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        started = time.perf_counter()
        ts = _now()
        batch = as_metrics(metrics, ts, epoch) + self.buffer
        self.buffer = []
        for i in range(0, len(batch), MLFLOW_METRICS_BATCH):
            op = self.client.log_batch(
                self.run_id, metrics=batch[i : i + MLFLOW_METRICS_BATCH], synchronous=False
            )
            self.pending.append(op)
        self.seconds += time.perf_counter() - started

    def on_train_end(self, result: TrainResult) -> None:
        started = time.perf_counter()
        ts = _now()
        summary = {
            "best_epoch": float(result.best_epoch),
            "epochs_run": float(result.epochs_run),
            "train_seconds": result.seconds,
        }
        tags = [RunTag("crnn.stopped_early", str(result.stopped_early).lower())]
        tags += [RunTag(f"crnn.train.{k}", v) for k, v in result.setup.items()]
        self.client.log_batch(self.run_id, metrics=as_metrics(summary, ts), tags=tags)
        for op in self.pending:
            op.wait()
        self.pending = []
        if self.monitor is not None:
            self.monitor.finish()
            self.monitor = None
        self.seconds += time.perf_counter() - started

    def on_train_abort(self, error: BaseException) -> None:
        """Stopped (an interrupt, a pruned sweep trial, a failure): the epochs logged so far
        reach the run, and the system metrics monitor stops."""
        for op in self.pending:
            with contextlib.suppress(Exception):  # the error that stopped training comes first
                op.wait()
        self.pending = []
        if self.monitor is not None:
            with contextlib.suppress(Exception):
                self.monitor.finish()
            self.monitor = None


def start_system_metrics(ctx: TrackingContext, run_id: str, interval: float) -> Any:
    """MLflow's system metrics monitor (psutil; GPU through NVML when present) on ``run_id``."""
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    mlflow.set_tracking_uri(ctx.tracking_uri)  # the monitor logs through the fluent client
    monitor = SystemMetricsMonitor(run_id, sampling_interval=interval, samples_before_logging=1)
    monitor.start()
    return monitor
