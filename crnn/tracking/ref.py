"""Where a run lives, as small serializable records passed between flow tasks and processes:
a pipeline run (:class:`TrackingRef`) and a sweep's study with its parent run
(:class:`SweepRef`). Light: MLflow is imported only when a context is asked for."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from crnn.tracking.runs import TrackingContext


@dataclass(frozen=True)
class TrackingRef:
    """Where the run lives: small and serializable, passed between tasks."""

    tracking_uri: str
    experiment_id: str
    experiment_name: str
    run_id: str
    resumed: bool = False

    def context(self) -> TrackingContext:
        from crnn.tracking.runs import TrackingContext

        return TrackingContext(self.tracking_uri, self.experiment_id, self.experiment_name)

    def with_run(self, run_id: str) -> TrackingRef:
        """Another run of the same experiment (a sweep's trial beside its parent)."""
        return TrackingRef(self.tracking_uri, self.experiment_id, self.experiment_name, run_id)


@dataclass(frozen=True)
class SweepRef:
    """The study and its parent run, passed between tasks."""

    study: str
    parent: TrackingRef
    lost: int  # trials a killed sweep left running, queued again
    finished: int  # trials already finished (complete, pruned, failed) before this run
