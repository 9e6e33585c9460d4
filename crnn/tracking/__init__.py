"""Everything MLflow: runs, params, metrics, artifacts, datasets, the pyfunc model, the registry.

This package is the only place that imports mlflow (the core runs without it).
"""

import os

# MLflow reads its log level at import: keep INFO chatter ("Creating initial MLflow database
# tables...") off the user's console unless they ask for it.
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
# nor "View run ... at: http://..." on stdout when a run ends on a server: stdout carries the
# command's own output (`--json` is parseable); the summary names the run and the UI
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
# nor a progress bar for each artifact it downloads (registering a model reads its MLmodel)
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

from typing import TYPE_CHECKING, Any

# Lazy: a name below imports its module (and MLflow) when first used, so the light modules of
# this package (uri, model_ref, promotion, ref) serve a command that never touches a store.
_EXPORTS = {
    "MlflowCallback": "crnn.tracking.training_log",
    "RegistrationResult": "crnn.tracking.registry",
    "TrackingContext": "crnn.tracking.runs",
    "finish_run": "crnn.tracking.runs",
    "log_dataset_inputs": "crnn.tracking.datasets",
    "log_evaluation": "crnn.tracking.runs",
    "log_pyfunc_model": "crnn.tracking.runs",
    "open_tracking": "crnn.tracking.runs",
    "register_with_gate": "crnn.tracking.registry",
    "start_run": "crnn.tracking.runs",
}
__all__ = [
    "MlflowCallback",
    "RegistrationResult",
    "TrackingContext",
    "finish_run",
    "log_dataset_inputs",
    "log_evaluation",
    "log_pyfunc_model",
    "open_tracking",
    "register_with_gate",
    "start_run",
]

if TYPE_CHECKING:
    from crnn.tracking.datasets import log_dataset_inputs
    from crnn.tracking.registry import RegistrationResult, register_with_gate
    from crnn.tracking.runs import (
        TrackingContext,
        finish_run,
        log_evaluation,
        log_pyfunc_model,
        open_tracking,
        start_run,
    )
    from crnn.tracking.training_log import MlflowCallback


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_EXPORTS[name]), name)
