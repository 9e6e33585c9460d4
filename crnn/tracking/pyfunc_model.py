"""MLflow "model from code": executed by MLflow when the model is logged and when it is loaded.

Raw images in (float32, N x H x W, source units), decoded strings (or class labels) out. The
checkpoint holds a state_dict plus the preprocessing the model was trained with; it is loaded with
``weights_only=True``, so loading never unpickles code.
"""

from typing import Any

import mlflow
import numpy as np
from mlflow.pyfunc import PythonModel

from crnn.inference import Predictor


class CRNNModel(PythonModel):
    def load_context(self, context: Any) -> None:
        self.predictor = Predictor.from_checkpoint(context.artifacts["checkpoint"], device="auto")

    def predict(self, context: Any, model_input: np.ndarray, params: Any = None) -> list[str]:
        return self.predictor.predict_raw(np.asarray(model_input, dtype=np.float32)).outputs


mlflow.models.set_model(CRNNModel())
