"""Models: registered architectures (``create_model``), heads, decoding."""

from crnn.models.crnn import ARCHITECTURES, CRNN, create_model, model_kwargs
from crnn.models.decoding import ctc_greedy_decode

__all__ = ["ARCHITECTURES", "CRNN", "create_model", "ctc_greedy_decode", "model_kwargs"]
