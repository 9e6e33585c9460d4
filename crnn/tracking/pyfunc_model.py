"""MLflow "model from code": executed by MLflow when the model is logged and when it is loaded.

What a user has in (images of any size: arrays, a list of arrays, or a DataFrame with an ``image``
column of encoded bytes or paths, or a ``path`` column; clips as float32 arrays in source units;
strings for a text model; waveforms, WAV bytes or paths for an audio model), decoded strings,
class labels or numbers out (with ``params={"confidence": True}``: their confidences too). The
checkpoint holds a state_dict plus the preprocessing the model was trained with; it is loaded with
``weights_only=True``, so loading never unpickles code.
"""

from typing import Any

import mlflow
from mlflow.pyfunc import PythonModel

from crnn.inference.predictor import Predictor


class CRNNModel(PythonModel):
    # MLflow validates input by a type hint on ``predict`` when there is one, and warns (at each
    # definition of this class: when logged and when loaded) when there is none. Input here is
    # checked by the model's signature and by the Predictor, in one line; MLflow's own models opt
    # out of the hint check the same way.
    _skip_type_hint_validation = True

    def load_context(self, context: Any) -> None:
        self.predictor = Predictor.from_checkpoint(context.artifacts["checkpoint"], device="auto")

    def predict(self, context: Any, model_input, params: Any = None) -> Any:
        """Predictions; with ``params={"confidence": True}`` a DataFrame of ``prediction``,
        ``confidence`` and, for a line model, ``char_confidence`` (one probability per
        character)."""
        preds = self.predictor.predict_input(model_input)
        if not (params or {}).get("confidence"):
            return preds.outputs
        import pandas as pd

        table = {"prediction": preds.outputs, "confidence": preds.confidence}
        if preds.char_confidence is not None:
            table["char_confidence"] = preds.char_confidence
        return pd.DataFrame(table)


mlflow.models.set_model(CRNNModel())
