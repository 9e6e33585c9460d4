"""Models: registered architectures (``create_model``), heads, decoding."""

from crnn.models.crnn import ARCHITECTURES, CRNN, create_model, model_kwargs
from crnn.models.decoding import ctc_greedy_decode
from crnn.models.video import FrameCRNN

__all__ = [
    "ARCHITECTURES",
    "CRNN",
    "FrameCRNN",
    "create_model",
    "ctc_greedy_decode",
    "model_kwargs",
]
