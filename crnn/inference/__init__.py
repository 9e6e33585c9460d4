"""Inference from a trained model: the :class:`Predictor` (raw input in, decoded output out), the
evaluation report, batch scoring, and the classical baselines scored beside the model. Core only:
never MLflow or Prefect."""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crnn.inference.predictor import Predictor

__all__ = ["Predictor"]


def __getattr__(name: str) -> Any:
    # `from crnn.inference import Predictor`, as models logged before the package layout wrote
    # it, without importing torch for the package's lighter modules
    if name == "Predictor":
        from crnn.inference.predictor import Predictor

        return Predictor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
