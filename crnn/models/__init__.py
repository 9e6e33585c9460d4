"""Models: registered architectures (``create_model``), heads, decoding."""

from crnn.models.crnn import ARCHITECTURES, CRNN, create_model, model_kwargs, penultimate
from crnn.models.decoding import ctc_greedy_decode, ctc_greedy_strings
from crnn.models.text import TextCRNN
from crnn.models.video import FrameCRNN

__all__ = [
    "ARCHITECTURES",
    "CRNN",
    "FrameCRNN",
    "TextCRNN",
    "create_model",
    "ctc_greedy_decode",
    "ctc_greedy_strings",
    "model_kwargs",
    "penultimate",
]
